"""The WXBizMsgCrypt scheme of WeCom callbacks and of WeChat Official Account safe mode.

Written once here (WeChat imports it): Tencent's sample SDKs are synchronous copies of one
algorithm, and its traps are easy to get wrong:

- key = base64decode(EncodingAESKey + "="), 32 bytes; IV = key[:16]; AES-256-CBC with no padding in
  the cipher: the PKCS#7 padding is to **32-byte** blocks (pad byte 1..32), so a 16-byte unpadder
  rejects valid messages. Unpadding here is strict (every pad byte checked).
- plaintext = 16 random bytes + 4-byte big-endian length + message + receiveid (WeCom: the corp id;
  WeChat: the AppID). The receiveid must match, or someone else's key/app produced the message.
- ``msg_signature`` = hex SHA1 of the sorted concatenation of token, timestamp, nonce and the
  ciphertext, compared in constant time.

Every failure raises :class:`~botframework.errors.SignatureError`: the caller answers 401 and has no
side effect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from botframework.errors import SignatureError

__all__ = ["BLOCK_SIZE", "MsgCrypt", "aes_key", "pkcs7_pad", "pkcs7_unpad", "sha1_signature", "signatures_match"]

BLOCK_SIZE = 32
"""PKCS#7 block size of the scheme (not AES's 16)."""
_PREFIX = 16
_LENGTH = struct.Struct(">I")


def sha1_signature(*parts: str) -> str:
    """Hex SHA1 of the parts sorted (as strings) and concatenated: both vendors' signature."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signatures_match(expected: str, received: str) -> bool:
    """Constant-time comparison of two hex signatures (a missing one never matches)."""
    return bool(received) and hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8"))


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key an EncodingAESKey (43 base64 characters) stands for."""
    if len(encoding_aes_key) != 43:
        raise ValueError(f"an EncodingAESKey has 43 characters, got {len(encoding_aes_key)}")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("the EncodingAESKey is not base64 (A-Z, a-z, 0-9, +, /)") from exc
    if len(key) != 32:  # pragma: no cover - 43 base64 chars + "=" always decode to 32 bytes
        raise ValueError(f"the EncodingAESKey decodes to {len(key)} bytes, not 32")
    return key


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Pad to a multiple of ``block_size``; a full block of padding when already aligned."""
    pad = block_size - len(data) % block_size
    return data + bytes([pad]) * pad


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Strictly remove PKCS#7 padding: length aligned, pad 1..block_size, every pad byte equal."""
    if not data or len(data) % block_size:
        raise SignatureError(f"padded length {len(data)} is not a positive multiple of {block_size}")
    pad = data[-1]
    if not 1 <= pad <= block_size or data[-pad:] != bytes([pad]) * pad:
        raise SignatureError(f"invalid PKCS#7 padding (last byte {pad})")
    return data[:-pad]


class MsgCrypt:
    """Sign, verify, encrypt and decrypt messages of one app (token, key and receiveid)."""

    def __init__(self, *, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """``msg_signature`` for a ciphertext."""
        return sha1_signature(self._token, timestamp, nonce, encrypted)

    def verify(self, *, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise SignatureError unless ``signature`` is the ``msg_signature`` of these values."""
        if not signatures_match(self.signature(timestamp, nonce, encrypted), signature):
            raise SignatureError("msg_signature does not match")

    def encrypt(self, message: bytes, *, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of ``message`` (``random_prefix``: 16 bytes, fixed only in tests)."""
        prefix = os.urandom(_PREFIX) if random_prefix is None else random_prefix
        if len(prefix) != _PREFIX:
            raise ValueError(f"the random prefix has {_PREFIX} bytes, got {len(prefix)}")
        plain = prefix + _LENGTH.pack(len(message)) + message + self.receive_id.encode("utf-8")
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(pkcs7_pad(plain)) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside ``encrypted``; SignatureError if it is not ours or not well formed."""
        try:
            data = base64.b64decode(encrypted.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SignatureError("the ciphertext is not base64") from exc
        if not data or len(data) % BLOCK_SIZE:
            raise SignatureError(f"ciphertext length {len(data)} is not a positive multiple of {BLOCK_SIZE}")
        decryptor = self._cipher().decryptor()
        plain = pkcs7_unpad(decryptor.update(data) + decryptor.finalize())
        if len(plain) < _PREFIX + _LENGTH.size:
            raise SignatureError(f"decrypted payload of {len(plain)} bytes is too short")
        (length,) = _LENGTH.unpack_from(plain, _PREFIX)
        start = _PREFIX + _LENGTH.size
        if length > len(plain) - start:
            raise SignatureError(f"message length {length} exceeds the {len(plain) - start} bytes decrypted")
        receive_id = plain[start + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise SignatureError(f"the message is for receiveid {receive_id[:64]!r}, not {self.receive_id!r}")
        return plain[start : start + length]

    def open(self, *, signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """Verify the signature, then decrypt: what a callback handler needs."""
        self.verify(signature=signature, timestamp=timestamp, nonce=nonce, encrypted=encrypted)
        return self.decrypt(encrypted)

    def open_callback(self, query: Mapping[str, str], encrypted: str) -> bytes:
        """:meth:`open` with ``msg_signature``, ``timestamp`` and ``nonce`` taken from a callback query."""
        return self.open(
            signature=query.get("msg_signature", ""),
            timestamp=query.get("timestamp", ""),
            nonce=query.get("nonce", ""),
            encrypted=encrypted,
        )
