"""A small stand-in for ``botframework serve`` as far as the web chat page can tell.

It serves the page the way the real server does (``GET /t/{tenant}/chat`` returns ``chat.html``
as-is, ``GET /static/{file}`` serves ``botframework/web/static/``) and speaks the WebSocket frames
of the README plus the additive ones (accepted, reset, history, cancel). Everything it receives is
recorded so tests can assert on it.

Two layers, so the same tests can later run against the real server:

* the portable surface (:class:`ChatSite`): ``base_url``, ``tenant``, ``page_url()`` and the model
  hooks ``answer()`` / ``fail_next()`` — with the real server these would script its fake model;
* fake-only controls on :class:`FakeChatServer` (``on_message``, ``drop()``, ``push()``, frame
  records) for protocol cases a real model cannot be made to produce on cue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from aiohttp import WSCloseCode, WSMsgType, web

from botframework.web import CHAT_PAGE, STATIC_DIR

__all__ = ["WAIT_S", "Answer", "ChatSite", "Connection", "FakeChatServer", "Frame"]

Frame = dict[str, Any]
WAIT_S = 5.0


class ChatSite(Protocol):
    """What the portable tests need from a server that hosts the chat page."""

    base_url: str
    tenant: str

    def page_url(self, *, user: str | None = None, token: str | None = None) -> str: ...

    def answer(self, *chunks: str, final: str | None = None, hold: bool = False) -> Answer: ...

    def fail_next(self, message: str, *, kind: str = "server_error") -> None: ...


@dataclass
class Answer:
    """One scripted model answer: streamed ``chunks``, then ``final`` (default: the chunks joined).

    With ``hold`` the answer pauses after its chunks until :meth:`release` or a ``cancel`` frame.
    """

    chunks: tuple[str, ...]
    final: str | None = None
    hold: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()

    @property
    def text(self) -> str:
        return self.final if self.final is not None else "".join(self.chunks)


@dataclass
class _Failure:
    message: str
    kind: str


@dataclass
class Connection:
    """One accepted WebSocket and everything the page sent on it."""

    ws: web.WebSocketResponse
    user: str
    token: str | None
    received: list[Frame] = field(default_factory=list)

    async def send(self, frame: Frame) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(frame))


MessageHandler = Callable[[Connection, Frame], Awaitable[None]]


class FakeChatServer:
    """Serves the chat page and plays the server side of the frame protocol on port 0."""

    def __init__(self, *, tenant: str = "acme", token: str | None = None, send_accepted: bool = True) -> None:
        self.tenant = tenant
        self.token = token
        self.send_accepted = send_accepted
        self.refuse: tuple[int, str] | None = None  # close every new socket with (code, reason)
        self.base_url = ""
        self.connections: list[Connection] = []
        self.http_paths: list[str] = []
        self.history: dict[str, list[Frame]] = {}
        self.on_message: MessageHandler | None = None
        self.cancels: dict[str, asyncio.Event] = {}
        self._answers: list[Answer | _Failure] = []
        self._stored: dict[str, set[str]] = {}
        self._pending: dict[str, list[Frame]] = {}
        self._turns: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    # ---- portable surface
    def page_url(self, *, user: str | None = None, token: str | None = None) -> str:
        query = {k: v for k, v in (("user", user), ("token", token)) if v is not None}
        return f"{self.base_url}/t/{self.tenant}/chat" + (f"?{urlencode(query)}" if query else "")

    def answer(self, *chunks: str, final: str | None = None, hold: bool = False) -> Answer:
        scripted = Answer(chunks=chunks, final=final, hold=hold)
        self._answers.append(scripted)
        return scripted

    def fail_next(self, message: str, *, kind: str = "server_error") -> None:
        self._answers.append(_Failure(message, kind))

    # ---- lifecycle
    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/t/{tenant}/chat", self._page)
        app.router.add_get("/static/{file}", self._static)
        app.router.add_get("/t/{tenant}/ws", self._ws)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.base_url

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.drop()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- fake-only controls
    @property
    def received(self) -> list[Frame]:
        return [frame for conn in self.connections for frame in conn.received]

    def frames(self, kind: str) -> list[Frame]:
        return [frame for frame in self.received if frame.get("type") == kind]

    def live(self, user: str | None = None) -> list[Connection]:
        return [c for c in self.connections if not c.ws.closed and (user is None or c.user == user)]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (at most WAIT_S) until ``predicate()`` holds; re-checked on every frame and connection."""
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_frame(self, kind: str, count: int = 1) -> Frame:
        """The ``count``-th frame of type ``kind`` the page sent, once it has arrived."""
        await self.wait_for(lambda: len(self.frames(kind)) >= count)
        return self.frames(kind)[count - 1]

    async def push(self, user: str, frame: Frame) -> None:
        """Send ``frame`` to the user's open sockets; a ``done``/``error`` waits for a reconnect."""
        targets = self.live(user)
        for conn in targets:
            await conn.send(frame)
        if not targets and frame.get("type") in {"done", "error"}:
            self._pending.setdefault(user, []).append(frame)

    async def drop(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Close every open socket, as a restarting server or a broken network would."""
        for conn in self.live():
            await conn.ws.close(code=code, message=b"server going away")

    def remember(self, user: str, role: str, text: str, msg_id: str | None = None) -> None:
        self.history.setdefault(user, []).append({"role": role, "text": text, "id": msg_id})

    # ---- HTTP
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _page(self, request: web.Request) -> web.StreamResponse:
        self.http_paths.append(request.path_qs)
        if request.match_info["tenant"] != self.tenant:
            raise web.HTTPNotFound()
        return web.FileResponse(CHAT_PAGE, headers={"Cache-Control": "no-cache"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        self.http_paths.append(request.path_qs)
        name = request.match_info["file"]
        path = STATIC_DIR / name
        if name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["tenant"] != self.tenant:
            raise web.HTTPNotFound()
        user = request.query.get("user", "")
        if not user:
            raise web.HTTPBadRequest(text="user is required")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws=ws, user=user, token=request.query.get("token"))
        self.connections.append(conn)
        await self._notify()
        if self.refuse is not None:
            await ws.close(code=self.refuse[0], message=self.refuse[1].encode())
            return ws
        if self.token is not None and conn.token != self.token:
            await conn.send({"type": "error", "reply_to": None,
                             "message": "not authorized: bad or missing token"})
            await ws.close(code=4401, message=b"not authorized")
            return ws
        await conn.send({"type": "history", "messages": list(self.history.get(user, []))})
        for frame in self._pending.pop(user, []):
            await conn.send(frame)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            conn.received.append(frame)
            await self._notify()
            if frame.get("type") == "cancel":
                self.cancels.setdefault(str(frame.get("id")), asyncio.Event()).set()
            elif frame.get("type") == "message":
                handler = self.on_message or self._default_message
                await handler(conn, frame)
        await self._notify()
        return ws

    # ---- the default conversation: store, accept, answer in order
    async def _default_message(self, conn: Connection, frame: Frame) -> None:
        msg_id, text = str(frame["id"]), str(frame["text"])
        stored = self._stored.setdefault(conn.user, set())
        duplicate = msg_id in stored
        if not duplicate:
            stored.add(msg_id)
            self.remember(conn.user, "user", text, msg_id)
        if self.send_accepted:
            await self.push(conn.user, {"type": "accepted", "reply_to": msg_id})
        if not duplicate:
            task = asyncio.create_task(self._answer_turn(conn.user, msg_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer_turn(self, user: str, msg_id: str) -> None:
        async with self._turns.setdefault(user, asyncio.Lock()):
            scripted = self._answers.pop(0) if self._answers else Answer(chunks=("Echo: ", "ok"))
            if isinstance(scripted, _Failure):
                await self.push(user, {"type": "error", "reply_to": msg_id, "message": scripted.message,
                                       "kind": scripted.kind})
                return
            for chunk in scripted.chunks:
                await self.push(user, {"type": "delta", "reply_to": msg_id, "text": chunk})
            cancel = self.cancels.setdefault(msg_id, asyncio.Event())
            if scripted.hold:
                waits = {asyncio.create_task(scripted.released.wait()), asyncio.create_task(cancel.wait())}
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
            if cancel.is_set():
                await self.push(user, {"type": "error", "reply_to": msg_id, "message": "Cancelled.",
                                       "kind": "cancelled"})
                return
            self.remember(user, "assistant", scripted.text)
            await self.push(user, {"type": "done", "reply_to": msg_id, "text": scripted.text})
