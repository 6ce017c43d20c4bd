"""iLink CDN media: AES-128-ECB with PKCS#7 padding, and the two ways a message spells the key.

``cryptography`` does the cipher and the padding; what is written here is only the key handling,
which no library knows: an image item carries the key as 32 hex characters (``image_item.aeskey``),
a media reference as base64 of either the 16 raw bytes or of those 32 hex characters.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from botframework.errors import MediaError

__all__ = ["decrypt_media", "encrypt_media", "media_key"]

_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")


def media_key(*, hex_key: str | None = None, base64_key: str | None = None) -> bytes:
    """The 16-byte key of a media item: ``image_item.aeskey`` (hex) first, else ``media.aes_key`` (base64)."""
    if hex_key:
        if not _HEX_KEY.fullmatch(hex_key):
            raise MediaError(f"media key is not 32 hex characters (got {len(hex_key)} characters)")
        return bytes.fromhex(hex_key)
    if not base64_key:
        raise MediaError("the media item carries no key")
    try:
        decoded = base64.b64decode(base64_key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("media key is not base64") from exc
    if len(decoded) == 16:
        return decoded
    text = decoded.decode("ascii", errors="replace")
    if len(decoded) == 32 and _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    raise MediaError(f"media key decodes to {len(decoded)} bytes, neither 16 raw bytes nor 32 hex characters")


def decrypt_media(data: bytes, key: bytes) -> bytes:
    """Plaintext of a downloaded media file; MediaError if it is not ``key``'s AES-128-ECB ciphertext."""
    if len(key) != 16:
        raise MediaError(f"AES-128 needs a 16-byte key, got {len(key)} bytes")
    if not data or len(data) % 16:
        raise MediaError(f"encrypted media of {len(data)} bytes is not a positive multiple of 16")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise MediaError("media did not decrypt with its key (bad padding)") from exc


def encrypt_media(data: bytes, key: bytes) -> bytes:
    """The CDN's form of ``data`` (tests and fakes use it to make encrypted media)."""
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()
