"""The personal WeChat adapter against the fake iLink server: answers, replays, -14, delivery errors,
WeChat's sending rules, typing, pictures, and the cursor that only advances past stored messages."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from botframework.errors import MediaError, StorageError
from botframework.media import parse_media_ref
from botframework.states import DeliveryStatus
from botframework.testing import BotHarness, Step, wait_until
from channels.wechat_personal import WeChatPersonalAdapter
from channels.wechat_personal.config import WeChatPersonalChannelConfig
from channels.wechat_personal.crypto import encrypt_media
from channels.wechat_personal.events import parse_message
from storage.tables import DELIVERIES
from tests.channels.wechat_personal.harness import WeChatPersonalHarness, session_of
from tests.fakes.ilink_api import FakeILink
from tests.fakes.runtime import RecordingRuntime

USER = "o9cq8xYz@im.wechat"


@pytest.fixture
async def harness() -> AsyncIterator[WeChatPersonalHarness]:
    h = WeChatPersonalHarness()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def bot(harness: WeChatPersonalHarness, db_url: str) -> AsyncIterator[BotHarness]:
    async with BotHarness(channel="wechat_personal", channel_config=harness.channel_config(), db_url=db_url) as b:
        await harness.connect(b)
        yield b


async def replies(fake: FakeILink, n: int, user: str = USER) -> list[str]:
    async def enough() -> bool:
        return len(fake.texts_to(user)) >= n

    await wait_until(enough, what=f"{n} repl(ies) to {user}")
    return fake.texts_to(user)


async def delivery_rows(bot: BotHarness) -> list[tuple[str, str | None]]:
    async with bot.runtime.db.read() as conn:
        rows = (await conn.execute(select(DELIVERIES.c.status, DELIVERIES.c.last_error))).all()
    return [(str(r.status), r.last_error) for r in rows]


async def test_a_message_is_answered_once_with_its_context_token_and_a_replay_is_not(
    harness: WeChatPersonalHarness, bot: BotHarness
) -> None:
    fake = harness.fake
    message = await fake.push("你好", user=USER)
    assert await replies(fake, 1) == ["echo: 你好"]
    [sent] = fake.sent
    assert sent["context_token"] == message["context_token"]
    assert (sent["message_type"], sent["message_state"], sent["to_user_id"]) == (2, 2, USER)
    assert sent["client_id"].startswith("bf-")
    await fake.replay(message["message_id"])
    await fake.replay(message["message_id"])
    later = await fake.push("second", user=USER)
    assert await replies(fake, 2) == ["echo: 你好", "echo: second"]
    await asyncio.sleep(0.5)
    assert fake.texts_to(USER) == ["echo: 你好", "echo: second"]
    assert [r.messages[-1].text for r in bot.model.requests] == ["你好", "second"]
    assert fake.sent[1]["context_token"] == later["context_token"]


async def test_session_expired_stops_polling_says_so_and_a_new_login_resumes(
    harness: WeChatPersonalHarness, bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = harness.fake
    adapter: WeChatPersonalAdapter = bot.adapter
    caplog.set_level(logging.INFO)
    fake.expire()
    expired_at = adapter.polls

    async def stopped() -> bool:
        return adapter.health().status == "login_required"

    await wait_until(stopped, what="the adapter to notice -14")
    await asyncio.sleep(3.0)
    assert adapter.polls - expired_at <= 2, "kept polling after -14"
    async with aiohttp.ClientSession() as http, http.get(f"{bot.base_url}/healthz") as response:
        body = await response.json()
    assert response.status == 200 and body["status"] == "degraded"
    [channel] = body["channels"]
    assert channel["channel"] == "wechat_personal" and channel["status"] == "login_required"
    assert "botframework login wechat_personal" in channel["detail"] and f"tenant {bot.tenant}" not in channel["detail"]
    [line] = [r.getMessage() for r in caplog.records if "expired" in r.getMessage() and r.levelno >= logging.WARNING]
    assert f"tenant {bot.tenant}" in line and f"--tenant {bot.tenant}" in line
    assert fake.token not in caplog.text
    state = bot.runtime.channel_state(bot.tenant, "wechat_personal")
    assert (await state.get("session"))["expired_at"]

    # The operator logs in again (another process writes the session): polling resumes by itself.
    fake.expired = False
    fake.token = "ilink-bot-token-after-relogin"
    await state.set("session", session_of(fake))
    await fake.push("back?", user=USER)
    assert await replies(fake, 1) == ["echo: back?"]
    assert adapter.health().ok


async def test_ret_not_zero_is_a_final_delivery_error_never_a_silent_success(
    harness: WeChatPersonalHarness, bot: BotHarness
) -> None:
    harness.fake.fail_send(-2)
    await harness.fake.push("hello", user=USER)

    async def recorded() -> bool:
        return any(status == DeliveryStatus.FAILED for status, _ in await delivery_rows(bot))

    await wait_until(recorded, what="the failed delivery")
    [(status, error)] = await delivery_rows(bot)
    assert status == DeliveryStatus.FAILED and error is not None and "ret=-2" in error
    await asyncio.sleep(1.5)
    assert len(harness.fake.calls_to("sendmessage")) == 1 and harness.fake.sent == []


async def test_a_transient_ret_is_retried(harness: WeChatPersonalHarness, bot: BotHarness) -> None:
    harness.fake.fail_send(-1)
    await harness.fake.push("hello", user=USER)
    assert await replies(harness.fake, 1) == ["echo: hello"]
    assert len(harness.fake.calls_to("sendmessage")) == 2


async def test_at_most_ten_bot_messages_per_user_message(harness: WeChatPersonalHarness, bot: BotHarness) -> None:
    paragraphs = [f"Part {n}. " + "word " * 780 for n in range(12)]  # about 3,900 characters each
    bot.model.steps.append(Step(text="\n\n".join(paragraphs)))
    await harness.fake.push("write a book", user=USER)

    async def failed() -> bool:
        return any(status == DeliveryStatus.FAILED for status, _ in await delivery_rows(bot))

    await wait_until(failed, what="the refused 11th part")
    assert len(harness.fake.texts_to(USER)) == 10
    [(_, error)] = await delivery_rows(bot)
    assert error is not None and "10 bot messages per user message" in error
    assert len(harness.fake.calls_to("sendmessage")) == 10


async def test_typing_is_shown_while_the_turn_runs_and_cancelled_with_the_reply(
    harness: WeChatPersonalHarness, db_url: str
) -> None:
    config = {**harness.channel_config(), "typing": True, "typing_interval_s": 0.2}
    async with BotHarness(channel="wechat_personal", channel_config=config, db_url=db_url) as bot:
        await harness.connect(bot)
        bot.model.steps.append(Step(text="thought about it", delay_s=1.0))
        await harness.fake.push("think", user=USER)
        assert await replies(harness.fake, 1) == ["thought about it"]

        async def cancelled() -> bool:
            return bool(harness.fake.typing) and harness.fake.typing[-1]["status"] == 2

        await wait_until(cancelled, what="typing cancelled")
    statuses = [t["status"] for t in harness.fake.typing]
    assert statuses.count(1) >= 2 and statuses[-1] == 2
    assert {t["ilink_user_id"] for t in harness.fake.typing} == {USER}
    assert len(harness.fake.calls_to("getconfig")) == 1


async def test_a_picture_is_downloaded_from_the_cdn_and_decrypted(runtime: RecordingRuntime) -> None:
    async with FakeILink() as fake:
        key = os.urandom(16)
        picture = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
        fake.put_media("img-q-1", encrypt_media(picture, key))
        message = {
            "message_id": 1,
            "from_user_id": USER,
            "message_type": 1,
            "item_list": [
                {"type": 2, "image_item": {"aeskey": key.hex(), "media": {"encrypt_query_param": "img-q-1"}}}
            ],
        }
        turn = parse_message(message, tenant="acme")
        assert turn is not None
        parsed = parse_media_ref(turn.images[0].url)
        assert parsed is not None
        config = WeChatPersonalChannelConfig(api_base_url=fake.base_url, cdn_base_url=fake.cdn_base_url)
        adapter = WeChatPersonalAdapter(tenant="acme", config=config, runtime=runtime)
        try:
            assert await adapter.fetch_media(parsed[1]) == (picture, "image/png")
            # A full_url on another host is not followed: the CDN parameter on cdn_base_url is used instead.
            message["item_list"][0]["image_item"]["media"]["full_url"] = "https://evil.example/x"
            other = parse_message(message, tenant="acme")
            assert other is not None
            ref = parse_media_ref(other.images[0].url)
            assert ref is not None and await adapter.fetch_media(ref[1]) == (picture, "image/png")
            del message["item_list"][0]["image_item"]["media"]["encrypt_query_param"]
            bad = parse_message(message, tenant="acme")
            assert bad is not None
            bad_ref = parse_media_ref(bad.images[0].url)
            assert bad_ref is not None
            with pytest.raises(MediaError):
                await adapter.fetch_media(bad_ref[1])
        finally:
            await adapter.stop()
        assert [c.query["encrypted_query_param"] for c in fake.calls_to("download")] == ["img-q-1", "img-q-1"]


async def test_the_cursor_advances_only_past_stored_messages(runtime: RecordingRuntime) -> None:
    async with FakeILink(hold_s=0.2) as fake:
        config = WeChatPersonalChannelConfig(
            api_base_url=fake.base_url, cdn_base_url=fake.cdn_base_url, session_check_s=0.05, typing=False
        )
        adapter = WeChatPersonalAdapter(tenant="acme", config=config, runtime=runtime)
        adapter.ingest_retry_delays_s = (0.01,)
        adapter.retry_delays_s = (0.05,)
        state = runtime.channel_state("acme", "wechat_personal")
        await state.set("session", session_of(fake))
        runtime.fail_with, runtime.fail_times = StorageError("database is down"), 5
        await fake.push("one", user=USER)
        await fake.push("two", user=USER)
        await adapter.start()
        try:
            await runtime.wait_for_turns(2, within=10)

            async def advanced() -> bool:
                return await state.get("cursor") == "c:2"

            await wait_until(advanced, what="the cursor to advance")
        finally:
            await adapter.stop()
        cursor_writes = [value for key, value in state.writes if key == "cursor"]
        assert cursor_writes == ["c:2"]  # never before both messages were stored
        assert [t.text for t in runtime.accepted] == ["one", "two"]
        polls = [c.body["get_updates_buf"] for c in fake.calls_to("getupdates") if c.body]
        assert polls[:3] == ["", "", ""]  # the failed answers were asked for again from the old cursor


async def test_no_session_means_no_call_to_ilink(runtime: RecordingRuntime) -> None:
    async with FakeILink() as fake:
        config = WeChatPersonalChannelConfig(api_base_url=fake.base_url, session_check_s=0.05)
        adapter = WeChatPersonalAdapter(tenant="acme", config=config, runtime=runtime)
        await adapter.start()
        try:
            await asyncio.sleep(0.5)
            assert adapter.health().status == "login_required"
        finally:
            await adapter.stop()
        assert fake.calls == [] and fake.rejected == []
        started = time.monotonic()
        await adapter.start()
        await adapter.stop()
        assert time.monotonic() - started < 1.0  # start/stop are quick and repeatable
