"""Telegram channel: Bot API updates (webhook or long polling) in, ``sendMessage`` out.

Webhook: ``POST /t/{tenant}/telegram/webhook``. The ``X-Telegram-Bot-Api-Secret-Token`` header is
compared in constant time with ``secret_token`` before the body is read: a missing or wrong one gets
401 and nothing is stored. A verified update becomes a Turn (:mod:`.events`) that is ingested
*before* the 200 goes out; if ingest fails the answer is 500 and Telegram redelivers the update with
the same ``update_id``, which the core dedupes.

Polling: ``start()`` runs a ``getUpdates`` loop instead. The offset moves past an update only once
it is ingested, so an update that could not be stored is fetched again after a pause (and one that
was stored but not yet confirmed, after a restart, is deduped).

Outbound: the core's chunked delivery (:class:`botframework.chunked.ChunkedAdapter`) renders HTML,
chunks it under 4,096 characters and calls :meth:`TelegramAdapter.send_part` for each chunk, which
replies to the user's message (in its forum topic, if any). With ``live_updates`` the core posts the
first streamed text as a message and edits it (``editMessageText``), throttled, until it becomes the
first chunk of the reply. Bot API failures become ``DeliveryError`` through :data:`DELIVERY_ERRORS`;
the core retries the retryable ones.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from botframework.channel import ChannelRuntime, Outbound, Route
from botframework.chunked import ChunkedAdapter, VendorError
from botframework.errors import PayloadError

from bf_telegram.api import BotApi, TelegramApiError, TelegramNetworkError
from bf_telegram.config import TelegramChannelConfig
from bf_telegram.events import CHANNEL, BotIdentity, TelegramTarget, parse_update
from bf_telegram.render import LIMIT, to_telegram_html

__all__ = ["DELIVERY_ERRORS", "SECRET_HEADER", "TelegramAdapter"]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_ALLOWED_UPDATES = ["message"]
_IDENTIFY_TIMEOUT_S = 10.0

DELIVERY_ERRORS = (
    VendorError(kind=TelegramApiError, retryable=lambda exc: exc.retryable),
    VendorError(kind=TelegramNetworkError),
)
"""429 and 5xx are worth a retry, as is an unreachable API; 400 (bad chat), 401 and 403 (blocked) are not."""


class TelegramAdapter(ChunkedAdapter[TelegramChannelConfig, TelegramTarget, int]):
    """One Telegram bot of one tenant."""

    name = CHANNEL
    config_model = TelegramChannelConfig
    target_model = TelegramTarget
    message_limit = LIMIT
    delivery_errors = DELIVERY_ERRORS
    poll_backoff_s: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 30.0)
    """Pauses after consecutive failed polls (the last one repeats)."""

    def __init__(self, *, tenant: str, config: TelegramChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.api = BotApi(
            token=config.bot_token.get_secret_value(), base_url=config.api_base_url, timeout_s=config.request_timeout_s
        )
        self.bot = BotIdentity(id=config.bot_id)
        if config.live_updates:
            self.live_interval_s = config.update_interval_s
        self._poller: asyncio.Task[None] | None = None

    # lifecycle

    def routes(self) -> Sequence[Route]:
        if self.config.mode != "webhook":
            return ()
        return (Route(method="POST", path=f"{CHANNEL}/webhook", handler=self.handle_webhook),)

    @property
    def holds_gateway(self) -> bool:
        return self.config.mode == "polling"  # Telegram serves getUpdates to one poller per bot

    async def start(self) -> None:
        await self._identify()
        if self.config.mode == "polling":
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name=f"telegram-poll-{self.tenant}")
        elif self.config.webhook_url is not None:
            assert self.config.secret_token is not None  # required in webhook mode
            try:
                await self.api.call(
                    "setWebhook",
                    {
                        "url": self.config.webhook_url,
                        "secret_token": self.config.secret_token.get_secret_value(),
                        "allowed_updates": _ALLOWED_UPDATES,
                    },
                )
            except (TelegramApiError, TelegramNetworkError) as exc:
                log.error("telegram tenant %s: setWebhook failed, register the webhook yourself: %s", self.tenant, exc)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await super().stop()
        await self.api.close()

    async def _identify(self) -> bool:
        """Learn the bot's username (``getMe``), which mentions in groups name; False if unknown."""
        if self.bot.username is not None:
            return True
        try:
            me = await asyncio.wait_for(self.api.call("getMe"), _IDENTIFY_TIMEOUT_S)
        except (TelegramApiError, TelegramNetworkError, TimeoutError) as exc:
            log.warning("telegram tenant %s: getMe failed; bot username unknown for now: %s", self.tenant, exc)
            return False
        username = me.get("username") if isinstance(me, Mapping) else None
        if isinstance(username, str) and username:
            self.bot = BotIdentity(id=self.bot.id, username=username)
            log.info("telegram tenant %s: bot @%s", self.tenant, username)
        return self.bot.username is not None

    # inbound

    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        """``POST /t/{tenant}/telegram/webhook``: verify the secret token, ingest, then answer 200."""
        secret = self.config.secret_token
        given = request.headers.get(SECRET_HEADER, "").encode()
        if secret is None or not hmac.compare_digest(given, secret.get_secret_value().encode()):
            return web.Response(status=401, text="invalid secret token")
        try:
            update = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="body is not JSON")
        if not isinstance(update, dict):
            return web.Response(status=400, text="body is not a JSON object")
        if not await self._identify():
            return web.Response(status=503, text="bot identity unknown yet")  # Telegram redelivers
        try:
            await self._ingest(update)
        except PayloadError as exc:
            log.warning("telegram tenant %s: malformed update: %s", self.tenant, exc)
            return web.Response(status=400, text=str(exc))
        except Exception as exc:
            log.error(
                "telegram tenant %s: could not store update %s, Telegram will redeliver it: %s: %s",
                self.tenant,
                update.get("update_id"),
                type(exc).__name__,
                exc,
            )
            return web.Response(status=500, text="try again later")
        return web.json_response({})

    async def _ingest(self, update: Mapping[str, Any]) -> None:
        """Ingest the turn a verified update asks for, if any. Raises if it could not be stored."""
        turn = parse_update(update, tenant=self.tenant, bot=self.bot)
        if turn is not None:
            await self.accept(turn)

    async def _poll(self) -> None:
        timeout = self.config.poll_timeout_s
        try:
            await self.api.call("deleteWebhook")  # getUpdates is refused while a webhook is set
        except (TelegramApiError, TelegramNetworkError) as exc:
            log.warning("telegram tenant %s: deleteWebhook failed: %s", self.tenant, exc)
        offset: int | None = None
        failures = 0
        while True:
            params: dict[str, Any] = {"timeout": timeout, "allowed_updates": _ALLOWED_UPDATES}
            if offset is not None:
                params["offset"] = offset
            try:
                if not await self._identify():
                    raise TelegramNetworkError("getMe failed: without the bot's username mentions go unseen")
                updates = await self.api.call("getUpdates", params, wait_s=timeout)
                for update in updates if isinstance(updates, list) else ():
                    try:
                        await self._ingest(update if isinstance(update, Mapping) else {})
                    except PayloadError as exc:
                        log.warning("telegram tenant %s: skipping a malformed update: %s", self.tenant, exc)
                    if isinstance(update, Mapping) and isinstance(update.get("update_id"), int):
                        offset = max(offset or 0, update["update_id"] + 1)
                failures = 0
                continue
            except (TelegramApiError, TelegramNetworkError) as exc:
                problem = f"getUpdates failed: {exc}"
            except Exception as exc:  # ingest: the offset stays, the update comes again
                problem = f"could not store an update, fetching it again: {type(exc).__name__}: {exc}"
            pause = self.poll_backoff_s[min(failures, len(self.poll_backoff_s) - 1)]
            failures += 1
            log.warning("telegram tenant %s: %s; next poll in %gs", self.tenant, problem, pause)
            await asyncio.sleep(pause)

    # outbound

    def render(self, markdown: str) -> str:
        return to_telegram_html(markdown)

    async def send_part(self, target: TelegramTarget, text: str, *, index: int, outbound: Outbound) -> None:
        await self._send(target, text)

    async def post_placeholder(self, target: TelegramTarget, text: str) -> int | None:
        message = await self._send(target, text)
        message_id = message.get("message_id") if isinstance(message, Mapping) else None
        return message_id if isinstance(message_id, int) else None

    async def edit_placeholder(self, target: TelegramTarget, handle: int, text: str) -> None:
        params = {"chat_id": target.chat_id, "message_id": handle, "text": text, "parse_mode": "HTML"}
        try:
            await self.api.call("editMessageText", params)
        except TelegramApiError as exc:
            if "message is not modified" not in exc.description:
                raise

    async def _send(self, target: TelegramTarget, text: str) -> Any:
        """``sendMessage`` replying to the user's message; the sent Message."""
        params: dict[str, Any] = {
            "chat_id": target.chat_id,
            "text": text,
            "parse_mode": "HTML",
            "reply_parameters": {"message_id": target.message_id, "allow_sending_without_reply": True},
        }
        if target.message_thread_id is not None:
            params["message_thread_id"] = target.message_thread_id
        try:
            return await self.api.call("sendMessage", params)
        except TelegramApiError as exc:
            if not isinstance(exc.migrate_to_chat_id, int):
                raise
            return await self.api.call("sendMessage", {**params, "chat_id": exc.migrate_to_chat_id})  # group upgraded
