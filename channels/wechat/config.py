"""Options of the WeChat Official Account channel: ``tenants.*.channels.wechat``."""

from __future__ import annotations

from pydantic import Field

from botframework.config.types import HttpUrl, Secret, StrictModel, StrId
from channels.wecom.config import AesKey

__all__ = ["WeChatChannelConfig"]


class WeChatChannelConfig(StrictModel):
    """WeChat Official Account at ``GET|POST /t/{tenant}/wechat/callback`` (plaintext or safe mode)."""

    app_id: StrId = Field(examples=["wx0123456789abcdef"])
    """Official Account AppID; receiveid in safe mode."""
    app_secret: Secret
    """AppSecret for access tokens."""
    token: Secret
    """Callback token."""
    encoding_aes_key: AesKey | None = None
    """43-character EncodingAESKey for safe mode; omitted means plaintext mode."""
    api_base_url: HttpUrl = "https://api.weixin.qq.com"
    """API base."""
    replay_window_s: int = Field(300, ge=0, le=86_400)
    """Refuse callbacks whose timestamp is further than this many seconds from the server's clock, and
    bind each (timestamp, nonce) to one body. 0 turns the window off: only for replaying the vendor's
    old sample requests, never in production."""
