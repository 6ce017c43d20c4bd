"""A local fake of Discord's REST API and gateway, speaking to the real discord.py client.

REST (below ``fake.api_base``, i.e. ``/api/v10``): ``GET /users/@me``, ``GET /oauth2/applications/@me``,
``GET /gateway`` and ``/gateway/bot``, ``GET /channels/{id}`` (from ``fake.channels``),
``POST /channels/{id}/messages`` (rejects content over 2,000 characters or a nonce over 25 with Discord's
400/50035; with ``enforce_nonce``, a nonce seen before in the channel returns that message and creates
none, kept in ``fake.created``) and
``POST /channels/{id}/typing``. Every request is recorded in ``fake.requests``; ``fail()`` makes the
next matching requests fail with a status and Discord's JSON error body.

Gateway (``/gateway``, the URL ``/gateway/bot`` returns): HELLO on connect; heartbeat -> ACK;
IDENTIFY -> READY (records the intents); RESUME -> RESUMED. Honours the transport compression
discord.py asks for: ``compress=zlib-stream`` (a Z_SYNC_FLUSH ends each message), or
``zstd-stream`` when zstandard is installed (a flushed block per message).
Tests push events with ``dispatch()`` and cut the connection with ``drop()`` (a close code, or an
abrupt TCP close) to prove the client resumes. ``reject_identify`` closes IDENTIFY with a code
(4014 = disallowed intents).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.local import serve_local

__all__ = ["APP_ID", "BOT_USER", "BOT_USER_ID", "DiscordRequest", "FakeDiscord", "GatewayConnection"]

BOT_USER_ID = "1100000000000000042"
APP_ID = "1100000000000000041"
BOT_USER: dict[str, Any] = {
    "id": BOT_USER_ID,
    "username": "helper",
    "discriminator": "0",
    "global_name": "Helper",
    "avatar": None,
    "bot": True,
    "verified": True,
    "flags": 0,
    "mfa_enabled": True,
}
MAX_CONTENT = 2000
MAX_NONCE = 25

# op codes
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 10, 11


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Discord answers ``Content-Type: application/json`` exactly (discord.py compares it literally)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


@dataclass
class DiscordRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class _Failure:
    method: str
    path_suffix: str
    status: int
    body: dict[str, Any]
    times: int
    after: int = 0


class _ZlibStream:
    """``compress=zlib-stream``: one zlib stream per connection, each message ends in a sync flush."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj()

    def pack(self, data: bytes) -> bytes:
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class _ZstdStream:
    """``compress=zstd-stream`` (discord.py's choice when zstandard is importable): one zstd stream
    per connection, each message a flushed block that the client's streaming decompressor completes."""

    def __init__(self) -> None:
        import zstandard

        self._flush_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        self._zstd = zstandard.ZstdCompressor().compressobj()

    def pack(self, data: bytes) -> bytes:
        return bytes(self._zstd.compress(data)) + bytes(self._zstd.flush(self._flush_block))


_COMPRESSORS: dict[str, Any] = {"zlib-stream": _ZlibStream, "zstd-stream": _ZstdStream}


@dataclass
class GatewayConnection:
    """One gateway websocket as the fake saw it."""

    query: dict[str, str]
    ws: web.WebSocketResponse
    request: web.Request
    compressor: Any = None
    received: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload)
        if self.compressor is not None:
            await self.ws.send_bytes(self.compressor.pack(data.encode()))
        else:
            await self.ws.send_str(data)


