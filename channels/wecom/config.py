"""Options of the WeCom self-built app channel: ``tenants.*.channels.wecom``."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr

from botframework.config.types import HttpUrl, Secret, StrictModel, StrId

__all__ = ["AesKey", "WeComChannelConfig"]


def _base64_key(key: SecretStr) -> SecretStr:
    """An EncodingAESKey is 43 base64 characters (a 32-byte AES key without its ``=``)."""
    try:
        base64.b64decode(key.get_secret_value() + "=", validate=True)
    except binascii.Error:
        raise ValueError("encoding_aes_key must be 43 base64 characters (A-Z, a-z, 0-9, +, /)") from None
    return key


AesKey = Annotated[SecretStr, Field(min_length=43, max_length=43), AfterValidator(_base64_key)]
"""WeCom's and WeChat's EncodingAESKey (the same scheme)."""


class WeComChannelConfig(StrictModel):
    """WeCom self-built app callback at ``GET|POST /t/{tenant}/wecom/callback``."""

    corp_id: StrId = Field(examples=["ww0123456789abcdef"])
    """Corp id; also the receiveid inside encrypted messages."""
    agent_id: StrId = Field(examples=[1000002])
    """Self-built app agent id (number or string)."""
    secret: Secret
    """App secret for access tokens."""
    token: Secret
    """Callback token for msg_signature."""
    encoding_aes_key: AesKey
    """43-character EncodingAESKey."""
    api_base_url: HttpUrl = "https://qyapi.weixin.qq.com"
    """API base."""
    replay_window_s: int = Field(300, ge=0, le=86_400)
    """Refuse callbacks whose timestamp is further than this many seconds from the server's clock, and
    bind each (timestamp, nonce) to one body. 0 turns the window off: only for replaying the vendor's
    old sample requests, never in production."""
    message_format: Literal["markdown", "text"] = "markdown"
    """``markdown``: formatted in the WeCom app; ``text``: plain text, for users who read WeCom
    messages in WeChat (its WeCom plugin shows markdown messages as "unsupported")."""
