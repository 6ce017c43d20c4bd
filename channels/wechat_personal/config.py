"""Options of the personal WeChat channel (Tencent's iLink bot API): ``tenants.*.channels.wechat_personal``."""

from __future__ import annotations

from pydantic import Field

from botframework.config.types import HttpUrl, StrictModel, StrId

__all__ = ["WeChatPersonalChannelConfig"]


class WeChatPersonalChannelConfig(StrictModel):
    """Personal WeChat through Tencent's iLink bot API: a long poll, no public URL. Authorize it once with
    ``botframework login wechat_personal --config FILE --tenant T`` (scan the QR code with WeChat)."""

    api_base_url: HttpUrl = "https://ilinkai.weixin.qq.com"
    """iLink API host of the QR login; polling and sending use the host the login hands back."""
    cdn_base_url: HttpUrl = "https://novac2c.cdn.weixin.qq.com/c2c"
    """CDN serving users' pictures (encrypted); a picture URL on any other host is not fetched."""
    bot_type: StrId = "3"
    """``bot_type`` of the QR login."""
    poll_timeout_s: float = Field(default=35.0, ge=5, le=120)
    """Long-poll timeout until the server suggests one (``longpolling_timeout_ms``)."""
    typing: bool = True
    """Show "typing..." to the user while a turn runs."""
    typing_interval_s: float = Field(default=5.0, gt=0)
    """How often the typing indicator is renewed."""
    login_timeout_s: float = Field(default=480.0, gt=0)
    """How long ``botframework login`` waits for the QR code to be scanned and confirmed."""
    session_check_s: float = Field(default=10.0, gt=0)
    """While no usable session is stored (before the first login, after one expired), how often the
    server looks for a new one in the database. It never calls iLink without a session."""
