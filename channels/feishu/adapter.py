"""Feishu/Lark channel: event subscription v2 webhook (or the long connection) and lark-oapi replies.

Inbound (webhook, ``POST /t/{tenant}/feishu/events``): the signature (``X-Lark-Signature``, when an
encrypt_key is set) and the verification token are checked first, failing closed with 401 and no
side effect; see :mod:`.crypto` for why we do not use lark-oapi's dispatcher. ``url_verification``
is answered with its challenge. Message events become Turns (:mod:`.events`) and ``runtime.ingest``
(which persists and dedupes on ``header.event_id``) completes before the 200; the model runs later.
Unknown event types are acknowledged and ignored.

Inbound (``mode: websocket``): lark-oapi's ``ws.Client`` cannot run inside a running loop (1.7.5
keeps one module-level loop), so every Feishu long connection of the process shares one thread with
its own loop, and events are handed to the server's loop with ``run_coroutine_threadsafe`` into the
same path as the webhook. The client is driven through its ``_connect``/``_ping_loop``/``_disconnect``
coroutines because its public ``start()`` blocks forever, cannot be stopped and owns the loop.

Images: events reference pictures as ``{message_id}/{image_key}`` (:mod:`.events`); ``fetch_media``
downloads one through the message resource API (``GET /open-apis/im/v1/messages/{message_id}/
resources/{image_key}?type=image``) with the tenant access token, only when the model needs it.

Outbound: the core's chunked delivery (:class:`botframework.chunked.ChunkedAdapter`) cuts the reply
into interactive cards (:mod:`.render`); ``send_part`` replies to the user's message with ``areply``
(in its thread when it had one; ``acreate`` in the chat when there is no message to answer or it was
recalled). Every card carries the core's idempotency key of its part as ``uuid``, so a part resent
after a crash or a timeout within the hour is dropped by Feishu: exactly once. The tenant access
token is fetched by the SDK, but synchronously (``requests``), so it is warmed in a thread before
each delivery.

With ``live_updates`` the core answers the user's message with a placeholder card on the first
streamed delta and edits it (``PATCH`` message) at most every ``update_interval_s``; it becomes the
first card of the reply. Cards are shared (``update_multi``, see :mod:`.render`), which PATCH requires.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, TypeVar

import httpx
import lark_oapi as lark
from aiohttp import web
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    GetMessageResourceRequest,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)
from lark_oapi.core.enum import AccessTokenType, HttpMethod
from lark_oapi.core.exception import ObtainAccessTokenException
from lark_oapi.core.model import BaseRequest
from lark_oapi.core.token import TokenManager

from botframework.channel import ChannelRuntime, Outbound, Route, part_key
from botframework.chunked import ChunkedAdapter, VendorError
from botframework.errors import DeliveryError, MediaError, PayloadError, SignatureError
from botframework.inputs import load_json_object
from channels.feishu.config import FeishuChannelConfig
from channels.feishu.crypto import decrypt, token_matches, verify_signature
from channels.feishu.events import CHANNEL, MESSAGE_RECEIVE, FeishuTarget, event_type, parse_event
from channels.feishu.render import CARD_LIMIT, render_preview, render_reply

__all__ = ["FeishuAdapter", "delivery_uuid"]

T = TypeVar("T")

log = logging.getLogger(__name__)

_TIMEOUT_S = 20.0
_IDENTIFY_TIMEOUT_S = 10.0
_LATE_IDENTIFY_TIMEOUT_S = 1.5
_WS_INGEST_TIMEOUT_S = 30.0
_RATE_LIMITED = frozenset({99991400, 230020})
"""Request frequency limit (app-wide / per chat)."""
_TOKEN_INVALID = frozenset({99991661, 99991663, 99991664, 99991668, 99991677})
"""Access token missing, invalid or expired: drop the cached token, a retry fetches a new one."""
_BAD_APP_CREDENTIALS = frozenset({10003, 10014})
"""tenant_access_token refused for a wrong app_id / app_secret: retrying cannot help."""
_MESSAGE_RECALLED = 230011
_TRANSPORT_ERRORS = (httpx.HTTPError, json.JSONDecodeError, ObtainAccessTokenException, OSError)
_MEDIA_REF = re.compile(r"(?P<message_id>[A-Za-z0-9_-]{1,128})/(?P<file_key>[A-Za-z0-9_-]{1,256})")
_DEFAULT_IMAGE_TYPE = "image/png"
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def delivery_uuid(tenant: str, turn_id: str, index: int) -> str:
    """The ``uuid`` of chunk ``index`` of a turn's reply: the core's key of that part (the same on every
    attempt and process, well under Feishu's 50 characters); Feishu drops a repeat for an hour."""
    return part_key(tenant=tenant, channel=CHANNEL, turn_id=turn_id, index=index)


class _ApiError(Exception):
    """A Feishu API answer with ``code != 0`` or an HTTP error status."""

    def __init__(self, method: str, *, code: int | None, msg: str, status: int, target: str = "") -> None:
        super().__init__(f"code {code} {msg!r} (HTTP {status})")
        self.method = method
        self.target = target
        self.code = code
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.code in _RATE_LIMITED or self.code in _TOKEN_INVALID


def _check(method: str, response: Any, *, target: str) -> None:
    status = int(getattr(response.raw, "status_code", 0) or 0)
    code = response.code
    if code == 0 and status < 400:
        return
    raise _ApiError(method, code=code, msg=str(response.msg or ""), status=status, target=target)


def _sent_id(response: Any) -> str | None:
    """The id of the message a successful send created (a live placeholder is edited through it)."""
    message_id = getattr(response.data, "message_id", None)
    return str(message_id) if message_id else None


def _token_error(exc: Exception, *, delivered_parts: int) -> DeliveryError:
    code = getattr(exc, "code", None)
    return DeliveryError(
        f"feishu tenant_access_token request failed: {type(exc).__name__}: {exc}",
        retryable=code not in _BAD_APP_CREDENTIALS,
        delivered_parts=delivered_parts,
    )


def _api_detail(exc: _ApiError) -> str:
    return f"{exc.method} to {exc.target}: {exc}"


def _token_retryable(exc: Exception) -> bool:
    return getattr(exc, "code", None) not in _BAD_APP_CREDENTIALS


def _token_detail(exc: Exception) -> str:
    return f"tenant_access_token request: {type(exc).__name__}: {exc}"


DELIVERY_ERRORS = (
    VendorError(kind=_ApiError, retryable=lambda exc: exc.retryable, detail=_api_detail),
    VendorError(kind=json.JSONDecodeError),
    VendorError(kind=ObtainAccessTokenException, retryable=_token_retryable, detail=_token_detail),
    VendorError(kind=ValueError, retryable=_token_retryable, detail=_token_detail),
    VendorError(kind=httpx.HTTPError),
    VendorError(kind=OSError),
)
"""Feishu's errors: rate limits, 5xx and expired tokens are worth a retry; wrong app credentials or a
refused message (code != 0 otherwise) not. lark-oapi reports a failed token fetch as ValueError."""


class _WsLoop:
    """The one thread and event loop every Feishu long connection of this process runs on."""

    _instance: ClassVar[_WsLoop | None] = None
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="feishu-ws", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> _WsLoop:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
                # lark-oapi 1.7.5 schedules its tasks on this module-level loop.
                lark.ws.client.loop = cls._instance.loop
            return cls._instance


class _EventBridge(lark.EventDispatcherHandler):  # type: ignore[misc]
    """Receives long-connection events on the ws thread and runs our ingest path on the server loop.

    The ws client answers the frame only after this returns, so ingest completes before Feishu is
    acknowledged, as with the webhook; an exception makes it answer 500 and Feishu redelivers.
    """

    def __init__(self, adapter: FeishuAdapter, server_loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._adapter = adapter
        self._server_loop = server_loop

    def _do_without_validation(self, payload: bytes) -> Any:
        try:
            event = load_json_object(payload, what="long-connection event")
        except PayloadError as exc:
            log.warning("feishu tenant %s: ignoring a long-connection event: %s", self._adapter.tenant, exc)
            return None
        future = asyncio.run_coroutine_threadsafe(self._adapter.handle_event(event), self._server_loop)
        try:
            future.result(timeout=_WS_INGEST_TIMEOUT_S)
        except PayloadError as exc:
            log.warning("feishu tenant %s: ignoring malformed event: %s", self._adapter.tenant, exc)
        return None


class FeishuAdapter(ChunkedAdapter[FeishuChannelConfig, FeishuTarget, str]):
    """One Feishu/Lark self-built app of one tenant."""

    name = CHANNEL
    config_model = FeishuChannelConfig
    target_model = FeishuTarget
    message_limit = CARD_LIMIT
    delivery_errors = DELIVERY_ERRORS

    def __init__(self, *, tenant: str, config: FeishuChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        if config.live_updates:
            self.live_interval_s = config.update_interval_s
        self.domain = config.domain.rstrip("/")
        self._app_secret = config.app_secret.get_secret_value()
        self._encrypt_key = config.encrypt_key.get_secret_value() if config.encrypt_key else None
        self._token = config.verification_token.get_secret_value() if config.verification_token else None
        self.client: Any = (
            lark.Client.builder()
            .app_id(config.app_id)
            .app_secret(self._app_secret)
            .domain(self.domain)
            .timeout(_TIMEOUT_S)
            .log_level(lark.LogLevel.WARNING)
            .build()
        )
        self.bot_open_id: str | None = None
        self._ws_client: Any = None
        self._ws_task: asyncio.Task[None] | None = None
        self._ws_future: Future[None] | None = None

    # lifecycle

    def routes(self) -> Sequence[Route]:
        if self.settings.mode != "webhook":
            return ()
        return (Route(method="POST", path="feishu/events", handler=self.handle_request),)

    @property
    def holds_gateway(self) -> bool:
        return self.settings.mode == "websocket"

    async def start(self) -> None:
        await self._identify(_IDENTIFY_TIMEOUT_S)
        if self.settings.mode == "websocket":
            runner = _WsLoop.get()
            bridge = _EventBridge(self, asyncio.get_running_loop())
            self._ws_future = asyncio.run_coroutine_threadsafe(self._ws_main(bridge), runner.loop)

    async def stop(self) -> None:
        await super().stop()
        if self._ws_future is None:
            return
        runner = _WsLoop.get()
        done = asyncio.run_coroutine_threadsafe(self._ws_shutdown(), runner.loop)
        try:
            await asyncio.wait_for(asyncio.wrap_future(done), _TIMEOUT_S)
        except TimeoutError:
            log.warning("feishu tenant %s: long connection did not close within %ss", self.tenant, _TIMEOUT_S)
        self._ws_future = None

    async def _ws_main(self, bridge: _EventBridge) -> None:
        """Runs on the ws loop: connect, keep pinging, reconnect (the SDK's own logic) until stopped."""
        self._ws_task = asyncio.current_task()
        client = lark.ws.Client(
            self.settings.app_id,
            self._app_secret,
            event_handler=bridge,
            domain=self.domain,
            log_level=lark.LogLevel.WARNING,
        )
        self._ws_client = client
        try:
            await client._connect()
        except lark.ws.exception.ClientException as exc:
            log.error("feishu tenant %s: long connection refused (check app_id/app_secret): %s", self.tenant, exc)
            return
        except Exception as exc:
            log.warning("feishu tenant %s: long connection failed, reconnecting: %s", self.tenant, exc)
            await client._disconnect()
            await client._reconnect()
        ping = asyncio.create_task(client._ping_loop())
        try:
            await asyncio.Event().wait()
        finally:
            ping.cancel()
            client._auto_reconnect = False
            await client._disconnect()

    async def _ws_shutdown(self) -> None:
        task = self._ws_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _warm_token(self) -> None:
        """Have the SDK's token cache hold a tenant access token, fetching it off the loop if needed."""
        await asyncio.to_thread(TokenManager.get_self_tenant_token, self.client.config)

    def _forget_token(self) -> None:
        TokenManager.cache.set(f"self_tenant_token:{self.settings.app_id}", "", 0)

    async def _identify(self, timeout: float) -> None:
        """Learn the bot's open_id (``/open-apis/bot/v3/info``) to tell mentions of the bot apart."""
        try:
            await asyncio.wait_for(self._fetch_identity(), timeout)
        except (
            TimeoutError,
            ObtainAccessTokenException,
            OSError,
            httpx.HTTPError,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:
            log.warning("feishu tenant %s: bot info unavailable for now (%s: %s)", self.tenant, type(exc).__name__, exc)

    async def _fetch_identity(self) -> None:
        await self._warm_token()
        request = BaseRequest()
        request.http_method = HttpMethod.GET
        request.uri = "/open-apis/bot/v3/info"
        request.token_types = {AccessTokenType.TENANT}
        response = await self.client.arequest(request)
        body = json.loads(response.raw.content)
        open_id = (body.get("bot") or {}).get("open_id") if body.get("code") == 0 else None
        if not open_id:
            raise ValueError(f"bot/v3/info answered code {body.get('code')}: {body.get('msg')}")
        self.bot_open_id = str(open_id)
        log.info("feishu tenant %s: bot open_id %s", self.tenant, self.bot_open_id)

    # inbound

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        """``POST /t/{tenant}/feishu/events``: verify, answer the challenge, or ingest then ack."""
        body = await request.read()
        try:
            payload = self.open_payload(request.headers, body)
            if self._encrypt_key is not None and payload.get("type") != "url_verification":
                await self.runtime.check_replay(
                    tenant=self.tenant,
                    channel=self.name,
                    timestamp=request.headers.get("X-Lark-Request-Timestamp", ""),
                    nonce=request.headers.get("X-Lark-Request-Nonce", ""),
                    body=body,
                    window_s=self.settings.replay_window_s,
                )
        except SignatureError as exc:
            log.warning("feishu tenant %s: rejected event request: %s", self.tenant, exc)
            return web.json_response({"msg": "invalid signature or token"}, status=401)
        except PayloadError as exc:
            log.warning("feishu tenant %s: malformed event: %s", self.tenant, exc)
            return web.json_response({"msg": str(exc)}, status=400)
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": payload.get("challenge")})
        try:
            await self.handle_event(payload)
        except PayloadError as exc:
            log.warning("feishu tenant %s: malformed event: %s", self.tenant, exc)
            return web.json_response({"msg": str(exc)}, status=400)
        except Exception as exc:
            log.error(
                "feishu tenant %s: ingest failed, Feishu will redeliver: %s: %s", self.tenant, type(exc).__name__, exc
            )
            return web.json_response({"msg": "temporarily unavailable"}, status=503)
        return web.json_response({"msg": "success"})

    def open_payload(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The verified (and decrypted) payload of a webhook request.

        SignatureError when it is not genuine; PayloadError when it is (the signature holds) but
        cannot be used. With an encrypt_key, the signature is checked on the raw bytes before they
        are parsed, and every event must be encrypted and signed; only ``url_verification`` (which
        Feishu does not sign, and which has no side effect) may come unsigned, and it must still
        decrypt with our key. With a verification token, the payload's token (``header.token`` in
        v2, ``token`` otherwise) must match.
        """
        if self._encrypt_key is not None:
            received = headers.get("X-Lark-Signature")
            if received is not None:
                if not verify_signature(
                    timestamp=headers.get("X-Lark-Request-Timestamp", ""),
                    nonce=headers.get("X-Lark-Request-Nonce", ""),
                    encrypt_key=self._encrypt_key,
                    body=body,
                    received=received,
                ):
                    raise SignatureError("feishu X-Lark-Signature does not match the body")
                payload = _signed_payload(self._encrypt_key, body)
            else:
                payload = _unsigned_payload(self._encrypt_key, body)
                if payload.get("type") != "url_verification":
                    raise SignatureError(f"unsigned feishu event (type {event_type(payload) or payload.get('type')!r})")
        else:
            payload = _json_object(body)
            if "encrypt" in payload:
                raise SignatureError("feishu request is encrypted but no encrypt_key is configured")
        if self._token is not None:
            header = payload.get("header")
            token = header.get("token") if isinstance(header, Mapping) else payload.get("token")
            if not token_matches(self._token, token):
                raise SignatureError("feishu verification token does not match")
        return payload

    async def handle_event(self, payload: Mapping[str, Any]) -> None:
        """A verified event (webhook or long connection): ingest the turn it asks for, if any."""
        kind = event_type(payload)
        if kind != MESSAGE_RECEIVE:
            log.debug("feishu tenant %s: ignoring event type %r", self.tenant, kind or payload.get("type"))
            return
        if self.bot_open_id is None and _is_group_message(payload):
            await self._identify(_LATE_IDENTIFY_TIMEOUT_S)
        turn = parse_event(payload, tenant=self.tenant, bot_open_id=self.bot_open_id)
        if turn is None:
            return
        await self.accept(turn)

    # media

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """Download a picture of a user's message (``{message_id}/{image_key}``, see :mod:`.events`)."""
        match = _MEDIA_REF.fullmatch(ref)
        if match is None:
            raise MediaError(f"feishu image ref {ref!r} is not '<message_id>/<image_key>'")
        message_id, file_key = match["message_id"], match["file_key"]
        request = GetMessageResourceRequest.builder().message_id(message_id).file_key(file_key).type("image").build()
        try:
            await self._warm_token()
            response = await self.client.im.v1.message_resource.aget(request)
        except (ValueError, *_TRANSPORT_ERRORS) as exc:
            raise MediaError(f"feishu image {ref!r} could not be downloaded: {type(exc).__name__}: {exc}") from exc
        raw = response.raw
        status = int(getattr(raw, "status_code", 0) or 0)
        # lark-oapi keeps httpx's lower-cased header names but looks up "Content-Type": read them ourselves.
        headers = {str(k).lower(): str(v) for k, v in (getattr(raw, "headers", None) or {}).items()}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        data = bytes(getattr(raw, "content", None) or b"")
        if not 200 <= status < 300 or content_type == "application/json":
            error = _resource_error(data, status=status, target=f"image {ref}")
            if error.code in _TOKEN_INVALID:
                self._forget_token()
            raise MediaError(f"feishu image {ref!r} was refused: {error}") from error
        return data, _image_type(content_type, data)

    # outbound

    def render_reply(self, text: str) -> list[str]:
        return render_reply(text)

    def preview(self, text: str) -> str:
        return render_preview(text)

    async def deliver(self, outbound: Outbound) -> None:
        try:
            await self._warm_token()
        except (ObtainAccessTokenException, OSError, ValueError) as exc:
            raise _token_error(exc, delivered_parts=outbound.resume_from) from exc
        await super().deliver(outbound)

    async def send_part(self, target: FeishuTarget, text: str, *, index: int, outbound: Outbound) -> None:
        await self._api(self._send(target, text, uuid=outbound.part_key(index)))

    async def post_placeholder(self, target: FeishuTarget, text: str) -> str | None:
        await self._warm_token()
        sent: str | None = await self._api(self._send(target, text, uuid=None))
        return sent

    async def edit_placeholder(self, target: FeishuTarget, handle: str, text: str) -> None:
        await self._warm_token()
        await self._api(self._patch(handle, text))

    async def _api(self, call: Awaitable[T]) -> T:
        """Run one API call; an invalid access token is dropped, so a retry fetches a new one."""
        try:
            return await call
        except _ApiError as exc:
            if exc.code in _TOKEN_INVALID:
                self._forget_token()
            raise

    async def _send(self, target: FeishuTarget, content: str, *, uuid: str | None) -> str | None:
        """Reply to the user's message (in the chat when there is none or it was recalled); the new id."""
        if target.message_id:
            try:
                return await self._reply(target.message_id, content, uuid=uuid, in_thread=target.reply_in_thread)
            except _ApiError as exc:
                if exc.code != _MESSAGE_RECALLED or not target.chat_id:
                    raise
                log.info(
                    "feishu message %s was recalled; sending the reply to chat %s", target.message_id, target.chat_id
                )
        return await self._create(target.chat_id, content, uuid=uuid)

    async def _reply(self, message_id: str, content: str, *, uuid: str | None, in_thread: bool) -> str | None:
        builder = ReplyMessageRequestBody.builder().content(content).msg_type("interactive").reply_in_thread(in_thread)
        body = (builder.uuid(uuid) if uuid else builder).build()
        request = ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()
        response = await self.client.im.v1.message.areply(request)
        _check("im.message.reply", response, target=f"message {message_id}")
        return _sent_id(response)

    async def _create(self, chat_id: str, content: str, *, uuid: str | None) -> str | None:
        builder = CreateMessageRequestBody.builder().receive_id(chat_id).msg_type("interactive").content(content)
        body = (builder.uuid(uuid) if uuid else builder).build()
        request = CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body).build()
        response = await self.client.im.v1.message.acreate(request)
        _check("im.message.create", response, target=f"chat {chat_id}")
        return _sent_id(response)

    async def _patch(self, message_id: str, content: str) -> None:
        """Replace the card of a message we sent (a live placeholder)."""
        body = PatchMessageRequestBody.builder().content(content).build()
        request = PatchMessageRequest.builder().message_id(message_id).request_body(body).build()
        response = await self.client.im.v1.message.apatch(request)
        _check("im.message.patch", response, target=f"message {message_id}")


def _resource_error(body: bytes, *, status: int, target: str) -> _ApiError:
    """The error a failed resource download answered: Feishu's JSON ``code``/``msg``, or a gateway page."""
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("code")
        return _ApiError(
            "im.message_resource.get",
            code=code if isinstance(code, int) else None,
            msg=str(parsed.get("msg") or ""),
            status=status,
            target=target,
        )
    return _ApiError("im.message_resource.get", code=None, msg=f"non-JSON answer of {len(body)} bytes", status=status)


def _image_type(content_type: str, data: bytes) -> str:
    """The media type of a downloaded picture: the declared one, else sniffed, else PNG.

    Feishu may serve pictures as ``application/octet-stream``; anything else that is declared
    (``text/html``) is kept, so the core refuses it instead of sending it as an image.
    """
    if content_type.startswith("image/"):
        return content_type
    for magic, media_type in _IMAGE_MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if content_type in ("", "application/octet-stream", "binary/octet-stream"):
        return _DEFAULT_IMAGE_TYPE
    return content_type


def _json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from an unverified body; anything else cannot be from Feishu (SignatureError)."""
    try:
        return load_json_object(raw, what=f"feishu request body ({len(raw)} bytes)")
    except PayloadError as exc:
        raise SignatureError(str(exc)) from None


def _signed_payload(encrypt_key: str, body: bytes) -> dict[str, Any]:
    """The event inside a body whose signature holds: whatever is wrong with it now is a PayloadError."""
    outer = load_json_object(body, what="feishu request body")
    encrypted = outer.get("encrypt")
    if not isinstance(encrypted, str):
        raise PayloadError("feishu request is not encrypted although encrypt_key is set")
    try:
        plain = decrypt(encrypt_key, encrypted)
    except SignatureError as exc:
        raise PayloadError(f"signed feishu body does not decrypt: {exc}") from None
    return load_json_object(plain, what="decrypted feishu event")


def _unsigned_payload(encrypt_key: str, body: bytes) -> dict[str, Any]:
    """The event inside an unsigned body, which must at least decrypt with our key (SignatureError)."""
    outer = _json_object(body)
    encrypted = outer.get("encrypt")
    if not isinstance(encrypted, str):
        raise SignatureError("feishu request is not encrypted although encrypt_key is set")
    return _json_object(decrypt(encrypt_key, encrypted))


def _is_group_message(payload: Mapping[str, Any]) -> bool:
    event = payload.get("event")
    message = event.get("message") if isinstance(event, Mapping) else None
    return isinstance(message, Mapping) and message.get("chat_type") != "p2p"
