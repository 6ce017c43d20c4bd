"""A local fake of the Slack Web API (and Socket Mode's websocket) that records what it receives.

Point slack_sdk at ``fake.base_url`` (``api_base_url`` in the channel config). It answers
``auth.test``, ``chat.postMessage``, ``chat.update`` and ``apps.connections.open``; any other method
answers ``{"ok": true}``. Posted messages are kept, with their ``metadata``, and served back by
``conversations.history`` / ``conversations.replies`` (newer than ``oldest``, by the fake's clock;
metadata only with ``include_all_metadata``), as Slack does. ``fail(method, error)`` makes the next
call(s) of a method fail the way Slack does (``ratelimited`` as HTTP 429 with Retry-After, other
errors as HTTP 200 ``ok: false``).

Socket Mode: ``apps.connections.open`` hands out ``ws://.../socket``; the fake says ``hello`` there,
``send_socket_event`` pushes an ``events_api`` envelope and ``socket_acks`` records the client's acks.

``hold(method, after=n)`` posts the (n+1)-th message but never answers that call: a process killed
then has sent a message it never learned about.

``signed_headers`` computes a real ``v0=`` signature (HMAC-SHA256 over ``v0:{ts}:{body}``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.local import serve_local

__all__ = ["BOT_ID", "BOT_USER_ID", "FakeSlack", "SlackCall", "signed_headers"]

BOT_USER_ID = "U07BOT1234"
BOT_ID = "B07BOT1234"
TEAM_ID = "T0001ACME"


def signed_headers(
    signing_secret: str, body: str | bytes, *, timestamp: int | None = None, retry_num: int | None = None
) -> dict[str, str]:
    """Headers Slack would send with ``body``: timestamp and ``v0=`` HMAC-SHA256 signature."""
    raw = body.encode() if isinstance(body, str) else body
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


@dataclass
class SlackCall:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Failure:
    error: str
    status: int
    times: int
    retry_after: int
    after: int = 0
    html: bool = False


@dataclass
class FakeSlack:
    """Run with ``async with FakeSlack() as slack:``; ``slack.base_url`` ends with ``/``."""

    calls: list[SlackCall] = field(default_factory=list)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    _failures: dict[str, _Failure] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _port: int = 0
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _socket_connected: asyncio.Event = field(default_factory=asyncio.Event)
    _ack_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """Private files by path below ``/files-pri/``: (bytes, content type)."""
    file_requests: list[SlackCall] = field(default_factory=list)
    file_token: str = ""
    """The bearer token file downloads need (empty: any)."""
    stored: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """Every message posted, with the time it arrived: what history and replies serve."""
    _held: dict[str, int] = field(default_factory=dict)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a held call has been stored and is waiting (see :meth:`hold`)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/"

    def add_file(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        """Serve a private file; returns its ``url_private``."""
        self.files[name] = (data, content_type)
        return f"http://127.0.0.1:{self._port}/files-pri/{name}"

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{name}", self._file)
        self._runner, self._port = await serve_local(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # control

    def fail(
        self,
        method: str,
        error: str,
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: int = 1,
        after: int = 0,
        html: bool = False,
    ) -> None:
        """Make ``times`` calls of ``method`` fail with Slack error ``error``, after ``after`` succeed
        (``html``: with a proxy's HTML error page instead of Slack's JSON)."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        self._failures[method] = _Failure(
            error=error, status=status, times=times, retry_after=retry_after, after=after, html=html
        )

    def hold(self, method: str, *, after: int = 0) -> None:
        """Let ``after`` calls of ``method`` through; the next one takes effect (a message is posted)
        but its answer never comes: the caller cannot know it worked (kill it then)."""
        self._held[method] = after

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def posted(self) -> list[dict[str, Any]]:
        """Params of every chat.postMessage, in order."""
        return [c.params for c in self.calls_to("chat.postMessage")]

    async def wait_socket_connected(self, within: float = 5.0) -> None:
        await asyncio.wait_for(self._socket_connected.wait(), within)

    async def send_socket_event(self, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Push an ``events_api`` envelope to the connected Socket Mode client; returns its envelope_id."""
        envelope_id = str(uuid.uuid4())
        message = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "" if retry_attempt == 0 else "timeout",
        }
        await self._sockets[-1].send_str(json.dumps(message))
        return envelope_id

    async def wait_ack(self, envelope_id: str, within: float = 5.0) -> dict[str, Any]:
        async def arrived() -> dict[str, Any]:
            while True:
                for ack in self.socket_acks:
                    if ack.get("envelope_id") == envelope_id:
                        return ack
                self._ack_arrived.clear()
                await self._ack_arrived.wait()

        return await asyncio.wait_for(arrived(), within)

    # handlers

    async def _file(self, request: web.Request) -> web.Response:
        """``url_private`` downloads: like Slack, a missing/bad token gets the HTML login page (200)."""
        name = request.match_info["name"]
        self.file_requests.append(SlackCall(method=name, params={}, headers=dict(request.headers)))
        if self.file_token and request.headers.get("Authorization") != f"Bearer {self.file_token}":
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        if name not in self.files:
            return web.Response(status=404)
        data, content_type = self.files[name]
        return web.Response(body=data, content_type=content_type)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        if request.content_type == "application/json" and raw:
            params: dict[str, Any] = json.loads(raw)
        else:
            params = dict(parse_qsl(raw.decode()))
        params.update(request.query)
        self.calls.append(SlackCall(method=method, params=params, headers=dict(request.headers)))

        failure = self._failures.get(method)
        if failure is not None and failure.after > 0:
            failure.after -= 1
        elif failure is not None and failure.times > 0:
            failure.times -= 1
            headers = {"Retry-After": str(failure.retry_after)} if failure.status == 429 else {}
            if failure.html:
                page = f"<html><body>{failure.status} {failure.error}</body></html>"
                return web.Response(status=failure.status, text=page, content_type="text/html", headers=headers)
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=headers
            )

        if method == "auth.test":
            return web.json_response(
                {
                    "ok": True,
                    "url": "https://acme.slack.com/",
                    "team": "Acme",
                    "user": "helper",
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "is_enterprise_install": False,
                }
            )
        if method == "chat.postMessage":
            ts = f"1731500000.{next(self._ts):06d}"
            message = {"type": "message", "text": params.get("text", ""), "user": BOT_USER_ID, "ts": ts}
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            stored = {**message, "channel": params.get("channel")}
            metadata = params.get("metadata")
            if isinstance(metadata, str) and metadata:
                metadata = json.loads(metadata)
            if isinstance(metadata, dict):
                stored["metadata"] = metadata
            self.stored.append((time.time(), stored))
            if self._held.get(method) == 0:
                del self._held[method]
                self.holding.set()
                await self._closing.wait()
                raise web.HTTPServiceUnavailable()
            if method in self._held:
                self._held[method] -= 1
            return web.json_response(
                {"ok": True, "channel": params.get("channel"), "ts": ts, "message": message}
            )
        if method == "chat.update":
            return web.json_response(
                {
                    "ok": True,
                    "channel": params.get("channel"),
                    "ts": params.get("ts"),
                    "text": params.get("text"),
                }
            )
        if method in ("conversations.history", "conversations.replies"):
            return web.json_response(self._read_back(method, params))
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self._port}/socket"})
        return web.json_response({"ok": True})

    def _read_back(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A channel's messages (history) or a thread's (replies), newest first, one page."""
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        found = []
        for arrived, message in reversed(self.stored):
            if message["channel"] != params.get("channel") or arrived < oldest:
                continue
            if method == "conversations.replies" and message.get("thread_ts") != params.get("ts"):
                continue
            shown = {k: v for k, v in message.items() if k != "channel"}
            if not with_metadata:
                shown.pop("metadata", None)
            found.append(shown)
        return {"ok": True, "messages": found, "has_more": False, "response_metadata": {"next_cursor": ""}}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": "A0APPID123"},
                }
            )
        )
        self._socket_connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(msg.data))
                self._ack_arrived.set()
        self._sockets.remove(ws)
        return ws
