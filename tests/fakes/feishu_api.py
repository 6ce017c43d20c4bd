"""A local fake of the Feishu/Lark Open API that records what it receives.

Point lark-oapi at ``fake.domain`` (``domain`` in the channel config). It answers the tenant access
token, ``bot/v3/info``, ``im/v1/messages/{id}/reply``, ``im/v1/messages`` (create), ``PATCH
im/v1/messages/{id}`` (edit a card) and ``GET im/v1/messages/{id}/resources/{key}`` (a picture of a
user's message: ``add_image`` registers one, served only with the tenant token). Like Feishu, a send
with a ``uuid`` already seen returns the first message again instead of posting twice: ``calls`` has
every request, ``sent`` only the messages
that reached the chat, with their current content (a PATCH replaces it and counts in ``edits``).
Like Feishu, a PATCH only works on a card message we sent, and only when the card before and after
declares ``config.update_multi: true`` (a shared card). ``fail(kind, ...)`` makes the next call(s)
fail the way Feishu does (a JSON ``code``/``msg`` with an HTTP status, or a non-JSON gateway error).

Long connection: ``POST /callback/ws/endpoint`` hands out ``ws://.../ws``, where the fake speaks
lark-oapi's protobuf frames: ``send_ws_event`` pushes an event data frame and ``wait_ws_ack`` returns
the client's answer to it (``{"code": 200}`` or 500).

``encrypt`` and ``signed_headers`` build genuine event subscription v2 requests; they are written
from the vendor documentation, independently of ``channels.feishu.crypto``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import struct
import time
import uuid as uuidlib
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lark_oapi.ws.pb.pbbp2_pb2 import Frame

from tests.fakes.local import serve_local

__all__ = ["BOT_OPEN_ID", "TENANT_TOKEN", "TINY_PNG", "FakeFeishu", "FeishuCall", "encrypt", "png", "signed_headers"]

BOT_OPEN_ID = "ou_7d8a6e6df7621556ce0d21922b676706ccs"
TENANT_TOKEN = "t-g1044ghJRUIJJ5ELPDOFRY4KYVTNXQ3M6ZMXFBA7"


def png(width: int, height: int, rgb: tuple[int, int, int] = (220, 40, 40)) -> bytes:
    """A valid PNG of one colour (8-bit RGB), built here so no binary fixture is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


TINY_PNG = png(2, 2)


def encrypt(encrypt_key: str, plaintext: str | bytes) -> str:
    """The ``encrypt`` field Feishu sends: base64(IV + AES-256-CBC(SHA256(key), IV, PKCS#7(plain)))."""
    raw = plaintext.encode() if isinstance(plaintext, str) else plaintext
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(raw) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def signed_headers(
    encrypt_key: str, body: bytes, *, timestamp: str | None = None, nonce: str | None = None
) -> dict[str, str]:
    """Headers Feishu sends with an encrypted event: timestamp, a fresh nonce and X-Lark-Signature."""
    ts = timestamp or str(int(time.time()))
    nonce = nonce if nonce is not None else uuidlib.uuid4().hex[:16]
    digest = hashlib.sha256((ts + nonce + encrypt_key).encode() + body).hexdigest()
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": digest,
    }


@dataclass
class FeishuCall:
    kind: str
    """``token``, ``bot_info``, ``reply``, ``create``, ``patch``, ``resource`` or ``ws_endpoint``."""
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Failure:
    code: int | None
    msg: str
    status: int
    times: int
    after: int


