"""Discord channel: a discord.py ``Client`` running in the server's event loop.

Inbound: discord.py keeps the gateway connection (heartbeats, RESUME after a drop, reconnects with
backoff, rate limits) and hands us each ``discord.Message``; :mod:`.events` decides whether it is
addressed to the bot and makes the Turn, which goes to ``runtime.ingest``. Accepted turns get a
typing indicator until their reply is delivered (or ``typing_cap_s`` passes).

Outbound: the core's chunked delivery renders Discord Markdown and splits at 2,000 characters keeping
code fences balanced; ``send_part`` sends the first chunk as a reply to the user's message and the
rest after it. Mentions in the text never ping anyone (``AllowedMentions``); only the replied-to
user may be pinged. Each chunk carries the core's idempotency key of its part as ``nonce`` (discord.py
then sends ``enforce_nonce``): a chunk resent after a crash within Discord's nonce window (a few
minutes) returns the message already created instead of a second one. discord.py otherwise makes
up a random nonce per call, which dedupes nothing.

``api_base_url``: discord.py keeps its REST base in the class attribute ``discord.http.Route.BASE``.
Changing it would redirect every client in the process (other tenants included), so instead this
adapter's own client gets an ``HTTPClient`` subclass that rewrites each route's URL onto the
configured base, and asks that base's ``/gateway/bot`` where the gateway is (discord.py's plain
``Client`` would otherwise connect to the hard-coded ``wss://gateway.discord.gg``). Nothing global
is touched; without ``api_base_url`` the stock client is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route

from botframework.channel import ChannelRuntime, IngestStatus, Outbound
from botframework.chunked import ChunkedAdapter, VendorError
from botframework.errors import DeliveryError, PayloadError, StorageError
from botframework.logs import quiet_loggers
from channels.discord.config import DiscordChannelConfig
from channels.discord.events import (
    CHANNEL,
    DiscordMessage,
    DiscordTarget,
    addressed_to_bot,
    channel_allowed,
    to_turn,
)
from channels.discord.render import FOLLOW_UP_MENTIONS, LIMIT, REPLY_MENTIONS, to_discord

__all__ = ["DiscordAdapter"]

log = logging.getLogger(__name__)
quiet_loggers("discord")

_PRIVILEGED_HINT = (
    "discord rejected the gateway connection for tenant %s (close code 4014): the bot asks for the "
    "privileged Message Content intent. Enable it in the Developer Portal: Applications -> your app -> "
    "Bot -> Privileged Gateway Intents -> MESSAGE CONTENT INTENT, then restart."
)
_MAX_PARENTS = 4096


def _http_retryable(exc: discord.HTTPException) -> bool:
    return exc.status == 429 or exc.status >= 500


def _http_detail(exc: discord.HTTPException) -> str:
    return f"HTTP {exc.status} code {exc.code}: {exc.text}"


DELIVERY_ERRORS = (
    VendorError(kind=discord.HTTPException, retryable=_http_retryable, detail=_http_detail),
    VendorError(kind=aiohttp.ClientError),
    VendorError(kind=OSError),
    VendorError(kind=TimeoutError),
)
"""Discord's errors: rate limits and 5xx are worth a retry; 4xx (missing access, unknown channel) not."""


