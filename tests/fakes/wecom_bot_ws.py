"""A local fake of the WeCom AI bot long-connection server (aiohttp WebSocket on port 0).

It speaks the frame protocol: ``aibot_subscribe`` is acked with errcode 0 for the right bot id and
secret (``40001`` otherwise), ``ping`` is acked (unless ``answer_pings`` is off), and every other
frame we receive is acked after ``ack_delay_s`` with errcode 0 or a scripted one (``fail(cmd, code)``).
Everything received is recorded in ``frames`` (with the connection number). It also checks the rule
that frames of one ``req_id`` are sent one at a time, each after the previous ack: a frame that
arrives while an earlier one of its ``req_id`` is unacked is recorded in ``overlaps``.

Control: ``message(body)`` / ``event(body)`` push a callback to the subscribed connection (returning
its req_id), ``drop()`` closes the connection, ``displace()`` sends ``disconnected_event`` and closes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.local import serve_local

__all__ = ["FakeWeComBotServer", "Frame"]


@dataclass
class Frame:
    connection: int
    cmd: str
    req_id: str
    body: dict[str, Any]


@dataclass
class FakeWeComBotServer:
    bot_id: str = "aib8Xx9Q2mT4"
    secret: str = "wecom-bot-secret-9f2c"
    ack_delay_s: float = 0.02
    answer_pings: bool = True
    frames: list[Frame] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    connections: int = 0
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _unacked: set[str] = field(default_factory=set)
    _ws: web.WebSocketResponse | None = None
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def __aenter__(self) -> FakeWeComBotServer:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner, self.port = await serve_local(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # control

    def fail(self, cmd: str, *errcodes: int) -> None:
        """The next frames of ``cmd`` (one per code) are acked with these errcodes."""
        self._failures.setdefault(cmd, []).extend(errcodes)

    async def subscribed(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def message(self, body: dict[str, Any]) -> str:
        return await self._push("aibot_msg_callback", body)

    async def event(self, body: dict[str, Any]) -> str:
        return await self._push("aibot_event_callback", body)

    async def _push(self, cmd: str, body: dict[str, Any]) -> str:
        await self.subscribed()
        assert self._ws is not None
        req_id = f"cb-{next(self._ids)}"
        await self._ws.send_str(json.dumps({"cmd": cmd, "headers": {"req_id": req_id}, "body": body}))
        return req_id

    async def drop(self) -> None:
        ws, self._ws = self._ws, None
        self._subscribed.clear()
        if ws is not None:
            await ws.close()

    async def displace(self) -> None:
        await self.event(
            {
                "msgid": "disc-1",
                "create_time": 0,
                "aibotid": self.bot_id,
                "msgtype": "event",
                "event": {"eventtype": "disconnected_event"},
            }
        )
        await self.drop()

    # records

    def of(self, cmd: str) -> list[Frame]:
        return [f for f in self.frames if f.cmd == cmd]

    def stream_frames(self, req_id: str) -> list[dict[str, Any]]:
        return [f.body["stream"] for f in self.of("aibot_respond_msg") if f.req_id == req_id]

    # server

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        number = self.connections
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            cmd, req_id = frame.get("cmd", ""), frame["headers"]["req_id"]
            body = frame.get("body") or {}
            self.frames.append(Frame(connection=number, cmd=cmd, req_id=req_id, body=body))
            if cmd == "aibot_subscribe":
                ok = body.get("bot_id") == self.bot_id and body.get("secret") == self.secret
                await ws.send_str(
                    json.dumps(
                        {
                            "headers": {"req_id": req_id},
                            "errcode": 0 if ok else 40001,
                            "errmsg": "ok" if ok else "invalid secret",
                        }
                    )
                )
                if ok:
                    self._ws = ws
                    self._subscribed.set()
                continue
            if cmd == "ping":
                if self.answer_pings:
                    await ws.send_str(json.dumps({"headers": {"req_id": req_id}, "errcode": 0, "errmsg": "ok"}))
                continue
            if req_id in self._unacked:
                self.overlaps.append(req_id)
            self._unacked.add(req_id)
            asyncio.get_running_loop().create_task(self._ack(ws, cmd, req_id))
        if self._ws is ws:
            self._ws = None
            self._subscribed.clear()
        return ws

    async def _ack(self, ws: web.WebSocketResponse, cmd: str, req_id: str) -> None:
        await asyncio.sleep(self.ack_delay_s)
        failures = self._failures.get(cmd) or []
        errcode = failures.pop(0) if failures else 0
        self._unacked.discard(req_id)
        if not ws.closed:
            await ws.send_str(
                json.dumps(
                    {
                        "headers": {"req_id": req_id},
                        "errcode": errcode,
                        "errmsg": "ok" if not errcode else f"error {errcode}",
                    }
                )
            )
