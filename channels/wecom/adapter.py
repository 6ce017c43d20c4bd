"""WeCom (企业微信) self-built app channel: ``GET|POST /t/{tenant}/wecom/callback``.

Inbound: every request is verified first (``msg_signature`` over token, timestamp, nonce and the
ciphertext, then AES decryption and the receiveid = corp id check); any failure answers 401 with
no side effect. GET is URL verification: the decrypted ``echostr`` is returned bare. POST carries an
encrypted message: it becomes a Turn (:mod:`.events`), ``runtime.ingest`` stores and dedupes it, and
only then an empty 200 acknowledges it (WeCom retries after 5 s). The reply is never passive: it
goes later through ``message/send`` (:mod:`.api`), so a callback is never answered twice. A part the
core found in flight after a crash is resent with WeCom's duplicate check on, over a window reaching
back to the interrupted attempt (:meth:`WeComAdapter.send`).

Query strings are read raw: aiohttp decodes a literal ``+`` (frequent in base64 ``echostr``) as a
space, which breaks both the signature and the decryption.

:class:`CallbackAdapter` is the part WeChat Official Accounts share (``channels.wechat``).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import unquote

from aiohttp import web

from botframework.channel import C, ChannelRuntime, Outbound, Route
from botframework.chunked import ChunkedAdapter, VendorError
from botframework.errors import PayloadError, SignatureError
from botframework.render import to_plain
from botframework.turn import Turn
from channels.wecom.api import ApiError, TokenApi, WeComApi
from channels.wecom.config import WeComChannelConfig
from channels.wecom.crypto import MsgCrypt
from channels.wecom.events import CHANNEL, UserTarget, parse_message, parse_xml
from channels.wecom.render import LIMIT, to_wecom_markdown

__all__ = [
    "DUPLICATE_CHECK_MARGIN_S",
    "DUPLICATE_CHECK_MAX_S",
    "CallbackAdapter",
    "WeComAdapter",
    "duplicate_check_window",
    "raw_query",
]

DUPLICATE_CHECK_MARGIN_S = 60
"""Seconds added to the age of the interrupted attempt (clock skew, the attempt's own duration)."""
DUPLICATE_CHECK_MAX_S = 4 * 3600
"""WeCom's largest ``duplicate_check_interval``."""


def duplicate_check_window(resend_after_s: float) -> int:
    """The ``duplicate_check_interval`` that covers an attempt ``resend_after_s`` seconds ago."""
    return min(DUPLICATE_CHECK_MAX_S, int(resend_after_s) + DUPLICATE_CHECK_MARGIN_S)

log = logging.getLogger(__name__)


def raw_query(request: web.Request) -> dict[str, str]:
    """Query parameters percent-decoded but with ``+`` kept as ``+`` (first value of each name)."""
    params: dict[str, str] = {}
    for pair in request.rel_url.raw_query_string.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params.setdefault(unquote(name), unquote(value))
    return params


def encrypted_field(raw: bytes) -> str:
    """The ``Encrypt`` element of a callback body; SignatureError if there is none (unverifiable)."""
    try:
        outer = parse_xml(raw)
    except PayloadError as exc:
        raise SignatureError(f"unverifiable callback body: {exc}") from exc
    encrypted = outer.get("Encrypt", "")
    if not encrypted:
        raise SignatureError("callback body has no Encrypt element")
    return encrypted


DELIVERY_ERRORS = (VendorError(kind=ApiError, retryable=lambda exc: exc.retryable, detail=str),)
"""The cgi-bin client already classifies errcodes (:class:`~channels.wecom.api.ApiError`)."""


class CallbackAdapter(ChunkedAdapter[C, UserTarget, None]):
    """A Tencent-style XML callback at ``{name}/callback``: verify, parse, ingest, ack; send later."""

    target_model = UserTarget
    message_limit = LIMIT
    delivery_errors = DELIVERY_ERRORS
    image_hosts = ("*.qpic.cn", "*.qlogo.cn")
    ack_body: ClassVar[str] = ""
    """What acknowledges a message without a passive reply."""

    @property
    @abstractmethod
    def replay_window_s(self) -> int:
        """``channels.<name>.replay_window_s``: how far a callback's timestamp may be from our clock."""

    api: TokenApi

    def routes(self) -> Sequence[Route]:
        path = f"{self.name}/callback"
        return (
            Route(method="GET", path=path, handler=self.handle_verification),
            Route(method="POST", path=path, handler=self.handle_message),
        )

    async def stop(self) -> None:
        await super().stop()
        await self.api.close()

    @abstractmethod
    def verify_url(self, query: Mapping[str, str]) -> str:
        """The body that answers a URL verification GET; SignatureError if it is not genuine."""

    @abstractmethod
    def open_message(self, query: Mapping[str, str], raw: bytes) -> bytes:
        """The verified (and decrypted) message XML of a POST; SignatureError if not genuine."""

    @abstractmethod
    def parse(self, fields: Mapping[str, str]) -> Turn | None:
        """The Turn a message asks for, or None."""

    @abstractmethod
    async def send(self, touser: str, content: str, *, resend_after_s: float | None = None) -> None:
        """Send one message; raises ApiError. ``resend_after_s``: this exact message may already have
        been sent that many seconds ago by an attempt that died (the vendor may dedupe it)."""

    async def send_part(self, target: UserTarget, text: str, *, index: int, outbound: Outbound) -> None:
        resend_after_s = None
        if outbound.in_flight is not None and outbound.uncertain(index):
            resend_after_s = max(0.0, (datetime.now(UTC) - outbound.in_flight.since).total_seconds())
        await self.send(target.touser, text, resend_after_s=resend_after_s)

    def _reject(self, request: web.Request, exc: SignatureError) -> web.Response:
        log.warning("%s tenant %s: rejected %s callback: %s", self.name, self.tenant, request.method, exc)
        return web.Response(status=401, text="invalid signature")

    async def handle_verification(self, request: web.Request) -> web.StreamResponse:
        try:
            body = self.verify_url(raw_query(request))
        except SignatureError as exc:
            return self._reject(request, exc)
        return web.Response(text=body, content_type="text/plain")

    async def handle_message(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        query = raw_query(request)
        try:
            message = self.open_message(query, raw)
            await self.runtime.check_replay(
                tenant=self.tenant,
                channel=self.name,
                timestamp=query.get("timestamp", ""),
                nonce=query.get("nonce", ""),
                body=raw,
                window_s=self.replay_window_s,
            )
        except SignatureError as exc:
            return self._reject(request, exc)
        try:
            fields = parse_xml(message)
            turn = self.parse(fields)
        except PayloadError as exc:
            log.warning("%s tenant %s: malformed message: %s", self.name, self.tenant, exc)
            return web.Response(status=400, text="malformed message")
        if turn is not None:
            try:
                await self.accept(turn)
            except Exception as exc:
                log.error(
                    "%s tenant %s: ingest of %s failed, the vendor will retry: %s: %s",
                    self.name,
                    self.tenant,
                    turn.event_id,
                    type(exc).__name__,
                    exc,
                )
                return web.Response(status=503, text="try again later")  # the vendor retries
        return await self.respond(fields, turn)

    async def respond(self, fields: Mapping[str, str], turn: Turn | None) -> web.StreamResponse:
        """The answer to a verified, stored callback: the plain acknowledgement here; a channel that
        replies passively puts the reply in it."""
        return web.Response(text=self.ack_body, content_type="text/plain")


class WeComAdapter(CallbackAdapter[WeComChannelConfig]):
    """One WeCom self-built app (corp id + agent id) of one tenant."""

    name = CHANNEL
    config_model = WeComChannelConfig

    def __init__(self, *, tenant: str, config: WeComChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        self.crypt = MsgCrypt(
            token=config.token.get_secret_value(),
            encoding_aes_key=config.encoding_aes_key.get_secret_value(),
            receive_id=config.corp_id,
        )
        self.api: WeComApi = WeComApi(
            corp_id=config.corp_id,
            secret=config.secret.get_secret_value(),
            agent_id=config.agent_id,
            base_url=config.api_base_url,
        )

    @property
    def replay_window_s(self) -> int:
        return self.settings.replay_window_s

    def verify_url(self, query: Mapping[str, str]) -> str:
        echo = self.crypt.open_callback(query, query.get("echostr", ""))
        try:
            return echo.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureError("decrypted echostr is not UTF-8") from exc

    def open_message(self, query: Mapping[str, str], raw: bytes) -> bytes:
        return self.crypt.open_callback(query, encrypted_field(raw))

    def parse(self, fields: Mapping[str, str]) -> Turn | None:
        return parse_message(fields, tenant=self.tenant)

    def render(self, markdown: str) -> str:
        return to_plain(markdown) if self.settings.message_format == "text" else to_wecom_markdown(markdown)

    async def send(self, touser: str, content: str, *, resend_after_s: float | None = None) -> None:
        """A part resent after an interrupted attempt asks WeCom's duplicate check to drop it if that
        attempt delivered it: WeCom has no idempotency key, it compares the content sent to the user
        within ``duplicate_check_interval``, so the window reaches just past that attempt. First sends
        go without the check: a reply that happens to repeat an earlier one ("OK") must not be dropped."""
        await self.api.send_message(
            touser,
            content,
            msgtype=self.settings.message_format,
            duplicate_check_s=None if resend_after_s is None else duplicate_check_window(resend_after_s),
        )