class _RebasedHTTPClient(HTTPClient):
    """discord.py's HTTP client, sending REST calls to ``api_base`` and using its gateway."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, api_base: str) -> None:
        super().__init__(loop)
        self.api_base = api_base.rstrip("/")
        self._gateway: yarl.URL | None = None

    async def request(self, route: Route, **kwargs: Any) -> Any:
        base = Route.BASE
        if route.url.startswith(base):
            route.url = self.api_base + route.url[len(base) :]
        return await super().request(route, **kwargs)

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        target = yarl.URL(url)
        if target.host == DiscordWebSocket.DEFAULT_GATEWAY.host:
            if self._gateway is None:
                _, gateway, _ = await self.get_bot_gateway()
                self._gateway = yarl.URL(gateway)
            target = self._gateway.with_query(target.query)
        return await super().ws_connect(str(target), compress=compress)


class _BotClient(discord.Client):
    def __init__(self, *, adapter: DiscordAdapter, intents: discord.Intents, api_base_url: str | None) -> None:
        super().__init__(intents=intents, chunk_guilds_at_startup=False)
        self._adapter = adapter
        if api_base_url is not None:
            self.http = _RebasedHTTPClient(self.loop, api_base=api_base_url)
            self._connection.http = self.http

    async def on_ready(self) -> None:
        log.info("discord tenant %s connected as %s", self._adapter.tenant, self.user)

    async def on_message(self, message: discord.Message) -> None:
        await self._adapter.on_message(message)


class DiscordAdapter(ChunkedAdapter[DiscordChannelConfig, DiscordTarget, None]):
    """One Discord bot of one tenant."""

    name = CHANNEL
    config_model = DiscordChannelConfig
    image_hosts = ("cdn.discordapp.com", "media.discordapp.net")
    target_model = DiscordTarget
    message_limit = LIMIT
    delivery_errors = DELIVERY_ERRORS
    typing_cap_s: float = 120.0
    """Longest a typing indicator runs when no reply comes."""
    ingest_retry_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    """Waits between attempts to store a message while the database is unavailable."""

    def __init__(self, *, tenant: str, config: DiscordChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        intents = discord.Intents.default()
        intents.message_content = True
        self.client = _BotClient(adapter=self, intents=intents, api_base_url=config.api_base_url)
        self._allowed = frozenset(config.allowed_channels)
        self._task: asyncio.Task[None] | None = None
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._parents: OrderedDict[int, asyncio.Future[str | None]] = OrderedDict()

    # lifecycle

    @property
    def holds_gateway(self) -> bool:
        return True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"discord:{self.tenant}")

    async def _run(self) -> None:
        try:
            await self.client.start(self.settings.bot_token.get_secret_value())
        except discord.PrivilegedIntentsRequired:
            log.error(_PRIVILEGED_HINT, self.tenant)
        except discord.LoginFailure as exc:
            log.error("discord tenant %s: the bot token was rejected (%s)", self.tenant, exc)
        except Exception:
            log.exception("discord tenant %s: the gateway client stopped", self.tenant)

    async def stop(self) -> None:
        for task in list(self._typing.values()):
            task.cancel()
        await asyncio.gather(*self._typing.values(), return_exceptions=True)
        self._typing.clear()
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # inbound

    async def on_message(self, message: discord.Message) -> None:
        bot = self.client.user
        bot_user_id = str(bot.id) if bot is not None else None
        try:
            view = DiscordMessage.from_discord(message)
        except PayloadError as exc:  # pragma: no cover - discord.py already parsed it
            log.warning("discord tenant %s: ignoring message: %s", self.tenant, exc)
            return
        if bot_user_id is None or not addressed_to_bot(view, bot_user_id=bot_user_id):
            return
        parent: str | None = None
        if not view.is_dm and self._allowed and view.channel_id not in self._allowed:
            parent = await self._parent_of(message.channel)
        if not channel_allowed(view, allowed_channels=self._allowed, parent_id=parent):
            return
        turn = to_turn(view, tenant=self.tenant, bot_user_id=bot_user_id)
        if turn is None:
            return
        # The gateway never redelivers, so a storage hiccup is retried here (ingest is idempotent:
        # the message id is the dedupe key). Anything else is a bug: logged, not retried.
        for delay in (*self.ingest_retry_delays_s, None):
            try:
                result = await self.accept(turn)
                break
            except StorageError as exc:
                if delay is None:
                    log.error(
                        "discord tenant %s: message %s is lost, storage kept failing: %s", self.tenant, view.id, exc
                    )
                    return
                log.warning(
                    "discord tenant %s: could not store message %s (%s); retrying in %ss",
                    self.tenant,
                    view.id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            except Exception:
                log.exception("discord tenant %s: could not ingest message %s", self.tenant, view.id)
                return
        if result.status is IngestStatus.ACCEPTED:
            self._start_typing(result.turn_id, message.channel)

    async def _parent_of(self, channel: discord.abc.Messageable) -> str | None:
        """A thread's parent channel id, None for other channels.

        From discord.py's cache when it knows the thread, else one REST lookup per channel, shared
        by concurrent messages and remembered (a failed lookup is not remembered).
        """
        if isinstance(channel, discord.Thread):
            return str(channel.parent_id)
        channel_id = getattr(channel, "id", None)
        if not isinstance(channel_id, int):
            return None
        lookup = self._parents.get(channel_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self._fetch_parent(channel_id))
            self._parents[channel_id] = lookup
            while len(self._parents) > _MAX_PARENTS:
                self._parents.popitem(last=False)
        try:
            return await asyncio.shield(lookup)
        except discord.HTTPException as exc:
            if self._parents.get(channel_id) is lookup:
                del self._parents[channel_id]
            log.warning("discord tenant %s: cannot look up channel %s: %s", self.tenant, channel_id, exc)
            return None

    async def _fetch_parent(self, channel_id: int) -> str | None:
        fetched = await self.client.fetch_channel(channel_id)
        return str(fetched.parent_id) if isinstance(fetched, discord.Thread) else None

    def _start_typing(self, turn_id: str, channel: discord.abc.Messageable) -> None:
        task = asyncio.create_task(self._type(channel), name=f"discord-typing:{turn_id}")
        self._typing[turn_id] = task
        task.add_done_callback(
            lambda done: self._typing.pop(turn_id, None) if self._typing.get(turn_id) is done else None
        )

    async def _type(self, channel: discord.abc.Messageable) -> None:
        try:
            async with channel.typing():
                await asyncio.sleep(self.typing_cap_s)
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.debug("discord tenant %s: typing indicator failed: %s", self.tenant, exc)

    async def _stop_typing(self, turn_id: str) -> None:
        task = self._typing.pop(turn_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # outbound

    def render(self, markdown: str) -> str:
        return to_discord(markdown)

    async def deliver(self, outbound: Outbound) -> None:
        await self._stop_typing(outbound.turn_id)
        if self.client.user is None or self.client.is_closed():
            raise DeliveryError(f"discord client of tenant {self.tenant} is not logged in", retryable=True)
        await super().deliver(outbound)

    async def send_part(self, target: DiscordTarget, text: str, *, index: int, outbound: Outbound) -> None:
        channel_id, message_id = int(target.channel_id), int(target.message_id)
        channel = self.client.get_partial_messageable(channel_id)
        first = index == 0
        reference = discord.MessageReference(message_id=message_id, channel_id=channel_id, fail_if_not_exists=False)
        await channel.send(
            content=text,
            reference=reference if first else None,  # type: ignore[arg-type]
            allowed_mentions=REPLY_MENTIONS if first else FOLLOW_UP_MENTIONS,
            nonce=outbound.part_key(index),  # discord.py adds enforce_nonce; without it, a random nonce
        )
