"""Options of the WeCom AI bot channel (智能机器人, long connection): ``tenants.*.channels.wecom_bot``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from botframework.config.types import Secret, StrictModel, StrId

__all__ = ["WeComBotChannelConfig"]

WsUrl = Annotated[str, Field(pattern=r"^wss?://\S+$")]


class WeComBotChannelConfig(StrictModel):
    """WeCom AI bot over its long connection: no public URL; answers stream into the chat.
    In the WeCom admin console create the AI bot (智能机器人) in API mode with a long connection, and
    copy its Bot ID and Secret here."""

    bot_id: StrId
    """The AI bot's Bot ID."""
    secret: Secret
    """The AI bot's Secret for the long connection."""
    ws_url: WsUrl = "wss://openws.work.weixin.qq.com"
    """Long-connection endpoint."""
    ping_interval_s: float = Field(default=30.0, gt=0)
    """Heartbeat interval; two unanswered heartbeats mean the connection is dead (reconnect)."""
    ack_timeout_s: float = Field(default=5.0, gt=0)
    """How long a frame waits for WeCom's acknowledgement."""
    stream_interval_s: float = Field(default=1.0, ge=0.1)
    """At most one streamed update per this many seconds while an answer is produced."""
    stream_window_s: float = Field(default=330.0, gt=0, le=360)
    """WeCom ends a streamed reply 6 minutes after the user's message; past this many seconds what
    is left goes out as a new message instead."""
    welcome: str | None = Field(default=None, max_length=4000)
    """Sent when a user opens the chat with the bot (``enter_chat``); none by default."""
