"""WeCom AI bot media: AES-256-CBC, key = base64 ``aeskey`` of the message, IV = key[:16], PKCS#7 to 32 bytes.

The cipher is ``cryptography``'s; the unpadding is the strict 32-byte PKCS#7 of the WeCom callback
scheme (:func:`channels.wecom.crypto.pkcs7_unpad`), which a 16-byte unpadder would reject.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from botframework.errors import MediaError, SignatureError
from channels.wecom.crypto import pkcs7_pad, pkcs7_unpad

__all__ = ["decrypt_media", "encrypt_media", "media_key"]


def media_key(aeskey: str) -> bytes:
    """The 32-byte key of a message's ``aeskey`` (base64, with or without its padding)."""
    try:
        key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("the media aeskey is not base64") from exc
    if len(key) != 32:
        raise MediaError(f"the media aeskey decodes to {len(key)} bytes, not 32")
    return key


def decrypt_media(data: bytes, key: bytes) -> bytes:
    if not data or len(data) % 16:
        raise MediaError(f"encrypted media of {len(data)} bytes is not a positive multiple of 16")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    try:
        return pkcs7_unpad(decryptor.update(data) + decryptor.finalize())
    except SignatureError as exc:
        raise MediaError(f"media did not decrypt with its key ({exc})") from exc


def encrypt_media(data: bytes, key: bytes) -> bytes:
    """The form WeCom serves media in (tests and fakes use it)."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return encryptor.update(pkcs7_pad(data)) + encryptor.finalize()
