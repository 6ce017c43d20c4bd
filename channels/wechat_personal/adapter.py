"""Personal WeChat channel through Tencent's iLink bot API: a long poll in ``start()``, ``sendmessage`` out.

Session: ``botframework login wechat_personal`` (:meth:`WeChatPersonalAdapter.login`) shows a QR
code, and the bot token, bot id and API host it yields are kept in the channel state (database,
per tenant). The server polls only with a stored session; without one, or after it expired, it
looks for a new login in the database every ``session_check_s`` and never calls iLink meanwhile.

Inbound (:meth:`_poll`): ``getupdates`` with the stored cursor. Every message of an answer is
stored (``runtime.ingest``, deduplicated on ``message_id``) **before** the cursor advances past it,
and the cursor is kept in the database: a crash at any point loses nothing (the messages come again
and are recognised), where saving the cursor first would lose them. iLink replays messages seconds to
minutes later; the dedupe answers each once. A failure to store stops the cursor; the same answer is
asked for again after a pause.

``-14`` from ``getupdates`` (the session expired, or the WeChat account was bound elsewhere): polling
stops at once, the session is marked expired in the database (so a restart does not poll with it
either), ``/healthz`` and ``check-config --probe`` say that an operator must log in again, and the
log says it with the tenant. Sending goes on trying what can still be sent.

Outbound: the core's chunked delivery, plain text under 4,000 characters, each part a ``sendmessage``
with the user's latest ``context_token`` and a client id stable per (turn, part). ``ret != 0`` is a
delivery error, never a silent success. WeChat lets a bot speak only after the user did: at most ten
bot messages per user message, within 24 hours of it. A part beyond that is refused here, recorded
as failed and reported, not retried (after a restart iLink's own refusal, ret -2, does the same).
While a turn runs the user sees "typing..." (``getconfig`` ticket, ``sendtyping``).

Pictures become media references; :meth:`fetch_media` downloads one from the CDN (only from
``cdn_base_url``'s host) and decrypts it (AES-128-ECB) when a vision model needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from pydantic import BaseModel

from botframework.channel import ChannelRuntime, Outbound
from botframework.channel_login import LoginConsole
from botframework.channel_state import ChannelState
from botframework.chunked import ChunkedAdapter, VendorError
from botframework.errors import DeliveryError, LoginError, MediaError, PayloadError, StorageError
from botframework.health import ChannelHealth
from botframework.media import MAX_IMAGE_BYTES
from botframework.turn import Turn
from channels.wechat_personal.api import ILinkApi, ILinkError
from channels.wechat_personal.config import WeChatPersonalChannelConfig
from channels.wechat_personal.crypto import decrypt_media
from channels.wechat_personal.events import CHANNEL, ILinkTarget, MediaRef, parse_message
from channels.wechat_personal.login import AlreadyBound, run_qr_login
from channels.wechat_personal.render import LIMIT, to_plain

__all__ = ["WeChatPersonalAdapter"]

log = logging.getLogger(__name__)

SESSION_KEY = "session"
CURSOR_KEY = "cursor"
MESSAGES_PER_USER_MESSAGE = 10
ANSWER_WINDOW_S = 24 * 3600.0
_RELOGIN = "log in again: botframework login wechat_personal --config FILE --tenant <tenant>"
_MAX_USERS = 100_000


def _retryable(exc: ILinkError) -> bool:
    return exc.retryable


DELIVERY_ERRORS = (VendorError(kind=ILinkError, retryable=_retryable, detail=str),)


@dataclass
class _Window:
    """What WeChat allows the bot to send a user: since their last message, how many and until when."""

    last_message_at: float
    sent: int = 0


def _media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def _session(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping) and value.get("bot_token") and value.get("base_url"):
        return dict(value)
    return None


class WeChatPersonalAdapter(ChunkedAdapter[WeChatPersonalChannelConfig, ILinkTarget, None]):
    """One personal WeChat bot (one iLink session) of one tenant."""

    name = CHANNEL
    config_model = WeChatPersonalChannelConfig
    target_model = ILinkTarget
    message_limit = LIMIT
    delivery_errors = DELIVERY_ERRORS
    supports_login = True
    retry_delays_s: ClassVar[tuple[float, ...]] = (2.0, 2.0, 30.0)
    """Pauses after consecutive poll failures (the last one repeats)."""
    ingest_retry_delays_s: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0)
    """Pauses between attempts to store a message while the database fails (then the poll is repeated)."""
    typing_cap_s: ClassVar[float] = 120.0

    def __init__(self, *, tenant: str, config: WeChatPersonalChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        self.state: ChannelState = runtime.channel_state(tenant, CHANNEL)
        self._task: asyncio.Task[None] | None = None
        self._api: ILinkApi | None = None
        self._api_token: str | None = None
        self._health = ChannelHealth.up("starting")
        self._latest_context: OrderedDict[str, str] = OrderedDict()
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._tickets: dict[str, tuple[str, float]] = {}
        self._cdn = ILinkApi(base_url=config.cdn_base_url)
        self.polls = 0
        """getupdates calls made (tests and diagnostics)."""

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def holds_gateway(self) -> bool:
        return True

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{CHANNEL}:{self.tenant}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._typing.values()):
            task.cancel()
        await asyncio.gather(*self._typing.values(), return_exceptions=True)
        self._typing.clear()
        await super().stop()
        if self._api is not None:
            await self._api.close()
            self._api = None
        await self._cdn.close()
        self._health = ChannelHealth.up("stopped")

    def health(self) -> ChannelHealth:
        return self._health

    def _session_api(self, session: Mapping[str, Any]) -> ILinkApi:
        token = str(session["bot_token"])
        if self._api is None or self._api_token != token:
            if self._api is not None:
                # Replaced by a new login: the old client may still carry a request, close it later.
                asyncio.get_running_loop().create_task(self._api.close())
            self._api = ILinkApi(base_url=str(session["base_url"]), token=token)
            self._api_token = token
        return self._api

    async def _run(self) -> None:
        waiting_logged = False
        while True:
            try:
                session = _session(await self.state.get(SESSION_KEY))
            except StorageError as exc:
                log.warning("%s tenant %s: cannot read the session (%s); retrying", CHANNEL, self.tenant, exc)
                await asyncio.sleep(self.settings.session_check_s)
                continue
            if session is None or session.get("expired_at"):
                if not waiting_logged:
                    waiting_logged = True
                    why = "no session is stored" if session is None else "the stored iLink session has expired"
                    log.warning(
                        "%s tenant %s: %s; not polling. To start, %s",
                        CHANNEL,
                        self.tenant,
                        why,
                        _RELOGIN.replace("<tenant>", self.tenant),
                    )
                    self._health = ChannelHealth.down("login_required", f"{why}; {_RELOGIN}")
                await asyncio.sleep(self.settings.session_check_s)
                continue
            waiting_logged = False
            log.info("%s tenant %s: polling as bot %s", CHANNEL, self.tenant, session.get("bot_id"))
            self._health = ChannelHealth.up()
            waiting_logged = await self._poll(session)  # True: it expired, and that was said already

    async def _poll(self, session: dict[str, Any]) -> bool:
        """Long-poll until the session expires (True) or another login replaces it (False); cancelled to stop."""
        api = self._session_api(session)
        cursor = str(await self.state.get(CURSOR_KEY) or "")
        timeout_s = self.settings.poll_timeout_s
        failures = 0
        while True:
            current = _session(await self.state.get(SESSION_KEY))
            if current is None or current.get("bot_token") != session["bot_token"]:
                return False  # a new login replaced this session: start over with it
            try:
                self.polls += 1
                answer = await api.get_updates(cursor, timeout_s=timeout_s)
            except ILinkError as exc:
                if exc.session_expired:
                    await self._expired(session, exc)
                    return True
                failures += 1
                delay = self.retry_delays_s[min(failures, len(self.retry_delays_s)) - 1]
                log.warning(
                    "%s tenant %s: getupdates failed (%s); attempt %d, next in %.0f s",
                    CHANNEL,
                    self.tenant,
                    exc,
                    failures,
                    delay,
                )
                if failures >= len(self.retry_delays_s):
                    self._health = ChannelHealth.down("unreachable", f"getupdates keeps failing: {exc}")
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._health = ChannelHealth.up()
            suggested = answer.get("longpolling_timeout_ms")
            if isinstance(suggested, int | float) and suggested > 0:
                timeout_s = min(max(suggested / 1000, 5.0), 120.0)
            messages = answer.get("msgs") or []
            if not await self._ingest_all(messages if isinstance(messages, list) else []):
                await asyncio.sleep(self.retry_delays_s[-1])
                continue  # the cursor stays: the same messages come again
            new_cursor = answer.get("get_updates_buf")
            if isinstance(new_cursor, str) and new_cursor and new_cursor != cursor:
                await self.state.set(CURSOR_KEY, new_cursor)
                cursor = new_cursor

    async def _expired(self, session: dict[str, Any], exc: ILinkError) -> None:
        log.error(
            "%s tenant %s: the iLink session of bot %s expired or the WeChat account was bound elsewhere (%s); "
            "polling stopped. To resume, %s",
            CHANNEL,
            self.tenant,
            session.get("bot_id"),
            exc,
            _RELOGIN.replace("<tenant>", self.tenant),
        )
        self._health = ChannelHealth.down(
            "login_required", f"the iLink session expired or the WeChat account was bound elsewhere; {_RELOGIN}"
        )
        await self.state.set(SESSION_KEY, {**session, "expired_at": datetime.now(UTC).isoformat()})

    async def _ingest_all(self, messages: Sequence[Any]) -> bool:
        """Store every message of one answer; False if the database kept failing (do not advance)."""
        for raw in messages:
            try:
                turn = parse_message(raw, tenant=self.tenant)
            except PayloadError as exc:
                log.warning("%s tenant %s: ignoring a malformed message: %s", CHANNEL, self.tenant, exc)
                continue
            if turn is None:
                continue
            if not await self._ingest(turn):
                return False
        return True

    async def _ingest(self, turn: Turn) -> bool:
        for delay in (*self.ingest_retry_delays_s, None):
            try:
                result = await self.accept(turn)
                break
            except StorageError as exc:
                if delay is None:
                    log.error(
                        "%s tenant %s: could not store message %s (%s); the poll will be repeated",
                        CHANNEL,
                        self.tenant,
                        turn.event_id,
                        exc,
                    )
                    return False
                await asyncio.sleep(delay)
        target = ILinkTarget.model_validate(turn.target)
        if result.duplicate:
            return True  # a replay: answered once already (or being answered)
        self._remember(self._latest_context, turn.user_id, target.context_token)
        # The window opens when the message reaches us: a message iLink held back is not refused early.
        self._windows.pop(turn.user_id, None)
        self._remember(self._windows, turn.user_id, _Window(last_message_at=time.time()))
        if self.settings.typing:
            self._start_typing(result.turn_id, target)
        return True

    @staticmethod
    def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
        if value:
            store[key] = value
            store.move_to_end(key)
            while len(store) > _MAX_USERS:
                store.popitem(last=False)

    # -- typing ---------------------------------------------------------------------------

    def _start_typing(self, turn_id: str, target: ILinkTarget) -> None:
        task = asyncio.create_task(self._type(target), name=f"{CHANNEL}-typing:{turn_id}")
        self._typing[turn_id] = task
        task.add_done_callback(
            lambda done: self._typing.pop(turn_id, None) if self._typing.get(turn_id) is done else None
        )

    async def _type(self, target: ILinkTarget) -> None:
        api = self._api
        if api is None:
            return
        user = target.to_user_id
        try:
            ticket, fetched = self._tickets.get(user, ("", 0.0))
            if not ticket or time.monotonic() - fetched > 12 * 3600:
                ticket = await api.typing_ticket(user=user, context_token=target.context_token)
                self._tickets[user] = (ticket, time.monotonic())
            if not ticket:
                return
            try:
                deadline = time.monotonic() + self.typing_cap_s
                while time.monotonic() < deadline:
                    await api.send_typing(user=user, ticket=ticket, typing=True)
                    await asyncio.sleep(self.settings.typing_interval_s)
            finally:
                with contextlib.suppress(ILinkError, TimeoutError):
                    await asyncio.shield(api.send_typing(user=user, ticket=ticket, typing=False))
        except ILinkError as exc:
            log.debug("%s tenant %s: typing indicator failed: %s", CHANNEL, self.tenant, exc)

    async def _stop_typing(self, turn_id: str) -> None:
        task = self._typing.pop(turn_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- outbound -------------------------------------------------------------------------

    def render(self, markdown: str) -> str:
        return to_plain(markdown)

    async def deliver(self, outbound: Outbound) -> None:
        await self._stop_typing(outbound.turn_id)
        await super().deliver(outbound)

    async def send_part(self, target: ILinkTarget, text: str, *, index: int, outbound: Outbound) -> None:
        session = _session(await self.state.get(SESSION_KEY))
        if session is None:
            raise DeliveryError(f"{CHANNEL} tenant {self.tenant}: no session to send with; {_RELOGIN}", retryable=True)
        user = target.to_user_id
        window = self._windows.get(user)
        if window is not None:
            if time.time() - window.last_message_at > ANSWER_WINDOW_S:
                raise DeliveryError(
                    f"{CHANNEL}: not sent to {user}: WeChat lets a bot answer only within 24 h of the user's message",
                    retryable=False,
                )
            if window.sent >= MESSAGES_PER_USER_MESSAGE:
                raise DeliveryError(
                    f"{CHANNEL}: not sent to {user}: WeChat allows {MESSAGES_PER_USER_MESSAGE} bot messages per "
                    f"user message and this reply needs more (part {index + 1}); the rest waits for no one",
                    retryable=False,
                )
        latest = [e.reply_target.get("context_token") for e in outbound.events if e.user_id == user]
        context = self._latest_context.get(user) or next((str(c) for c in reversed(latest) if c), "")
        context = context or target.context_token
        await self._session_api(session).send_text(
            to_user=user, context_token=context, text=text, client_id=f"bf-{outbound.part_key(index)}"
        )
        if window is not None:
            window.sent += 1

    # -- media ----------------------------------------------------------------------------

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        media = MediaRef.decode(ref)
        cdn = urlsplit(self.settings.cdn_base_url)
        url = ""
        if media.full_url:
            given = urlsplit(media.full_url)
            if (given.scheme, given.netloc) == (cdn.scheme, cdn.netloc):
                url = media.full_url
        if not url:
            if not media.query:
                raise MediaError(f"{CHANNEL} picture is on another host than cdn_base_url and has no CDN parameter")
            base = self.settings.cdn_base_url.rstrip("/")
            url = f"{base}/download?encrypted_query_param={quote(media.query, safe='')}"
        try:
            data = await self._cdn.download(url, max_bytes=MAX_IMAGE_BYTES + 16)
        except ILinkError as exc:
            raise MediaError(f"{CHANNEL} picture could not be downloaded: {exc}") from exc
        plain = decrypt_media(data, bytes.fromhex(media.key_hex))
        return plain, _media_type(plain)

    # -- operator commands ----------------------------------------------------------------

    @classmethod
    async def login(cls, *, tenant: str, config: BaseModel, state: ChannelState, console: LoginConsole) -> None:
        assert isinstance(config, WeChatPersonalChannelConfig)
        api = ILinkApi(base_url=config.api_base_url)
        previous = _session(await state.get(SESSION_KEY))
        try:
            session = await run_qr_login(api, console, bot_type=config.bot_type, timeout_s=config.login_timeout_s)
        except AlreadyBound:
            if previous is None or previous.get("expired_at"):
                raise LoginError(
                    "WeChat says this account is already bound to this bot, but no valid session is stored here; "
                    "unbind the bot in WeChat and log in again"
                ) from None
            console.say(f"This WeChat account is already bound to bot {previous.get('bot_id')}; the session stays.")
            return
        finally:
            await api.close()
        if previous is not None and previous.get("bot_id") != session.bot_id:
            await state.delete(CURSOR_KEY)  # another bot's cursor means nothing to this one
        await state.set(SESSION_KEY, session.to_state(logged_in_at=time.time()))
        console.say(
            f"Logged in as bot {session.bot_id}. A running server picks the session up within "
            f"{config.session_check_s:.0f} s; otherwise start it with `botframework serve`."
        )

    @classmethod
    async def probe(cls, *, tenant: str, config: BaseModel, state: ChannelState) -> ChannelHealth:
        session = _session(await state.get(SESSION_KEY))
        if session is None:
            return ChannelHealth.down("login_required", f"no session is stored; {_RELOGIN.replace('<tenant>', tenant)}")
        if session.get("expired_at"):
            return ChannelHealth.down(
                "login_required",
                f"the session of bot {session.get('bot_id')} expired at {session['expired_at']}; "
                + _RELOGIN.replace("<tenant>", tenant),
            )
        return ChannelHealth.up()