@dataclass
class FakeFeishu:
    """Run with ``async with FakeFeishu() as feishu:``; ``feishu.domain`` has no trailing slash."""

    calls: list[FeishuCall] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Messages that reached a chat: ``{message_id, chat_id, reply_to, reply_in_thread, msg_type, content, uuid}``."""
    chat_of: dict[str, str] = field(default_factory=dict)
    """Message id -> chat id, so replies to a known user message land in its chat (tests fill it)."""
    images: dict[tuple[str, str], tuple[bytes, str | None]] = field(default_factory=dict)
    """(message id, image key) -> (bytes, Content-Type or None to send none): what ``resource`` serves."""
    stall_resources: asyncio.Event | None = None
    """When set to an unset event, resource downloads hang until it is set (to test timeouts)."""
    _failures: dict[str, _Failure] = field(default_factory=dict)
    _by_uuid: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    ws_acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Long-connection answers by event message id: the decoded JSON payload of the client's frame."""
    _runner: web.AppRunner | None = None
    _port: int = 0
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _ws_connected: asyncio.Event = field(default_factory=asyncio.Event)
    _ws_acked: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def domain(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> FakeFeishu:
        app = web.Application()
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._token)
        app.router.add_get("/open-apis/bot/v3/info", self._bot_info)
        app.router.add_post("/open-apis/im/v1/messages/{message_id}/reply", self._reply)
        app.router.add_post("/open-apis/im/v1/messages", self._create)
        app.router.add_patch("/open-apis/im/v1/messages/{message_id}", self._patch)
        app.router.add_get("/open-apis/im/v1/messages/{message_id}/resources/{file_key}", self._resource)
        app.router.add_post("/callback/ws/endpoint", self._ws_endpoint)
        app.router.add_get("/ws", self._ws)
        self._runner, self._port = await serve_local(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # control

    def fail(
        self, kind: str, *, code: int | None, msg: str = "error", status: int = 400, times: int = 1, after: int = 0
    ) -> None:
        """Make ``times`` calls of ``kind`` fail after ``after`` succeed; ``code=None`` answers non-JSON."""
        self._failures[kind] = _Failure(code=code, msg=msg, status=status, times=times, after=after)

    def add_image(
        self, message_id: str, image_key: str, data: bytes = TINY_PNG, *, content_type: str | None = "image/png"
    ) -> None:
        """Let ``message_id`` carry the picture ``image_key``."""
        self.images[(message_id, image_key)] = (data, content_type)

    def calls_to(self, kind: str) -> list[FeishuCall]:
        return [c for c in self.calls if c.kind == kind]

    async def wait_ws_connected(self, within: float = 20.0) -> None:
        await asyncio.wait_for(self._ws_connected.wait(), within)

    async def send_ws_event(self, payload: dict[str, Any]) -> str:
        """Push an event to the connected long-connection client; returns the frame's message id."""
        message_id = uuidlib.uuid4().hex
        frame = Frame()
        frame.SeqID, frame.LogID, frame.service, frame.method = 1, 1, 77, 1  # method 1: data frame
        for key, value in (
            ("type", "event"),
            ("message_id", message_id),
            ("trace_id", "t1"),
            ("sum", "1"),
            ("seq", "0"),
        ):
            header = frame.headers.add()
            header.key, header.value = key, value
        frame.payload = json.dumps(payload).encode()
        await self._sockets[-1].send_bytes(frame.SerializeToString())
        return message_id

    async def wait_ws_ack(self, message_id: str, within: float = 20.0) -> dict[str, Any]:
        async def arrived() -> dict[str, Any]:
            while message_id not in self.ws_acks:
                self._ws_acked.clear()
                await self._ws_acked.wait()
            return self.ws_acks[message_id]

        return await asyncio.wait_for(arrived(), within)

    # handlers

    async def _record(self, kind: str, request: web.Request) -> tuple[FeishuCall, web.Response | None]:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        call = FeishuCall(
            kind=kind, path=request.path, query=dict(request.query), body=body, headers=dict(request.headers)
        )
        self.calls.append(call)
        failure = self._failures.get(kind)
        if failure is not None and failure.after > 0:
            failure.after -= 1
        elif failure is not None and failure.times > 0:
            failure.times -= 1
            if failure.code is None:
                page = "<html>bad gateway</html>"
                return call, web.Response(status=failure.status, text=page, content_type="text/html")
            return call, web.json_response({"code": failure.code, "msg": failure.msg}, status=failure.status)
        return call, None

    async def _token(self, request: web.Request) -> web.Response:
        call, failed = await self._record("token", request)
        if failed is not None:
            return failed
        assert call.body.get("app_id") and call.body.get("app_secret"), call.body
        return web.json_response({"code": 0, "msg": "ok", "tenant_access_token": TENANT_TOKEN, "expire": 7200})

    async def _bot_info(self, request: web.Request) -> web.Response:
        _, failed = await self._record("bot_info", request)
        if failed is not None:
            return failed
        return web.json_response(
            {
                "code": 0,
                "msg": "ok",
                "bot": {
                    "activate_status": 2,
                    "app_name": "helper",
                    "avatar_url": "https://s1-imfile.feishucdn.com/static-resource/v1/da5xxx~?image_size=72x72",
                    "ip_white_list": [],
                    "open_id": BOT_OPEN_ID,
                },
            }
        )

    def _message(self, call: FeishuCall, *, chat_id: str, reply_to: str | None) -> web.Response:
        uuid = call.body.get("uuid")
        if isinstance(uuid, str) and uuid in self._by_uuid:
            message = self._by_uuid[uuid]
        else:
            message = {
                "message_id": f"om_fake{next(self._ids):06d}",
                "chat_id": chat_id,
                "reply_to": reply_to,
                "reply_in_thread": bool(call.body.get("reply_in_thread")),
                "msg_type": call.body.get("msg_type"),
                "content": call.body.get("content"),
                "uuid": uuid,
                "edits": 0,
            }
            self.sent.append(message)
            if isinstance(uuid, str):
                self._by_uuid[uuid] = message
        data = {
            "message_id": message["message_id"],
            "root_id": reply_to,
            "parent_id": reply_to,
            "msg_type": message["msg_type"],
            "create_time": str(int(time.time() * 1000)),
            "update_time": str(int(time.time() * 1000)),
            "deleted": False,
            "updated": False,
            "chat_id": message["chat_id"],
            "sender": {"id": "cli_fake", "id_type": "app_id", "sender_type": "app", "tenant_key": "736588c9260f175e"},
            "body": {"content": message["content"]},
        }
        return web.json_response({"code": 0, "msg": "success", "data": data})

    async def _reply(self, request: web.Request) -> web.Response:
        call, failed = await self._record("reply", request)
        if failed is not None:
            return failed
        message_id = request.match_info["message_id"]
        return self._message(call, chat_id=self.chat_of.get(message_id, "oc_unknown"), reply_to=message_id)

    async def _create(self, request: web.Request) -> web.Response:
        call, failed = await self._record("create", request)
        if failed is not None:
            return failed
        assert call.query.get("receive_id_type") == "chat_id", call.query
        return self._message(call, chat_id=str(call.body.get("receive_id")), reply_to=None)

    async def _patch(self, request: web.Request) -> web.Response:
        call, failed = await self._record("patch", request)
        if failed is not None:
            return failed
        message_id = request.match_info["message_id"]
        message = next((m for m in self.sent if m["message_id"] == message_id), None)
        if message is None:
            return web.json_response({"code": 230001, "msg": f"invalid message_id {message_id}"}, status=400)
        content = call.body.get("content")
        if message["msg_type"] != "interactive" or not (_shared_card(message["content"]) and _shared_card(content)):
            return web.json_response(
                {"code": 230099, "msg": "only shared cards (update_multi) can be updated"}, status=400
            )
        message["content"] = content
        message["edits"] += 1
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        call, failed = await self._record("resource", request)
        if failed is not None:
            return failed
        if self.stall_resources is not None:
            await self.stall_resources.wait()
        if call.headers.get("Authorization") != f"Bearer {TENANT_TOKEN}":
            return web.json_response({"code": 99991663, "msg": "Invalid access token for authorization."}, status=400)
        if call.query.get("type") not in ("image", "file"):
            return web.json_response({"code": 234001, "msg": "Invalid request param."}, status=400)
        found = self.images.get((request.match_info["message_id"], request.match_info["file_key"]))
        if found is None:
            return web.json_response({"code": 234003, "msg": "File not in msg."}, status=400)
        data, content_type = found
        if content_type is not None:
            return web.Response(body=data, headers={"Content-Type": content_type})
        bare = web.StreamResponse(headers={"Content-Length": str(len(data))})  # web.Response would add a type
        await bare.prepare(request)
        await bare.write(data)
        await bare.write_eof()
        return bare

    async def _ws_endpoint(self, request: web.Request) -> web.Response:
        call, failed = await self._record("ws_endpoint", request)
        if failed is not None:
            return failed
        assert call.body.get("AppID") and call.body.get("AppSecret"), call.body
        config = {"ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30, "PingInterval": 120}
        url = f"ws://127.0.0.1:{self._port}/ws?device_id=dev-fake-1&service_id=77"
        return web.json_response({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": config}})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self._ws_connected.set()
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            frame = Frame()
            frame.ParseFromString(msg.data)
            headers = {h.key: h.value for h in frame.headers}
            if frame.method == 1 and "message_id" in headers:
                self.ws_acks[headers["message_id"]] = json.loads(frame.payload)
                self._ws_acked.set()
        self._sockets.remove(ws)
        return ws


def _shared_card(content: object) -> bool:
    if not isinstance(content, str):
        return False
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and (parsed.get("config") or {}).get("update_multi") is True
