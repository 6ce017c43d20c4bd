"""The WebSocket channel adapter.

A conversation is (tenant, websocket, user) and survives reconnects: on connect the client gets a
``history`` frame and any reply produced while it was away. Several sockets of one user (tabs)
all receive the reply. The ``user`` parameter identifies, it does not authenticate: protect the
endpoint with ``token`` (shared secret) or an authenticating proxy.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import defaultdict
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from botframework.channel import ChannelAdapter, ChannelRuntime, Outbound, Route
from botframework.errors import DeliveryError, PayloadError
from channels.websocket.config import WebSocketChannelConfig
from channels.websocket.events import CHANNEL, CancelFrame, WebSocketTarget, event_id_for, parse_frame, to_turn
from channels.websocket.render import delta_frame, final_frames, reset_frame, status_frame

__all__ = ["WebSocketAdapter"]

log = logging.getLogger("channels.websocket")

MAX_USER_CHARS = 128
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401


class _Socket:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> bool:
        if self.ws.closed:
            return False
        async with self.lock:
            try:
                await self.ws.send_str(json.dumps(frame, ensure_ascii=False))
            except (ConnectionError, RuntimeError):
                return False
        return True


class _Sink:
    """Streams one reply's deltas to every socket of the user."""

    def __init__(self, adapter: WebSocketAdapter, user: str, reply_to: str) -> None:
        self.adapter = adapter
        self.user = user
        self.reply_to = reply_to

    async def delta(self, text: str) -> None:
        await self.adapter.broadcast(self.user, delta_frame(self.reply_to, text))

    async def reset(self) -> None:
        await self.adapter.broadcast(self.user, reset_frame(self.reply_to))

    async def notice(self, text: str) -> None:
        await self.adapter.broadcast(self.user, status_frame(self.reply_to, text))


class WebSocketAdapter(ChannelAdapter[WebSocketChannelConfig]):
    """The web chat of one tenant: a WebSocket endpoint that streams replies to every tab of a user."""

    name = CHANNEL
    config_model = WebSocketChannelConfig

    def __init__(self, *, tenant: str, config: WebSocketChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self._sockets: dict[str, set[_Socket]] = defaultdict(set)

    def routes(self) -> list[Route]:
        return [Route(method="GET", path="ws", handler=self.handle)]

    async def stop(self) -> None:
        """Close open sockets (1001 going away): aiohttp's shutdown otherwise waits for every open handler."""
        socks = [sock for group in self._sockets.values() for sock in group]
        await asyncio.gather(
            *(sock.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for sock in socks),
            return_exceptions=True,
        )

    async def broadcast(self, user: str, frame: dict[str, Any]) -> int:
        sent = 0
        for sock in list(self._sockets.get(user, ())):
            sent += await sock.send(frame)
        return sent

    def _authorized(self, request: web.Request) -> bool:
        if self.config.token is None:
            return True
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode(), self.config.token.get_secret_value().encode())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        user = request.query.get("user", "")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
        await ws.prepare(request)
        sock = _Socket(ws)
        if not user or len(user) > MAX_USER_CHARS or user != user.strip():
            reason = f"query parameter 'user' is required: 1-{MAX_USER_CHARS} characters, no outer spaces"
            await sock.send({"type": "error", "reply_to": None, "message": reason})
            await ws.close(code=CLOSE_BAD_REQUEST, message=reason.encode()[:120])
            return ws
        if not self._authorized(request):
            await sock.send({"type": "error", "reply_to": None, "message": "not authorized: bad or missing token"})
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"not authorized")
            return ws
        self._sockets[user].add(sock)
        try:
            history = await self.runtime.transcript(self.tenant, self.name, user)
            await sock.send(
                {
                    "type": "history",
                    "messages": [
                        {"role": m["role"], "text": m["text"], "id": _client_id(m["event_id"], user)} for m in history
                    ],
                }
            )
            await self.runtime.redeliver(self.tenant, self.name, user)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(user, sock, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await sock.send({"type": "error", "reply_to": None, "message": "binary frames are not supported"})
        finally:
            self._sockets[user].discard(sock)
            if not self._sockets[user]:
                del self._sockets[user]
        return ws

    async def _on_text(self, user: str, sock: _Socket, raw: str) -> None:
        try:
            frame = parse_frame(raw)
        except PayloadError as exc:
            reply_to = _frame_id(raw)
            await sock.send({"type": "error", "reply_to": reply_to, "message": f"bad frame: {exc}"})
            return
        if isinstance(frame, CancelFrame):
            await self.runtime.cancel(self.tenant, self.name, event_id_for(user, frame.id))
            return
        try:
            result = await self.runtime.ingest(to_turn(tenant=self.tenant, user=user, frame=frame))
        except Exception:
            log.exception("could not accept a websocket message from %s", user)
            await sock.send(
                {
                    "type": "error",
                    "reply_to": frame.id,
                    "kind": "unavailable",
                    "message": "the message could not be stored; send it again in a moment",
                }
            )
            return
        if not result.duplicate:
            self.runtime.attach_sink(self.tenant, self.name, result.turn_id, _Sink(self, user, frame.id))
        await self.broadcast(user, {"type": "accepted", "reply_to": frame.id, "text": frame.text})
        if result.duplicate:
            await self.runtime.redeliver(self.tenant, self.name, user)

    async def deliver(self, outbound: Outbound) -> None:
        user = WebSocketTarget.model_validate(outbound.primary.reply_target).user
        sent = 0
        for frame in final_frames(outbound):
            sent = await self.broadcast(user, frame)
        if not sent:
            raise DeliveryError(
                f"websocket user {user!r} is not connected; the reply waits for a reconnect", retryable=True
            )


def _client_id(event_id: str | None, user: str) -> str | None:
    prefix = event_id_for(user, "")
    return event_id[len(prefix) :] if event_id and event_id.startswith(prefix) else None


def _frame_id(raw: str) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
