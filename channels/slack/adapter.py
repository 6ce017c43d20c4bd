"""Slack channel: slack-bolt's AsyncApp mounted in our aiohttp server (or Socket Mode).

Inbound: bolt verifies the signature (fail closed: 401, 5-minute window) and answers
``url_verification``; our one listener turns the payload into a Turn (:mod:`.events`) and awaits
``runtime.ingest`` *before* the response goes out (``process_before_response=True``). Ingest only
persists and schedules, so the ack stays fast, and an acknowledged event is always stored. If ingest
fails, bolt answers 500 and Slack retries later with the same ``event_id``.

Outbound: ``deliver`` renders Markdown to mrkdwn, chunks it, and posts each chunk in the thread.
With ``live_updates`` a placeholder is posted on the first streamed delta and edited with
``chat.update`` at most every ``update_interval_s``; ``deliver`` then turns it into the first chunk.

bolt never calls ``auth.test`` on its own here: ``authorize`` is ours and answers from what
``start()`` learned (or from the envelope's ``authorizations``), so a slow Slack API cannot delay an
ack and no request depends on a network call other than ingest.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from pydantic import BaseModel
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from botframework.channel import ChannelAdapter, ChannelRuntime, Outbound, Route
from botframework.config.schema import SlackChannelConfig
from botframework.errors import DeliveryError, MediaError, PayloadError
from botframework.live import LiveReplies, ThrottledLiveReply
from botframework.media import MAX_IMAGE_BYTES
from channels.slack.events import CHANNEL, bot_user_from, parse_event
from channels.slack.render import render_preview, render_reply

__all__ = ["SlackAdapter", "SlackLiveReply"]

log = logging.getLogger(__name__)

_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_MAX_LIVE = 1024
_SLACK_FILES_HOST = "files.slack.com"
_MEDIA_TIMEOUT_S = 30.0
_IDENTIFY_TIMEOUT_S = 10.0


def _delivery_error(
    method: str, exc: Exception, *, channel: str, note: str = "", delivered_parts: int = 0
) -> DeliveryError:
    """Translate a Slack SDK / transport failure; rate limits, 5xx and timeouts are retryable."""
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error", "")) if exc.response is not None else ""
        status = exc.response.status_code if exc.response is not None else 0
        retryable = error in _RETRYABLE_ERRORS or status == 429 or status >= 500
        detail = f"{error or 'error'} (HTTP {status})"
    else:
        retryable = True
        detail = f"{type(exc).__name__}: {exc}"
    return DeliveryError(
        f"slack {method} to channel {channel} failed: {detail}{note}",
        retryable=retryable,
        delivered_parts=delivered_parts,
    )


class SlackLiveReply(ThrottledLiveReply[str]):
    """The shared live reply (:mod:`botframework.live`) on ``chat.postMessage`` / ``chat.update`` in one thread."""

    def __init__(self, *, client: AsyncWebClient, channel: str, thread_ts: str | None, interval: float) -> None:
        async def post(text: str) -> str | None:
            try:
                response = await client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=text, link_names=False
                )
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                raise _delivery_error("chat.postMessage", exc, channel=channel) from exc
            ts = response.get("ts")
            return str(ts) if ts else None

        async def edit(ts: str, text: str) -> None:
            try:
                await client.chat_update(channel=channel, ts=ts, text=text)
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                raise _delivery_error("chat.update", exc, channel=channel) from exc

        super().__init__(
            post=post, edit=edit, preview=render_preview, interval=interval, label=f"slack live reply in {channel}"
        )

    @property
    def ts(self) -> str | None:
        """The placeholder's ts once posted."""
        return self.handle


class SlackAdapter(ChannelAdapter):
    """One Slack app (workspace bot) of one tenant."""

    name = CHANNEL

    def __init__(self, *, tenant: str, config: BaseModel, runtime: ChannelRuntime) -> None:
        if not isinstance(config, SlackChannelConfig):
            raise TypeError(f"SlackAdapter needs a SlackChannelConfig, got {type(config).__name__}")
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        base_url = config.api_base_url if config.api_base_url.endswith("/") else config.api_base_url + "/"
        self._bot_token = config.bot_token.get_secret_value()
        # No SDK-level retries: a failed delivery is retried by the core, which owns delivery records.
        self.client = AsyncWebClient(token=self._bot_token, base_url=base_url, logger=log, retry_handlers=[])
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self._live: LiveReplies[str] = LiveReplies(_MAX_LIVE)
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

    # lifecycle

    def routes(self) -> Sequence[Route]:
        if self.settings.mode != "events":
            return ()
        return (Route(method="POST", path="slack/events", handler=self.handle_events),)

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
        await self._live.close()

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
        """``POST /t/{tenant}/slack/events``: bolt verifies, answers, and dispatches to ``_on_event``."""
        # bolt's verifier raises (-> 500, which Slack would retry) on a non-numeric timestamp or a
        # body that is not UTF-8; neither can be a genuine Slack request, so fail closed with 401.
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit()):
            return web.Response(status=401, text="invalid request")
        try:
            bolt_request = await to_bolt_request(request)
        except UnicodeDecodeError:
            return web.Response(status=401, text="invalid request")
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
        result = await self.runtime.ingest(turn)  # raises -> bolt answers 500 -> Slack retries
        if not result.duplicate and self.settings.live_updates:
            self._attach_live(result.turn_id, turn.reply_target)

    def _attach_live(self, turn_id: str, target: Mapping[str, Any]) -> None:
        live = SlackLiveReply(
            client=self.client,
            channel=str(target["channel"]),
            thread_ts=target.get("thread_ts"),
            interval=self.settings.update_interval_s,
        )
        self._live.add(turn_id, live)
        self.runtime.attach_sink(self.tenant, CHANNEL, turn_id, live)

    # outbound

    async def deliver(self, outbound: Outbound) -> None:
        target = outbound.primary.reply_target
        channel = str(target.get("channel") or "")
        if not channel:
            raise DeliveryError(
                f"slack reply for turn {outbound.turn_id} has no channel in {dict(target)}", retryable=False
            )
        thread_ts = target.get("thread_ts")
        chunks = render_reply(outbound.reply.text)
        live = self._live.pop(outbound.turn_id)
        placeholder = await live.finish() if live is not None else None
        for index, chunk in enumerate(chunks):
            if index < outbound.resume_from:
                continue  # an earlier attempt posted it
            note = f" (chunk {index + 1}/{len(chunks)}; {index} already posted)" if len(chunks) > 1 else ""
            if index == 0 and placeholder is not None:
                try:
                    await self.client.chat_update(channel=channel, ts=placeholder, text=chunk)
                    continue
                except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                    error = _delivery_error("chat.update", exc, channel=channel, note=note, delivered_parts=index)
                    if error.retryable:
                        assert live is not None
                        self._live.add(outbound.turn_id, live)  # the retry finalizes the same placeholder
                        raise error from exc
                    log.warning("slack placeholder cannot be finalized, posting the reply instead: %s", error)
            try:
                await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=chunk, link_names=False)
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                raise _delivery_error(
                    "chat.postMessage", exc, channel=channel, note=note, delivered_parts=index
                ) from exc
