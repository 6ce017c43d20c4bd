"""WeChat Official Account signatures: the plaintext-mode ``signature`` on top of the shared scheme.

Safe mode (``encrypt_type=aes``) is WXBizMsgCrypt with the AppID as receiveid, implemented once in
:mod:`channels.wecom.crypto`. Plaintext mode signs only token, timestamp and nonce (not the body);
URL verification GETs use that plain signature in both modes.
"""

from __future__ import annotations

from botframework.errors import SignatureError
from channels.wecom.crypto import MsgCrypt, sha1_signature, signatures_match

__all__ = ["MsgCrypt", "plain_signature", "verify_plain_signature"]


def plain_signature(token: str, timestamp: str, nonce: str) -> str:
    """``signature`` = hex SHA1 of the sorted token, timestamp and nonce."""
    return sha1_signature(token, timestamp, nonce)


def verify_plain_signature(*, token: str, signature: str, timestamp: str, nonce: str) -> None:
    """Raise SignatureError unless ``signature`` signs this timestamp and nonce with ``token``."""
    if not (timestamp and nonce) or not signatures_match(plain_signature(token, timestamp, nonce), signature):
        raise SignatureError("signature does not match")
