"""Feishu/Lark event subscription v2: signature check and body decryption.

We verify and decrypt ourselves instead of using lark-oapi's ``EventDispatcherHandler``: it is
synchronous, compares signatures with ``!=`` (not constant time), looks headers up case-sensitively
and answers every failure with 500 (which Feishu retries), where we must answer 401 with no side
effect. The scheme is small: ``X-Lark-Signature`` = hex SHA-256 of timestamp + nonce + encrypt_key +
raw body; the ``{"encrypt": b64}`` body is AES-256-CBC with key = SHA-256(encrypt_key), IV = the
first 16 bytes of the decoded data, PKCS#7 padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from botframework.errors import SignatureError

__all__ = ["decrypt", "signature", "token_matches", "verify_signature"]

_BLOCK = 16


def signature(*, timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """The hex digest Feishu sends in ``X-Lark-Signature`` for ``body``."""
    parts = (timestamp + nonce + encrypt_key).encode("utf-8", "replace")
    return hashlib.sha256(parts + body).hexdigest()


def verify_signature(*, timestamp: str, nonce: str, encrypt_key: str, body: bytes, received: str) -> bool:
    """Whether ``received`` is the signature of ``body`` (constant-time comparison)."""
    expected = signature(timestamp=timestamp, nonce=nonce, encrypt_key=encrypt_key, body=body)
    return hmac.compare_digest(expected.encode(), received.strip().lower().encode("utf-8", "replace"))


def token_matches(expected: str, received: object) -> bool:
    """Whether a payload's verification token is ours (constant-time comparison)."""
    return isinstance(received, str) and hmac.compare_digest(expected.encode(), received.encode("utf-8", "replace"))


def decrypt(encrypt_key: str, encrypted: str) -> bytes:
    """Plaintext of an ``encrypt`` field; SignatureError when it was not encrypted with our key."""
    try:
        data = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"feishu encrypt field is not base64 ({len(encrypted)} chars)") from exc
    if len(data) < 2 * _BLOCK or len(data) % _BLOCK:
        raise SignatureError(f"feishu encrypted body has {len(data)} bytes, not IV + whole AES blocks")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:_BLOCK])).decryptor()
    padded = decryptor.update(data[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise SignatureError("feishu encrypted body does not decrypt with the configured encrypt_key") from exc
