"""WebSocket chat channel: ``GET /t/{tenant}/ws?user=U[&token=T]`` and the web chat page's backend."""

from channels.websocket.adapter import WebSocketAdapter

__all__ = ["WebSocketAdapter"]
