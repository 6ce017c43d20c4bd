"""The WebSocket channel adapter.

A conversation is (tenant, websocket, user) and survives reconnects: on connect the client gets a
``session`` frame saying who it is, a ``history`` frame and any reply produced while it was away.
Several sockets of one user (tabs) all receive the reply, each socket once: a socket remembers the
final frames it has, so the redelivery on connect and the live delivery cannot both show it. A
client acknowledges what it got (``{"type":"ack","reply_to":id}``, and ``?ack=id1,id2`` when it
reconnects, for acks lost with a crashed server); an acknowledged reply is recorded as delivered
and never sent again.

Who a connection is never comes from a name the client picks (``channels.websocket.identity``):

- ``anonymous`` (default): the server makes up a user and sends a ``resume`` token in the
  ``session`` frame; ``?resume=<token>`` later is the same user. Tokens are HMACs under a deployment
  key kept in the database, so they survive restarts and work on every process.
- ``signed``: ``?user=U&expires=E&sig=S`` made by the operator's site (:mod:`botframework.identity`);
  a missing, wrong or expired signature closes the socket with 4401 before any frame.
- ``none``: ``?user=`` as given, for a trusted network or an authenticating proxy (warned at start).

In every mode a browser handshake from a foreign ``Origin`` is refused (403), the optional shared
``token`` is required, and each user may send ``rate_limit_per_min`` messages a minute; more get a
``rate_limited`` error and are not stored.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from botframework.channel import ChannelAdapter, ChannelRuntime, Outbound, Route
from botframework.errors import DeliveryError, PayloadError, SignatureError, StorageError
from botframework.identity import ResumeTokens, new_anonymous_user, verify_signed_user
from botframework.inputs import check_identifier, clean_text, load_json_object
from botframework.limits import RateLimiter
from botframework.storage_health import describe
from botframework.web import chat_page_response
from channels.websocket.config import WebSocketChannelConfig
from channels.websocket.events import (
    CHANNEL,
    MAX_USER_CHARS,
    AckFrame,
    CancelFrame,
    WebSocketTarget,
    client_id,
    event_id_for,
    parse_acks,
    parse_frame,
    to_turn,
)
from channels.websocket.render import delta_frame, final_frames, reset_frame, status_frame

__all__ = ["WebSocketAdapter"]

log = logging.getLogger("channels.websocket")

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
UNAVAILABLE = "the server cannot reach its database right now; your messages are safe, try again in a moment"
RESUME_KEY = "websocket.resume"
"""Name of the deployment key that signs resume tokens."""
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


FINALS_KEPT = 1024
"""Reply ids a socket remembers having the final frame of (at least ``MAX_ACKS``): a duplicate can
only come from a delivery racing its own redelivery, so only recent ids matter, and a socket that
stays open for days must not keep one id per message it ever answered."""


class RecentIds:
    """A set of the last ``keep`` ids added (oldest out): ``in``, ``add``, ``discard``, ``update``."""

    def __init__(self, *, keep: int) -> None:
        self.keep = keep
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> None:
        self._ids[item] = None
        self._ids.move_to_end(item)
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)

    def discard(self, item: str) -> None:
        self._ids.pop(item, None)

    def update(self, items: Iterable[str]) -> None:
        for item in items:
            self.add(item)


class _Socket:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()
        self.finals = RecentIds(keep=FINALS_KEPT)
        """Ids whose final frame (``done``/``error`` of a reply) this socket has, or the client acked:
        a redelivery on connect racing the live delivery must not show a reply twice in one tab."""

    async def send(self, frame: dict[str, Any]) -> bool:
        if self.ws.closed:
            return False
        # clean_text: a frame must be UTF-8 whatever text it carries (a stored row, a client's id).
        data = clean_text(json.dumps(frame, ensure_ascii=False))
        async with self.lock:
            try:
                await self.ws.send_str(data)
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


class _Refused(Exception):
    """The handshake names no acceptable user: close with ``code`` and tell the client why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None


