"""Slack channel: slack-bolt's AsyncApp mounted in our aiohttp server (or Socket Mode).

Inbound: the signature is verified on the raw bytes before anything parses them (fail closed: 401,
5-minute window, slack_sdk's ``SignatureVerifier``); then bolt verifies again and answers
``url_verification``; our one listener turns the payload into a Turn (:mod:`.events`) and awaits
``runtime.ingest`` *before* the response goes out (``process_before_response=True``). Ingest only
persists and schedules, so the ack stays fast, and an acknowledged event is always stored. If ingest
fails, bolt answers 500 and Slack retries later with the same ``event_id``.

Outbound: the core's chunked delivery (:class:`botframework.chunked.ChunkedAdapter`) renders
mrkdwn, chunks it, and calls ``send_part`` for each chunk, in the thread. With ``live_updates`` the
core posts a placeholder on the first streamed delta and edits it with ``chat.update`` at most every
``update_interval_s``; it then becomes the first chunk. Every chunk carries message metadata with its
idempotency key (:func:`part_metadata`); after a crash mid-send, the chunk the core recorded as in
flight is looked up in the thread (``conversations.replies``, or ``conversations.history`` in a DM)
and sent again only if it is not there. That needs the history scopes (``channels:history``,
``groups:history``, ``im:history``, ``mpim:history``); without them the chunk is resent (at most one
duplicate).

bolt never calls ``auth.test`` on its own here: ``authorize`` is ours and answers from what
``start()`` learned (or from the envelope's ``authorizations``), so a slow Slack API cannot delay an
ack and no request depends on a network call other than ingest.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from botframework.channel import ChannelRuntime, Outbound, Route
from botframework.chunked import ChunkedAdapter, VendorError
from botframework.errors import MediaError, PayloadError, StorageError
from botframework.inputs import load_json_object
from botframework.logs import quiet_loggers
from botframework.media import MAX_IMAGE_BYTES
from botframework.storage_health import describe
from channels.slack.config import SlackChannelConfig
from channels.slack.events import CHANNEL, SlackTarget, bot_user_from, parse_event
from channels.slack.render import LIMIT, to_slack

__all__ = ["MARKER_EVENT_TYPE", "SlackAdapter", "carries_marker", "part_metadata"]

log = logging.getLogger(__name__)
quiet_loggers("slack_bolt")

_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_SLACK_FILES_HOST = "files.slack.com"
MARKER_EVENT_TYPE = "botframework_reply_part"
"""The ``metadata.event_type`` of every reply part the bot posts; its payload carries the part's key."""
MARKER_LOOKBACK_S = 300.0
"""How far before the interrupted attempt the marker check reads (clock skew between us and Slack)."""
MARKER_PAGES = 5
"""Pages of 200 messages read at most; a part is looked for minutes after its attempt, not days."""


def part_metadata(key: str) -> dict[str, Any]:
    """Slack message metadata marking one reply part (``chat.postMessage``'s ``metadata``)."""
    return {"event_type": MARKER_EVENT_TYPE, "event_payload": {"key": key}}


def carries_marker(message: Any, key: str) -> bool:
    """Whether a message read back from Slack is the reply part with ``key``."""
    if not isinstance(message, dict):
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != MARKER_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload.get("key") == key
_MEDIA_TIMEOUT_S = 30.0
_IDENTIFY_TIMEOUT_S = 10.0


def _api_error(exc: SlackApiError) -> tuple[str, int]:
    """Slack's error code and the HTTP status; a body that is not JSON (a proxy's error page) has no code."""
    if exc.response is None:
        return "", 0
    data = exc.response.data
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    return error, exc.response.status_code


def _api_retryable(exc: SlackApiError) -> bool:
    error, status = _api_error(exc)
    return error in _RETRYABLE_ERRORS or status == 429 or status >= 500


def _api_detail(exc: SlackApiError) -> str:
    error, status = _api_error(exc)
    return f"{error or 'error'} (HTTP {status})"


DELIVERY_ERRORS = (
    VendorError(kind=SlackApiError, retryable=_api_retryable, detail=_api_detail),
    VendorError(kind=aiohttp.ClientError),
    VendorError(kind=TimeoutError),
)
"""Slack's errors: rate limits, 5xx and timeouts are worth a retry; ``channel_not_found`` and the like not."""


