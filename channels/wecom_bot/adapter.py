"""WeCom AI bot (智能机器人) channel: its long connection in ``start()``, answers streamed into the chat.

Inbound: :class:`~channels.wecom_bot.connection.BotConnection` keeps the connection (subscribe,
heartbeat, reconnect; one connection per bot: when another takes over, this one steps aside and
says so on ``/healthz``). Each ``aibot_msg_callback`` becomes a Turn (:mod:`.events`; single and
group chats, text, mixed, image, voice, file), stored by ``runtime.ingest`` and deduplicated on
``msgid`` (WeCom may deliver one twice). A callback is not redelivered after a crash, so a storage
failure is retried here before the message is given up (and logged). ``enter_chat`` events get the
configured welcome message (``aibot_respond_welcome_msg``); other events are ignored.

Outbound: while the model writes, :class:`~channels.wecom_bot.stream.ReplyStream` sends throttled
snapshots of the full text as ``aibot_respond_msg`` stream frames on the callback's ``req_id``,
one stream id per reply, one frame at a time. ``deliver`` sends the one ``finish: true`` frame with
the final text (up to 20,480 bytes) and any further parts as ``aibot_send_msg`` markdown messages.
When the stream can no longer take it (6 minutes after the user's message: 846608; or a ``req_id``
from before a reconnect or restart: 846605) the text goes out with ``aibot_send_msg`` instead.

Pictures are media references (URL and per-message key); :meth:`fetch_media` downloads one
(https only, no credentials sent) and decrypts it (AES-256-CBC) when a vision model needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from botframework.channel import ChannelRuntime, Outbound
from botframework.chunked import ChunkedAdapter, VendorError, map_delivery_errors
from botframework.errors import MediaError, PayloadError, StorageError
from botframework.health import ChannelHealth
from botframework.media import MAX_IMAGE_BYTES
from channels.wecom_bot.config import WeComBotChannelConfig
from channels.wecom_bot.connection import BAD_REQ_ID, STREAM_EXPIRED, BotApiError, BotConnection
from channels.wecom_bot.crypto import decrypt_media, media_key
from channels.wecom_bot.events import CHANNEL, BotTarget, MediaRef, event_type, parse_message
from channels.wecom_bot.render import LIMIT, to_bot_markdown
from channels.wecom_bot.stream import ReplyStream

__all__ = ["WeComBotAdapter"]

log = logging.getLogger(__name__)


def _retryable(exc: BotApiError) -> bool:
    return exc.retryable


DELIVERY_ERRORS = (VendorError(kind=BotApiError, retryable=_retryable, detail=str),)
_STREAM_GONE = frozenset({STREAM_EXPIRED, BAD_REQ_ID})


def _media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


class WeComBotAdapter(ChunkedAdapter[WeComBotChannelConfig, BotTarget, None]):
    """One WeCom AI bot of one tenant."""

    name = CHANNEL
    config_model = WeComBotChannelConfig
    target_model = BotTarget
    message_limit = LIMIT
    delivery_errors = DELIVERY_ERRORS
    ingest_retry_delays_s: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0, 8.0)
    """Pauses between attempts to store a message while the database fails (callbacks are not redelivered)."""

    def __init__(self, *, tenant: str, config: WeComBotChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        self.label = f"{CHANNEL} tenant {tenant}"
        self.connection = self._new_connection()
        self._task: asyncio.Task[None] | None = None
        self._streams: dict[str, ReplyStream] = {}
        self._http: aiohttp.ClientSession | None = None

    def _new_connection(self) -> BotConnection:
        return BotConnection(
            url=self.settings.ws_url,
            bot_id=self.settings.bot_id,
            secret=self.settings.secret.get_secret_value(),
            ping_interval_s=self.settings.ping_interval_s,
            ack_timeout_s=self.settings.ack_timeout_s,
            on_callback=self.on_callback,
            label=self.label,
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def holds_gateway(self) -> bool:
        return True

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self.connection = self._new_connection()
            self._task = asyncio.create_task(self.connection.run(), name=self.label)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for stream in list(self._streams.values()):
            await stream.close()
        self._streams.clear()
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def health(self) -> ChannelHealth:
        if self._task is None:
            return ChannelHealth.up("stopped")
        return self.connection.health

    # -- inbound --------------------------------------------------------------------------

    async def on_callback(self, frame: Mapping[str, Any]) -> None:
        headers = frame.get("headers")
        req_id = str(headers.get("req_id") or "") if isinstance(headers, Mapping) else ""
        body = frame.get("body")
        if not isinstance(body, Mapping) or not req_id:
            log.warning("%s: ignoring a callback without body or req_id", self.label)
            return
        if frame.get("cmd") == "aibot_event_callback":
            await self._on_event(body, req_id)
            return
        try:
            turn = parse_message(body, tenant=self.tenant, req_id=req_id, received_ms=int(time.time() * 1000))
        except PayloadError as exc:
            log.warning("%s: ignoring a malformed message: %s", self.label, exc)
            return
        if turn is None:
            return
        for delay in (*self.ingest_retry_delays_s, None):
            try:
                result = await self.accept(turn)
                break
            except StorageError as exc:
                if delay is None:
                    log.error("%s: message %s is lost, storage kept failing: %s", self.label, turn.event_id, exc)
                    return
                log.warning(
                    "%s: could not store message %s (%s); retrying in %ss", self.label, turn.event_id, exc, delay
                )
                await asyncio.sleep(delay)
        if not result.duplicate:
            self._start_stream(result.turn_id, BotTarget.model_validate(turn.target))

    async def _on_event(self, body: Mapping[str, Any], req_id: str) -> None:
        kind = event_type(body)
        if kind == "enter_chat" and self.settings.welcome:
            try:
                await self.connection.request(
                    "aibot_respond_welcome_msg",
                    {"msgtype": "text", "text": {"content": self.settings.welcome}},
                    req_id=req_id,
                )
            except BotApiError as exc:
                log.warning("%s: welcome message not sent: %s", self.label, exc)

    # -- streaming ------------------------------------------------------------------------

    @staticmethod
    def stream_id(turn_id: str) -> str:
        """Stable per turn, so a retried delivery finishes the same stream."""
        return "bf" + turn_id.replace("-", "")

    def _deadline(self, target: BotTarget) -> float:
        """The monotonic time after which the stream should take no more updates."""
        age_s = max(0.0, time.time() - target.received_ms / 1000) if target.received_ms else 0.0
        return time.monotonic() + self.settings.stream_window_s - age_s

    async def _stream_frame(self, target: BotTarget, stream_id: str, content: str, *, finish: bool) -> None:
        await self.connection.request(
            "aibot_respond_msg",
            {"msgtype": "stream", "stream": {"id": stream_id, "finish": finish, "content": content}},
            req_id=target.req_id,
        )

    def _start_stream(self, turn_id: str, target: BotTarget) -> None:
        stream_id = self.stream_id(turn_id)

        async def send(snapshot: str) -> None:
            await self._stream_frame(target, stream_id, snapshot, finish=False)

        stream = ReplyStream(
            send=send,
            render=self.render,
            limit=LIMIT,
            interval_s=self.settings.stream_interval_s,
            deadline=self._deadline(target),
            label=f"{self.label} turn {turn_id}",
        )
        self._streams[turn_id] = stream
        while len(self._streams) > self.live_reply_limit:
            oldest = next(iter(self._streams))
            self._streams.pop(oldest).abandon()
        self.runtime.attach_sink(self.tenant, CHANNEL, turn_id, stream)

    # -- outbound -------------------------------------------------------------------------

    def render(self, markdown: str) -> str:
        return to_bot_markdown(markdown)

    async def deliver(self, outbound: Outbound) -> None:
        target = self.parse_target(outbound.primary.reply_target, turn_id=outbound.turn_id)
        stream = self._streams.pop(outbound.turn_id, None)
        started = bool(await stream.close()) if stream is not None else False
        gone = stream is not None and isinstance(stream.error, BotApiError) and stream.error.errcode in _STREAM_GONE
        parts = self.render_reply(outbound.reply.text)
        for index, part in enumerate(parts):
            if index < outbound.resume_from:
                continue
            what = f"{self.label} reply of turn {outbound.turn_id} to {target.chat_id} (part {index + 1}/{len(parts)})"
            await self.record_part(outbound, index, sent=False, what=what)
            with map_delivery_errors(self.delivery_errors, what=what, delivered_parts=index):
                if index == 0:
                    await self._finish(target, outbound, part, started=started, gone=gone)
                else:
                    await self.send_part(target, part, index=index, outbound=outbound)
            await self.record_part(outbound, index, sent=True, what=what)

    async def _finish(self, target: BotTarget, outbound: Outbound, text: str, *, started: bool, gone: bool) -> None:
        """The finishing stream frame with the answer's first part; a new message when the stream is gone."""
        if not gone and (started or time.monotonic() < self._deadline(target)):
            try:
                await self._stream_frame(target, self.stream_id(outbound.turn_id), text, finish=True)
                return
            except BotApiError as exc:
                if exc.errcode not in _STREAM_GONE:
                    raise
                log.info(
                    "%s: the stream of turn %s is closed (%s); sending a message", self.label, outbound.turn_id, exc
                )
        await self.send_part(target, text, index=0, outbound=outbound)

    async def send_part(self, target: BotTarget, text: str, *, index: int, outbound: Outbound) -> None:
        await self.connection.request(
            "aibot_send_msg", {"chatid": target.chat_id, "msgtype": "markdown", "markdown": {"content": text}}
        )

    # -- media ----------------------------------------------------------------------------

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        media = MediaRef.decode(ref)
        if not media.url.startswith("https://"):
            raise MediaError(f"{CHANNEL} picture URL is not https; not fetched")
        key = media_key(media.aeskey)
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            async with self._http.get(media.url) as response:
                if response.status != 200:
                    raise MediaError(
                        f"{CHANNEL} picture download answered HTTP {response.status} (links last 5 minutes)"
                    )
                data = await response.content.read(MAX_IMAGE_BYTES + 33)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaError(f"{CHANNEL} picture could not be downloaded: {type(exc).__name__}") from exc
        if len(data) > MAX_IMAGE_BYTES + 32:
            raise MediaError(f"{CHANNEL} picture is larger than {MAX_IMAGE_BYTES} bytes")
        plain = decrypt_media(data, key)
        return plain, _media_type(plain)
