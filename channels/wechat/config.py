"""Options of the WeChat Official Account channel: ``tenants.*.channels.wechat``."""

from __future__ import annotations

from typing import Literal

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
    reply_mode: Literal["api", "passive"] = "api"
    """``api``: acknowledge each message at once and send the answer through the customer-service API
    (verified accounts only). ``passive``: answer inside the callback response, which every account
    can (also unverified ones): each of WeChat's 5-second tries waits for the answer, and an answer
    slower than all of them goes out with the user's next message. Never both."""
    passive_wait_s: float = Field(default=4.5, gt=0, lt=5)
    """Passive mode: how long one try waits for the answer; WeChat gives a try up after 5 s."""
    passive_tries: int = Field(default=3, ge=1, le=3)
    """Passive mode: WeChat's tries per message. The last one gives up waiting in time to hand out
    answers kept from earlier messages, if any."""
    continue_hint: str = Field(default="(send any message for the rest)", max_length=200)
    """Passive mode: appended to a passive reply when more text is kept for the user's next message
    (one reply holds 2,048 bytes)."""
    replay_window_s: int = Field(300, ge=0, le=86_400)
    """Refuse callbacks whose timestamp is further than this many seconds from the server's clock, and
    bind each (timestamp, nonce) to one body. 0 turns the window off: only for replaying the vendor's
    old sample requests, never in production."""
