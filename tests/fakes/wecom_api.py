"""A local fake of the WeCom API (``gettoken``, ``message/send``) that records what it receives.

Point the channel's ``api_base_url`` at ``fake.base_url``. Every call is recorded (query, parsed
JSON body and the raw bytes). Tokens are ``TOKEN-1``, ``TOKEN-2``...; ``expire_tokens()`` makes every
issued token answer the "expired" errcode; ``fail_send(errcode)`` / ``fail_token(errcode)`` make the
next call(s) fail the way the vendor does (HTTP 200 with an errcode). WeCom's duplicate check is
honoured: a send with ``enable_duplicate_check`` whose content already went to that user within
``duplicate_check_interval`` answers ok, sends nothing, and lands in ``deduplicated``. :class:`FakeTencentApi` is
shared with the WeChat fake (``tests/fakes/wechat_api.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from channels.wecom.crypto import MsgCrypt
from tests.fakes.local import serve_local

__all__ = ["ApiCall", "FakeTencentApi", "FakeWeCom", "encrypted_callback", "text_message"]


@dataclass
class ApiCall:
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    raw: bytes


@dataclass
class _Failure:
    errcode: int
    errmsg: str
    times: int
    after: int


@dataclass
class FakeTencentApi:
    """Run with ``async with Fake() as api:``; subclasses name the endpoints."""

    token_path: ClassVar[str]
    send_path: ClassVar[str]
    expired_errcode: ClassVar[int] = 42001
    token_delay: float = 0.0
    """Seconds the token endpoint takes (to make concurrent refreshes overlap)."""

    calls: list[ApiCall] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Bodies of the sends the fake accepted, in order."""
    sent_times: list[float] = field(default_factory=list)
    deduplicated: list[dict[str, Any]] = field(default_factory=list)
    """Sends answered ok but dropped as repeats (WeCom's ``enable_duplicate_check``)."""
    valid_tokens: set[str] = field(default_factory=set)
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _send_failures: list[_Failure] = field(default_factory=list)
    _token_failures: list[_Failure] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> FakeTencentApi:
        app = web.Application()
        app.router.add_get(self.token_path, self._token)
        app.router.add_post(self.send_path, self._send)
        self._runner, self._port = await serve_local(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # control

    def fail_send(self, errcode: int, *, errmsg: str = "", times: int = 1, after: int = 0) -> None:
        """The next ``times`` sends (after ``after`` succeed) answer ``errcode``."""
        self._send_failures.append(_Failure(errcode, errmsg or f"error {errcode}", times, after))

    def fail_token(self, errcode: int, *, errmsg: str = "", times: int = 1) -> None:
        self._token_failures.append(_Failure(errcode, errmsg or f"error {errcode}", times, 0))

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired."""
        self.valid_tokens.clear()

    # records

    def calls_to(self, path: str) -> list[ApiCall]:
        return [c for c in self.calls if c.path == path]

    @property
    def token_calls(self) -> list[ApiCall]:
        return self.calls_to(self.token_path)

    @property
    def send_calls(self) -> list[ApiCall]:
        return self.calls_to(self.send_path)

    # handlers

    @staticmethod
    def _take(failures: list[_Failure]) -> _Failure | None:
        for failure in failures:
            if failure.after > 0:
                failure.after -= 1
                return None
            if failure.times > 0:
                failure.times -= 1
                return failure
        return None

    async def _token(self, request: web.Request) -> web.Response:
        self.calls.append(ApiCall(path=request.path, query=dict(request.query), body=None, raw=b""))
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        failure = self._take(self._token_failures)
        if failure is not None:
            return web.json_response({"errcode": failure.errcode, "errmsg": failure.errmsg})
        token = f"TOKEN-{next(self._tokens)}"
        self.valid_tokens.add(token)
        return web.json_response(self.token_response(token))

    def token_response(self, token: str) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body: dict[str, Any] = json.loads(raw)
        self.calls.append(ApiCall(path=request.path, query=dict(request.query), body=body, raw=raw))
        token = request.query.get("access_token", "")
        if token not in self.valid_tokens:
            code = self.expired_errcode if token.startswith("TOKEN-") else 40014
            return web.json_response({"errcode": code, "errmsg": "access_token expired or invalid"})
        failure = self._take(self._send_failures)
        if failure is not None:
            return web.json_response({"errcode": failure.errcode, "errmsg": failure.errmsg})
        if self.duplicate(body):
            self.deduplicated.append(body)
            return web.json_response(self.send_response(body))
        self.sent.append(body)
        self.sent_times.append(time.time())
        return web.json_response(self.send_response(body))

    def duplicate(self, body: dict[str, Any]) -> bool:
        """Whether the vendor would drop this send as a repeat (it then answers ok and sends nothing)."""
        return False

    def send_response(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "ok"}


@dataclass
class FakeWeCom(FakeTencentApi):
    """WeCom: ``GET /cgi-bin/gettoken?corpid&corpsecret``, ``POST /cgi-bin/message/send``."""

    token_path: ClassVar[str] = "/cgi-bin/gettoken"
    send_path: ClassVar[str] = "/cgi-bin/message/send"

    def send_response(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": f"msg-{len(self.sent)}"}

    def duplicate(self, body: dict[str, Any]) -> bool:
        """``enable_duplicate_check``: the same content to the same user within the interval (default
        1,800 s) was sent already."""
        if body.get("enable_duplicate_check") != 1:
            return False
        window = float(body.get("duplicate_check_interval", 1800))
        msgtype = body.get("msgtype", "")
        now = time.time()
        return any(
            now - at <= window
            and earlier.get("touser") == body.get("touser")
            and earlier.get("msgtype") == msgtype
            and earlier.get(msgtype) == body.get(msgtype)
            for at, earlier in zip(self.sent_times, self.sent, strict=True)
        )


def encrypted_callback(
    crypt: MsgCrypt, plaintext: str, *, to_user: str, timestamp: str, nonce: str, random_prefix: bytes | None = None
) -> tuple[dict[str, str], bytes]:
    """The query and body the vendor POSTs for ``plaintext`` (WeCom, or WeChat safe mode)."""
    encrypted = crypt.encrypt(plaintext.encode("utf-8"), random_prefix=random_prefix)
    query = {"msg_signature": crypt.signature(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    body = f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return query, body.encode("utf-8")


def text_message(*, to_user: str, from_user: str, text: str, msg_id: int, create_time: int, agent_id: str = "") -> str:
    """A text message's XML as both vendors write it (``agent_id``: WeCom only)."""
    agent = f"<AgentID>{agent_id}</AgentID>" if agent_id else ""
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><FromUserName><![CDATA[{from_user}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId>{agent}</xml>"
    )