class WebSocketAdapter(ChannelAdapter[WebSocketChannelConfig]):
    """The web chat of one tenant: a WebSocket endpoint that streams replies to every tab of a user."""

    name = CHANNEL
    config_model = WebSocketChannelConfig
    replies_on_connection = True

    def __init__(self, *, tenant: str, config: WebSocketChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self._sockets: dict[str, set[_Socket]] = defaultdict(set)
        self._rate = RateLimiter(limit=config.rate_limit_per_min, period_s=60.0)
        self._resume: ResumeTokens | None = None

    def routes(self) -> list[Route]:
        return [
            Route(method="GET", path="ws", handler=self.handle),
            Route(method="GET", path="chat", handler=self.page),
        ]

    def pages(self) -> list[tuple[str, str]]:
        return [("web chat", "chat")]

    async def page(self, _request: web.Request) -> web.StreamResponse:
        """The web chat page: it speaks this channel's frames over ``ws`` next to it."""
        return chat_page_response()

    async def start(self) -> None:
        if self.config.identity == "none":
            log.warning(
                "tenant %s: web chat identity is 'none': whoever reaches /t/%s/ws can connect as any user "
                "and read that user's conversation. Use it only behind an authenticating proxy or on a "
                "trusted network; otherwise set channels.websocket.identity to 'anonymous' or 'signed'.",
                self.tenant,
                self.tenant,
            )

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

    async def _broadcast_final(self, user: str, frame: dict[str, Any]) -> int:
        """Send a reply's final frame to each socket of ``user`` that does not have it yet; how
        many sockets have it now."""
        reply_to = str(frame["reply_to"])
        have = 0
        for sock in list(self._sockets.get(user, ())):
            if reply_to in sock.finals:
                have += 1
                continue
            sock.finals.add(reply_to)  # before the await: a concurrent delivery sees it taken
            if await sock.send(frame):
                have += 1
            else:
                sock.finals.discard(reply_to)
        return have

    # -- handshake ---------------------------------------------------------------------------

    def origin_allowed(self, request: web.Request) -> bool:
        """No Origin (not a browser), the server's own host, or one of ``allowed_origins``."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = origin.strip().lower().rstrip("/")
        if origin in self.config.allowed_origins:
            return True
        scheme, sep, netloc = origin.partition("://")
        if not sep or scheme not in ("http", "https"):
            return False
        own = _host_port(request.host, scheme)
        theirs = _host_port(netloc, scheme)
        return own is not None and own == theirs

    def _token_ok(self, request: web.Request) -> bool:
        if self.config.token is None:
            return True
        given = request.query.get("token", "")
        return hmac.compare_digest(
            given.encode("utf-8", "replace"), self.config.token.get_secret_value().encode("utf-8")
        )

    async def _resume_tokens(self) -> ResumeTokens:
        if self._resume is None:
            self._resume = ResumeTokens(key=await self.runtime.deployment_key(RESUME_KEY))
        return self._resume

    async def identify(self, request: web.Request) -> tuple[str, str | None]:
        """The user this handshake is, and (anonymous mode) a fresh resume token; raises _Refused."""
        query = request.query
        if not self._token_ok(request):
            raise _Refused(CLOSE_UNAUTHORIZED, "not authorized: bad or missing token")
        mode = self.config.identity
        if mode == "anonymous":
            tokens = await self._resume_tokens()
            user = tokens.user_of(query.get("resume", ""), tenant=self.tenant) or new_anonymous_user()
            ttl = self.config.resume_ttl_days * 86_400
            return user, tokens.issue(tenant=self.tenant, user=user, ttl_s=ttl)
        user = query.get("user", "")
        try:
            check_identifier(user, what="query parameter 'user'", max_chars=MAX_USER_CHARS)
        except PayloadError as exc:
            code = CLOSE_UNAUTHORIZED if mode == "signed" else CLOSE_BAD_REQUEST
            raise _Refused(code, str(exc)) from None
        if mode == "signed":
            assert self.config.secret is not None  # the config validator requires it
            try:
                verify_signed_user(
                    self.config.secret.get_secret_value(),
                    tenant=self.tenant,
                    user=user,
                    expires=query.get("expires", ""),
                    sig=query.get("sig", ""),
                )
            except SignatureError as exc:
                raise _Refused(CLOSE_UNAUTHORIZED, f"not authorized: {exc}") from None
        return user, None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            log.warning(
                "tenant %s: refused a web chat handshake from origin %r", self.tenant, request.headers["Origin"]
            )
            return web.json_response(
                {"error": "this page's origin may not open the chat socket (channels.websocket.allowed_origins)"},
                status=403,
            )
        unavailable = False
        try:
            user, resume = await self.identify(request)
            refused = None
        except _Refused as exc:
            user, resume, refused = "", None, exc
        except StorageError as exc:  # anonymous mode needs the deployment key
            log.warning("tenant %s: web chat handshake while storage is unavailable: %s", self.tenant, describe(exc))
            user, resume, refused, unavailable = "", None, None, True
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
        await ws.prepare(request)
        sock = _Socket(ws)
        if unavailable:
            await sock.send({"type": "error", "reply_to": None, "kind": "unavailable", "message": UNAVAILABLE})
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"storage unavailable, try again later")
            return ws
        if refused is not None:
            if refused.code == CLOSE_BAD_REQUEST:  # unauthorized sockets get no frame at all
                await sock.send({"type": "error", "reply_to": None, "message": refused.reason})
            await ws.close(code=refused.code, message=refused.reason.encode()[:120])
            return ws
        self._sockets[user].add(sock)
        try:
            session: dict[str, Any] = {"type": "session", "user": user}
            if resume is not None:
                session["resume"] = resume
            await sock.send(session)
            await self._on_connect(user, sock, parse_acks(request.query.get("ack", "")))
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

    async def _on_connect(self, user: str, sock: _Socket, acked: list[str]) -> None:
        """History, then what the client says it already has (``?ack=``), then pending replies.
        While storage is down the socket stays open with an ``error`` frame; pending replies reach
        it when the recovery loop resends them."""
        sock.finals.update(acked)
        try:
            for reply_to in acked:
                await self.runtime.acknowledge(self.tenant, self.name, event_id_for(user, reply_to))
            await self._send_history(user, sock)
            await self.runtime.redeliver(self.tenant, self.name, user)
        except StorageError as exc:
            log.warning("tenant %s: web chat connect of %s without history: %s", self.tenant, user, describe(exc))
            await sock.send({"type": "error", "reply_to": None, "kind": "unavailable", "message": UNAVAILABLE})

    async def _send_history(self, user: str, sock: _Socket) -> None:
        history = await self.runtime.transcript(self.tenant, self.name, user)
        await sock.send(
            {
                "type": "history",
                "messages": [
                    {"role": m["role"], "text": m["text"], "id": client_id(m["event_id"], user)} for m in history
                ],
            }
        )

    # -- frames ------------------------------------------------------------------------------

    async def _on_text(self, user: str, sock: _Socket, raw: str) -> None:
        try:
            frame = parse_frame(raw)
        except PayloadError as exc:
            await sock.send(
                {"type": "error", "reply_to": _frame_id(raw), "kind": "bad_frame", "message": f"bad frame: {exc}"}
            )
            return
        if isinstance(frame, AckFrame):
            await self._on_ack(user, sock, frame.reply_to)
            return
        if isinstance(frame, CancelFrame):
            await self.runtime.cancel(self.tenant, self.name, event_id_for(user, frame.id), conversation_key=user)
            return
        if not self._rate.allow(user):
            await sock.send(
                {
                    "type": "error",
                    "reply_to": frame.id,
                    "kind": "rate_limited",
                    "message": f"Too many messages: at most {self.config.rate_limit_per_min} a minute. "
                    "This one was not sent; try again in a moment.",
                }
            )
            return
        try:
            result = await self.runtime.ingest(to_turn(tenant=self.tenant, user=user, frame=frame))
        except Exception as exc:
            level = logging.WARNING if isinstance(exc, StorageError) else logging.ERROR
            log.log(level, "could not accept a websocket message from %s: %s", user, describe(exc))
            await sock.send(
                {
                    "type": "error",
                    "reply_to": frame.id,
                    "kind": "unavailable",
                    "message": "the message could not be stored; send it again in a moment",
                }
            )
            return
        if result.refusal is not None:
            await sock.send(
                {"type": "error", "reply_to": frame.id, "kind": result.refusal.kind, "message": result.refusal.message}
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
            sent = await self._broadcast_final(user, frame)
        if not sent:
            raise DeliveryError(
                f"websocket user {user!r} is not connected; the reply waits for a reconnect", retryable=True
            )

    async def _on_ack(self, user: str, sock: _Socket, reply_to: str) -> None:
        """The client has the reply to ``reply_to``: recorded, so no reconnect or restart resends it."""
        sock.finals.add(reply_to)
        try:
            await self.runtime.acknowledge(self.tenant, self.name, event_id_for(user, reply_to))
        except StorageError as exc:  # the reply may come again after a restart; the client keys on reply_to
            log.warning("tenant %s: ack of %s not recorded: %s", self.tenant, reply_to, describe(exc))


def _frame_id(raw: str) -> str | None:
    try:
        data = load_json_object(raw, what="frame")
    except PayloadError:
        return None
    value = data.get("id")
    return value if isinstance(value, str) and len(value) <= 128 else None
