"""Options of the WebSocket (web chat) channel: ``tenants.*.channels.websocket``."""

from __future__ import annotations

from pydantic import SecretStr

from botframework.config.types import StrictModel

__all__ = ["WebSocketChannelConfig"]


class WebSocketChannelConfig(StrictModel):
    """Web chat: ``GET /t/{tenant}/ws`` and the page at ``/t/{tenant}/chat``."""

    token: SecretStr | None = None
    """Shared secret clients pass as ``?token=``; omitted means open."""