@dataclass
class FakeDiscord:
    """Run with ``async with FakeDiscord() as discord_api:``; pass ``api_base`` as ``api_base_url``."""

    requests: list[DiscordRequest] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    """Messages actually created (a deduplicated nonce creates none)."""
    by_nonce: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    connections: list[GatewayConnection] = field(default_factory=list)
    identifies: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    reject_identify: int | None = None
    session_id: str = "fake-session-1"
    _seq: int = 0
    _failures: list[_Failure] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _port: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner, self._port = await serve_local(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in list(self.connections):
            if not conn.ws.closed:
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # control

    def fail(
        self, method: str, path_suffix: str, status: int, *, code: int = 0, times: int = 1, after: int = 0
    ) -> None:
        """Make ``times`` requests ``method`` whose path ends with ``path_suffix`` fail, after ``after`` pass."""
        body = {"message": f"fake failure {status}", "code": code}
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
        self._failures.append(_Failure(method, path_suffix, status, body, times, after))

    def add_channel(self, channel_id: str, *, guild_id: str, parent_id: str | None = None, name: str = "c") -> None:
        """Make ``GET /channels/{id}`` know a channel (a thread when ``parent_id`` is given)."""
        data: dict[str, Any] = {
            "id": channel_id,
            "guild_id": guild_id,
            "name": name,
            "type": 0,
            "position": 0,
        }
        if parent_id is not None:
            data.update(
                type=11,
                parent_id=parent_id,
                owner_id="1",
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": "2026-11-12T10:00:00+00:00",
                    "locked": False,
                },
                message_count=1,
                member_count=1,
                rate_limit_per_user=0,
            )
        self.channels[channel_id] = data

    def requests_to(self, method: str, path_suffix: str) -> list[DiscordRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    @property
    def sent_messages(self) -> list[DiscordRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send a DISPATCH to the current gateway connection; returns its sequence number."""
        conn = await self.current()
        self._seq += 1
        await conn.send({"op": DISPATCH, "t": event, "s": self._seq, "d": data})
        return self._seq

    async def current(self) -> GatewayConnection:
        """The open gateway connection (waits until there is one that has identified or resumed)."""
        await self.wait_until(lambda: bool(self.connections) and self._ready_on(self.connections[-1]))
        return self.connections[-1]

    async def drop(self, *, code: int | None = 4000) -> None:
        """Cut the current connection: a close frame with ``code``, or ``None`` for an abrupt TCP close."""
        conn = await self.current()
        if code is None:
            transport = conn.request.transport
            assert transport is not None
            transport.close()
        else:
            await conn.ws.close(code=code)

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` holds: re-checked on every fake event and every 10 ms."""

        async def reached() -> None:
            while not predicate():
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.01)

        await asyncio.wait_for(reached(), within)

    # handlers

    def _ready_on(self, conn: GatewayConnection) -> bool:
        return not conn.ws.closed and any(p.get("op") in (IDENTIFY, RESUME) for p in conn.received)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await request.read()
        payload = json.loads(body) if body and request.content_type == "application/json" else None
        self.requests.append(DiscordRequest(request.method, path, dict(request.headers), payload))
        await self._notify()

        for failure in self._failures:
            matches = failure.method == request.method and path.endswith(failure.path_suffix)
            if matches and failure.after > 0:
                failure.after -= 1
                continue
            if failure.times > 0 and matches:
                failure.times -= 1
                headers = {}
                if failure.status == 429:
                    # discord.py takes a 429 without Via (Discord's proxy) for a Cloudflare ban
                    headers = {"Retry-After": "0.05", "X-RateLimit-Scope": "user", "Via": "1.1 google"}
                return _json(failure.body, status=failure.status, headers=headers)

        if request.method == "GET" and path == "/users/@me":
            return _json(BOT_USER)
        if request.method == "GET" and path == "/oauth2/applications/@me":
            return _json(
                {
                    "id": APP_ID,
                    "name": "helper",
                    "icon": None,
                    "description": "",
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": {**BOT_USER, "id": "1100000000000000001", "username": "owner", "bot": False},
                    "verify_key": "0" * 64,
                    "flags": 0,
                    "team": None,
                }
            )
        if request.method == "GET" and path in ("/gateway", "/gateway/bot"):
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "channels" and request.method == "GET":
            channel = self.channels.get(parts[1])
            if channel is None:
                return _json({"message": "Unknown Channel", "code": 10003}, status=404)
            return _json(channel)
        if len(parts) == 3 and parts[0] == "channels" and parts[2] == "typing" and request.method == "POST":
            return web.Response(status=204)
        if len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages" and request.method == "POST":
            content = (payload or {}).get("content") or ""
            if len(content) > MAX_CONTENT:
                return _json(
                    {
                        "message": "Invalid Form Body",
                        "code": 50035,
                        "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}},
                    },
                    status=400,
                )
            nonce = str((payload or {}).get("nonce") or "")
            if len(nonce) > MAX_NONCE:
                return _json(
                    {
                        "message": "Invalid Form Body",
                        "code": 50035,
                        "errors": {"nonce": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}},
                    },
                    status=400,
                )
            if nonce and (payload or {}).get("enforce_nonce") and (parts[1], nonce) in self.by_nonce:
                return _json(self.by_nonce[(parts[1], nonce)])  # Discord's dedupe: the first message again
            message = self._message(parts[1], payload or {})
            self.created.append(message)
            if nonce:
                self.by_nonce[(parts[1], nonce)] = message
            return _json(message)
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _message(self, channel_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(1300000000000000000 + next(self._ids)),
            "channel_id": channel_id,
            "author": BOT_USER,
            "content": payload.get("content") or "",
            "timestamp": "2026-11-12T10:00:00.000000+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 19 if payload.get("message_reference") else 0,
            "flags": 0,
        }
        if payload.get("message_reference"):
            message["message_reference"] = payload["message_reference"]
        return message

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        query = dict(request.query)
        conn = GatewayConnection(query=query, ws=ws, request=request)
        compress = query.get("compress")
        if compress in _COMPRESSORS:
            conn.compressor = _COMPRESSORS[compress]()
        elif compress:
            await ws.close(code=4000, message=f"fake gateway cannot {compress}".encode())
            return ws
        self.connections.append(conn)
        await conn.send({"op": HELLO, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            conn.received.append(payload)
            op = payload.get("op")
            if op == HEARTBEAT:
                await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            elif op == IDENTIFY:
                self.identifies.append(payload["d"])
                if self.reject_identify is not None:
                    await ws.close(code=self.reject_identify)
                    break
                self._seq += 1
                await conn.send({"op": DISPATCH, "t": "READY", "s": self._seq, "d": self._ready()})
            elif op == RESUME:
                self.resumes.append(payload["d"])
                self._seq += 1
                await conn.send({"op": DISPATCH, "t": "RESUMED", "s": self._seq, "d": {}})
            await self._notify()
        await self._notify()
        return ws

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": BOT_USER,
            "guilds": [],
            "session_id": self.session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
