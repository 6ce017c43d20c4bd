"""A local fake of Tencent's iLink bot API (personal WeChat) that records what it receives.

- QR login: ``GET ilink/bot/get_bot_qrcode`` hands out ``qr-1``, ``qr-2``...;
  ``GET ilink/bot/get_qrcode_status`` answers from ``qr_script`` in order (the last entry repeats).
- ``POST ilink/bot/getupdates``: the fake keeps a message log; the cursor ``c:N`` means "the first N
  are known". A poll answers the messages after the cursor, or holds up to ``hold_s`` for new ones.
  ``push()`` adds a user message, ``replay(message_id)`` adds an earlier one again (iLink replays).
  ``expire()`` makes every call with the bot token answer ``-14``.
- ``POST ilink/bot/sendmessage`` records the message (``sent``) or answers a scripted ``ret``
  (``fail_send``); ``getconfig`` / ``sendtyping`` record typing.
- ``GET /c2c/download?encrypted_query_param=`` serves encrypted media put with ``put_media``.

Requests without ``AuthorizationType: ilink_bot_token``, a decimal-in-base64 ``X-WECHAT-UIN`` or (for
the bot endpoints) the right bearer token are answered 401 and recorded in ``rejected``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.local import serve_local

__all__ = ["Call", "FakeILink"]


@dataclass
class Call:
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    headers: dict[str, str]


@dataclass
class FakeILink:
    token: str = "ilink-bot-token-7f3a"
    bot_id: str = "b0f5860fdecb@im.bot"
    hold_s: float = 1.0
    """How long a getupdates without news is held (iLink holds about 35 s)."""
    qr_script: list[dict[str, Any]] = field(default_factory=lambda: [{"status": "wait"}])
    calls: list[Call] = field(default_factory=list)
    rejected: list[Call] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    typing: list[dict[str, Any]] = field(default_factory=list)
    send_failures: list[int] = field(default_factory=list)
    expired: bool = False
    media: dict[str, bytes] = field(default_factory=dict)
    _qr_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7431000000000000001))
    _news: asyncio.Condition | None = None
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_base_url(self) -> str:
        return f"{self.base_url}/c2c"

    async def __aenter__(self) -> FakeILink:
        self._news = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/ilink/bot/get_bot_qrcode", self._qrcode)
        app.router.add_get("/ilink/bot/get_qrcode_status", self._qrcode_status)
        for endpoint in ("getupdates", "sendmessage", "getconfig", "sendtyping"):
            app.router.add_post(f"/ilink/bot/{endpoint}", self._bot)
        app.router.add_get("/c2c/download", self._download)
        self._runner, self.port = await serve_local(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # control

    async def push(self, text: str = "", *, user: str = "o9cq8xYz@im.wechat", **fields: Any) -> dict[str, Any]:
        """A user's message (text, or ``item_list=[...]``), appended to the log; returns it."""
        message_id = fields.pop("message_id", None) or next(self._ids)
        message = {
            "seq": len(self.log) + 1,
            "message_id": message_id,
            "from_user_id": user,
            "to_user_id": self.bot_id,
            "create_time_ms": int(time.time() * 1000),
            "session_id": f"session-{user}",
            "message_type": 1,
            "message_state": 2,
            "context_token": f"ctx-{message_id}",
            "item_list": [{"type": 1, "text_item": {"text": text}}],
            **fields,
        }
        await self._append(message)
        return message

    async def replay(self, message_id: int) -> None:
        """iLink sends an earlier message again."""
        [message] = [m for m in self.log if m["message_id"] == message_id][:1]
        await self._append(dict(message))

    def expire(self) -> None:
        self.expired = True

    def fail_send(self, *rets: int) -> None:
        self.send_failures.extend(rets)

    def put_media(self, query: str, encrypted: bytes) -> None:
        self.media[query] = encrypted

    async def _append(self, message: dict[str, Any]) -> None:
        assert self._news is not None
        async with self._news:
            self.log.append(message)
            self._news.notify_all()

    # records

    def calls_to(self, endpoint: str) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/" + endpoint)]

    def texts_to(self, user: str) -> list[str]:
        return [m["item_list"][0]["text_item"]["text"] for m in self.sent if m["to_user_id"] == user]

    # handlers

    @staticmethod
    def _uin_ok(value: str) -> bool:
        try:
            return base64.b64decode(value, validate=True).decode("ascii").isdigit()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False

    async def _record(self, request: web.Request, *, bot: bool) -> Call | None:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        call = Call(path=request.path, query=dict(request.query), body=body, headers=dict(request.headers))
        ok = request.headers.get("AuthorizationType") == "ilink_bot_token" and self._uin_ok(
            request.headers.get("X-WECHAT-UIN", "")
        )
        if bot:
            ok = ok and request.headers.get("Authorization") == f"Bearer {self.token}"
            ok = ok and isinstance(body, dict) and isinstance(body.get("base_info"), dict)
        if not ok:
            self.rejected.append(call)
            return None
        self.calls.append(call)
        return call

    async def _qrcode(self, request: web.Request) -> web.StreamResponse:
        if await self._record(request, bot=False) is None:
            return web.Response(status=401)
        n = next(self._qr_ids)
        return web.json_response(
            {
                "qrcode": f"qr-{n}",
                "qrcode_img_content": f"https://liteapp.weixin.qq.com/q/7GiQu1?qrcode=qr-{n}&bot_type=3",
            }
        )

    async def _qrcode_status(self, request: web.Request) -> web.StreamResponse:
        if await self._record(request, bot=False) is None:
            return web.Response(status=401)
        status = self.qr_script.pop(0) if len(self.qr_script) > 1 else self.qr_script[0]
        if status.get("status") == "confirmed":
            status = {"bot_token": self.token, "ilink_bot_id": self.bot_id, "baseurl": self.base_url, **status}
        return web.json_response(status)

    async def _bot(self, request: web.Request) -> web.StreamResponse:
        call = await self._record(request, bot=True)
        if call is None:
            return web.Response(status=401)
        if self.expired:
            return web.json_response({"ret": -14, "errcode": -14, "errmsg": "session timeout"})
        endpoint = request.path.rsplit("/", 1)[1]
        body = call.body or {}
        if endpoint == "getupdates":
            return web.json_response(await self._updates(str(body.get("get_updates_buf") or "")))
        if endpoint == "sendmessage":
            if self.send_failures:
                return web.json_response({"ret": self.send_failures.pop(0), "errmsg": "scripted failure"})
            self.sent.append(body["msg"])
            return web.json_response({})
        if endpoint == "getconfig":
            return web.json_response({"ret": 0, "typing_ticket": base64.b64encode(b"ticket").decode()})
        self.typing.append(body)
        return web.json_response({"ret": 0})

    async def _updates(self, cursor: str) -> dict[str, Any]:
        assert self._news is not None
        start = int(cursor.split(":", 1)[1]) if cursor.startswith("c:") else 0
        async with self._news:
            if len(self.log) <= start:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait_for(lambda: len(self.log) > start), self.hold_s)
            msgs = self.log[start:]
        return {"ret": 0, "msgs": msgs, "get_updates_buf": f"c:{start + len(msgs)}", "longpolling_timeout_ms": 35000}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call(path=request.path, query=dict(request.query), body=None, headers=dict(request.headers)))
        data = self.media.get(request.query.get("encrypted_query_param", ""))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")