class SlackAdapter(ChunkedAdapter[SlackChannelConfig, SlackTarget, str]):
    """One Slack app (workspace bot) of one tenant."""

    name = CHANNEL
    config_model = SlackChannelConfig
    target_model = SlackTarget
    message_limit = LIMIT
    delivery_errors = DELIVERY_ERRORS

    def __init__(self, *, tenant: str, config: SlackChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        if config.live_updates:
            self.live_interval_s = config.update_interval_s
        base_url = config.api_base_url if config.api_base_url.endswith("/") else config.api_base_url + "/"
        self._bot_token = config.bot_token.get_secret_value()
        self._verifier = SignatureVerifier(signing_secret=config.signing_secret.get_secret_value())
        # No SDK-level retries: a failed delivery is retried by the core, which owns delivery records.
        self.client = AsyncWebClient(token=self._bot_token, base_url=base_url, logger=log, retry_handlers=[])
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self._socket: AsyncSocketModeHandler | None = None
        # bolt gets a token-less client of its own: the token comes from our authorize(), which
        # keeps bolt from calling auth.test per process and from warning about token + authorize.
        self.app = AsyncApp(
            client=AsyncWebClient(base_url=base_url, logger=log),
            signing_secret=config.signing_secret.get_secret_value(),
            authorize=self._authorizer(),
            process_before_response=True,
            ignoring_self_events_enabled=False,  # events.parse_event ignores the bot's own messages
            logger=log,
        )

        # bolt passes listener/authorize arguments by parameter name: plain closures, not methods.
        async def on_event(body: dict[str, Any]) -> None:
            await self._on_event(body)

        self.app.event(re.compile(".*"))(on_event)

        async def on_error(error: Exception) -> BoltResponse | None:
            if isinstance(error, StorageError):  # not stored, not acknowledged: Slack retries a 503
                log.warning("slack tenant %s: event not stored, answered 503: %s", self.tenant, describe(error))
                return BoltResponse(status=503, body="temporarily unavailable")
            log.error("slack tenant %s: handling an event failed", self.tenant, exc_info=error)
            return None

        self.app.error(on_error)

    # lifecycle

    def routes(self) -> Sequence[Route]:
        if self.settings.mode != "events":
            return ()
        return (Route(method="POST", path="slack/events", handler=self.handle_events),)

    @property
    def holds_gateway(self) -> bool:
        return self.settings.mode == "socket"

    async def start(self) -> None:
        await self._identify()
        if self.settings.mode == "socket":
            assert self.settings.app_token is not None  # the config validator requires it
            self._socket = AsyncSocketModeHandler(
                self.app,
                app_token=self.settings.app_token.get_secret_value(),
                web_client=self.client,
                logger=log,
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await super().stop()

    # media

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """A shared file's bytes (``ref`` is its ``url_private``), read with the bot token.

        The token is only ever sent to Slack's file host (or to the host of ``api_base_url``, for a
        proxy or a test server), never to a URL a payload could point elsewhere. Without the
        ``files:read`` scope Slack answers 200 with an HTML login page: that is reported as such.
        """
        host = urlsplit(ref).hostname
        allowed = {_SLACK_FILES_HOST, urlsplit(self.settings.api_base_url).hostname}
        if urlsplit(ref).scheme not in ("https", "http") or host not in allowed:
            raise MediaError(f"slack file {ref!r} is not on {_SLACK_FILES_HOST}: not fetched with the bot token")
        headers = {"Authorization": f"Bearer {self._bot_token}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_MEDIA_TIMEOUT_S)) as session,
                session.get(ref, headers=headers) as response,
            ):
                if response.status != 200:
                    raise MediaError(f"slack file {ref!r}: HTTP {response.status}")
                media_type = response.content_type
                if media_type == "text/html":
                    raise MediaError(f"slack file {ref!r} answered a login page: the app needs the files:read scope")
                data = await response.content.read(MAX_IMAGE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaError(f"slack file {ref!r}: {type(exc).__name__}") from exc
        return data, media_type

    async def _identify(self) -> None:
        """Learn the bot's user id (auth.test); on failure run on, the envelopes will tell."""
        try:
            response = await asyncio.wait_for(self.client.auth_test(), _IDENTIFY_TIMEOUT_S)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack auth.test failed for tenant %s; bot user id unknown for now: %s", self.tenant, exc)
            return
        self.bot_user_id = str(response.get("user_id") or "") or None
        self.bot_id = str(response.get("bot_id") or "") or None
        log.info("slack tenant %s: bot user %s", self.tenant, self.bot_user_id)

    # inbound

    async def handle_events(self, request: web.Request) -> web.StreamResponse:
        """``POST /t/{tenant}/slack/events``: verified here on the raw bytes, then bolt answers and
        dispatches to ``_on_event``.

        The signature (and its 5-minute window) is checked before anything parses the body, so
        unauthenticated garbage is a 401 whatever it holds; a signed body that is not a JSON object
        (or form) is a 400. bolt then parses a body known to be Slack's, and verifies it again.
        """
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12 and signature.isascii()):
            return web.Response(status=401, text="invalid request")
        try:
            text = body.decode("utf-8")  # Slack signs UTF-8; slack_sdk's verifier decodes it anyway
        except UnicodeDecodeError:
            return web.Response(status=401, text="invalid request")
        if not self._verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            return web.Response(status=401, text="invalid request")
        try:
            if request.content_type != "application/x-www-form-urlencoded":
                load_json_object(text, what="slack request body")
        except PayloadError as exc:
            log.warning("slack tenant %s: malformed signed request: %s", self.tenant, exc)
            return web.Response(status=400, text="malformed request")
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _authorizer(self) -> Callable[..., Awaitable[AuthorizeResult]]:
        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id,
                bot_token=self._bot_token,
                bot_user_id=self.bot_user_id,
                bot_id=self.bot_id,
            )

        return authorize

    async def _on_event(self, body: dict[str, Any]) -> None:
        if self.bot_user_id is None:
            self.bot_user_id = bot_user_from(body)
        try:
            parsed = parse_event(body, tenant=self.tenant, bot_user_id=self.bot_user_id)
        except PayloadError as exc:
            log.warning("slack tenant %s: ignoring malformed event: %s", self.tenant, exc)
            return
        if parsed is None:
            return
        turn = parsed.turn
        if parsed.needs_thread_membership and not await self.runtime.has_conversation(
            self.tenant, CHANNEL, turn.conversation_key
        ):
            return
        await self.accept(turn)  # raises -> bolt answers 500 -> Slack retries

    # outbound

    def render(self, markdown: str) -> str:
        return to_slack(markdown)

    async def send_part(self, target: SlackTarget, text: str, *, index: int, outbound: Outbound) -> None:
        await self.client.chat_postMessage(
            channel=target.channel,
            thread_ts=target.thread_ts,
            text=text,
            link_names=False,
            metadata=part_metadata(outbound.part_key(index)),
        )

    async def already_delivered(self, target: SlackTarget, text: str, *, index: int, outbound: Outbound) -> bool:
        """Read the thread (or the DM) back from shortly before the interrupted attempt and look for
        the part's metadata marker. Slack has no idempotency key on ``chat.postMessage``; this check is
        what makes a resend after a crash exactly once."""
        assert outbound.in_flight is not None
        key = outbound.part_key(index)
        oldest = f"{outbound.in_flight.since.timestamp() - MARKER_LOOKBACK_S:.6f}"
        cursor: str | None = None
        for _ in range(MARKER_PAGES):
            if target.thread_ts:
                page = await self.client.conversations_replies(
                    channel=target.channel,
                    ts=target.thread_ts,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            else:
                page = await self.client.conversations_history(
                    channel=target.channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
                )
            if any(carries_marker(message, key) for message in page.get("messages") or ()):
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or cursor is None:
                return False
        return False

    async def post_placeholder(self, target: SlackTarget, text: str) -> str | None:
        response = await self.client.chat_postMessage(
            channel=target.channel, thread_ts=target.thread_ts, text=text, link_names=False
        )
        ts = response.get("ts")
        return str(ts) if ts else None

    async def edit_placeholder(self, target: SlackTarget, handle: str, text: str) -> None:
        await self.client.chat_update(channel=target.channel, ts=handle, text=text)
