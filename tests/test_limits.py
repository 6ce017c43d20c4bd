"""Limits and quotas, through the real runtime and server: refused messages are not stored, the
sender is told why, and /metrics counts it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from botframework.config.schema import Config
from botframework.limits import Limits, RateLimiter
from botframework.models.base import ModelRequest, ModelResponse
from botframework.testing import BotHarness, Step, wait_until
from tests.channels.wecom.test_conformance import CORP_ID, WeComHarness
from tests.e2e.support import ChatClient, metric_value
from tests.fakes.wecom_api import text_message


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _bot(db_url: str, **limits: Any) -> BotHarness:
    bot = BotHarness(
        channel="websocket", channel_config={"identity": "none"}, db_url=db_url, tenant_options={"limits": limits}
    )
    bot.runtime.limits.quota_cache_s = 0.0  # read the ledger on every message
    return bot


async def _texts(bot: BotHarness, user: str) -> list[str]:
    return [m["text"] for m in await bot.runtime.transcript(bot.tenant, "websocket", user) if m["role"] == "user"]


def _refusals(bot: BotHarness, kind: str) -> float:
    return metric_value(bot.runtime.metrics.render().decode(), "botframework_limit_refusals_total", limit=kind)


async def test_a_too_long_message_is_refused_unstored_with_a_clear_message(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with _bot(db_url, max_input_chars=50) as bot:
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await client.send("c1", "x" * 51)
        error = await client.wait_for("error", "c1")
        assert error["kind"] == "input_too_long" and "limit is 50" in error["message"]
        await client.send("c2", "short")
        await client.wait_for("done", "c2")
        assert await _texts(bot, "ann") == ["short"]
        assert _refusals(bot, "input_too_long") == 1
        await client.close()


async def test_a_conversation_cannot_queue_more_than_its_limit(db_url: str, http: aiohttp.ClientSession) -> None:
    async with _bot(db_url, max_queued_per_conversation=2) as bot:
        bot.model.steps.append(Step(text="slow", delay_s=2))
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await client.send("c1", "first")
        await client.wait_for("accepted", "c1")
        await client.send("c2", "second")
        await client.wait_for("accepted", "c2")
        await client.send("c3", "third")
        error = await client.wait_for("error", "c3")
        assert error["kind"] == "queue_full"
        await client.wait_for("done", "c1")
        assert "third" not in await _texts(bot, "ann")
        assert _refusals(bot, "queue_full") == 1
        await client.close()


async def test_daily_token_quotas_per_user_and_per_tenant_come_from_the_ledger(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with _bot(db_url, daily_tokens_per_user=1) as bot:
        ann = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await ann.send("c1", "hello")
        await ann.wait_for("done", "c1")  # the ledger now holds ann's tokens
        await ann.send("c2", "again")
        error = await ann.wait_for("error", "c2")
        assert error["kind"] == "quota_exceeded" and "tomorrow" in error["message"]
        bob = await ChatClient.connect(http, bot.base_url, bot.tenant, "bob")
        await bob.send("c1", "hello")
        await bob.wait_for("done", "c1")  # another user still has budget
        assert await _texts(bot, "ann") == ["hello"]
        await ann.close()
        await bob.close()
    async with _bot(db_url, daily_tokens_per_tenant=1) as bot:  # the same ledger: the tenant is spent
        carl = await ChatClient.connect(http, bot.base_url, bot.tenant, "carl")
        await carl.send("c1", "hello")
        assert (await carl.wait_for("error", "c1"))["kind"] == "quota_exceeded"
        assert _refusals(bot, "quota_exceeded") == 1
        await carl.close()


async def test_model_calls_of_a_tenant_never_exceed_its_concurrency(db_url: str, http: aiohttp.ClientSession) -> None:
    async with _bot(db_url, max_concurrent_model_calls=2) as bot:
        running = 0
        peak = 0
        original = bot.model.complete

        async def counted(request: ModelRequest, **kw: Any) -> ModelResponse:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                await asyncio.sleep(0.3)
                return await original(request, **kw)
            finally:
                running -= 1

        bot.model.complete = counted  # type: ignore[method-assign]
        clients = [await ChatClient.connect(http, bot.base_url, bot.tenant, f"u{i}") for i in range(6)]
        for client in clients:
            await client.send("c1", "hi")
        for client in clients:
            await client.wait_for("done", "c1")
            await client.close()
        assert peak == 2
        text = bot.runtime.metrics.render().decode()
        assert metric_value(text, "botframework_limit", limit="max_concurrent_model_calls") == 2


async def test_a_webhook_channel_tells_the_sender_and_acks_without_storing(db_url: str) -> None:
    harness = WeComHarness()
    await harness.start()
    try:
        async with BotHarness(
            channel="wecom",
            channel_config=harness.channel_config(),
            db_url=db_url,
            tenant_options={"limits": {"max_input_chars": 10}},
        ) as bot:
            before = await bot.side_effects()
            for n in range(2):  # twice: the second notice is held back (once a minute per conversation)
                xml = text_message(
                    to_user=CORP_ID, from_user="user-ann", text="far too long a message", msg_id=9000 + n, create_time=1
                )
                query, body = harness.signed(xml, timestamp=str(int(time.time())), nonce=f"q{n}", forged=False)
                assert await harness.post(bot, query, body) == 200

            async def told() -> bool:
                return bool(await harness.replies("ann"))

            await wait_until(told, what="the refusal notice")
            await asyncio.sleep(0.2)
            [notice] = await harness.replies("ann")
            assert "limit is 10" in notice
            assert await bot.side_effects() == before
            assert bot.model.requests == []
    finally:
        await harness.stop()


def test_rate_limiter_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(limit=2, period_s=60, clock=lambda: now[0])
    assert [limiter.allow("a"), limiter.allow("a"), limiter.allow("a"), limiter.allow("b")] == [True, True, False, True]
    now[0] = 59.9
    assert not limiter.allow("a")
    now[0] = 60.0
    assert limiter.allow("a")


def test_limits_are_reported_for_every_tenant() -> None:
    from botframework.metrics import Metrics

    class Store:
        async def open_turns(self, **_: Any) -> int:
            return 0

        async def tokens_today(self, **_: Any) -> int:
            return 0

    config = Config.model_validate(
        {"models": {"m": {"provider": "offline"}}, "tenants": {"a": {"agent": {"model": "m"}}}}
    )
    metrics = Metrics()
    Limits(config=config, store=Store(), metrics=metrics)
    text = metrics.render().decode()
    assert metric_value(text, "botframework_limit", tenant="a", limit="max_input_chars") == 32_000
