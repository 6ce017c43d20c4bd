"""DiscordAdapter: the real discord.py client against a local fake of Discord's REST API and gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord
import pytest

from botframework.channel import EventRef, Outbound
from botframework.errors import DeliveryError, StorageError
from botframework.turn import Reply
from channels.discord import DiscordAdapter
from channels.discord.config import DiscordChannelConfig
from tests.fakes.discord_api import BOT_USER_ID, FakeDiscord
from tests.fakes.runtime import RecordingRuntime

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "discord"
TOKEN = "MTEwMDAwMDAwMDAwMDAwMDA0Mg.fake.token-for-tests"
GUILD = "1100000000000000100"
ALLOWED = "1200000000000000001"
THREAD = "1200000000000000003"
DM = "1200000000000000009"
MESSAGE_CONTENT_INTENT = 1 << 15


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


@pytest.fixture
async def discord_api() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@asynccontextmanager
async def running(
    discord_api: FakeDiscord, runtime: RecordingRuntime, *, allowed: tuple[str, ...] = ()
) -> AsyncIterator[DiscordAdapter]:
    config = DiscordChannelConfig.model_validate(
        {"bot_token": TOKEN, "api_base_url": discord_api.api_base, "allowed_channels": list(allowed)}
    )
    adapter = DiscordAdapter(tenant="acme", config=config, runtime=runtime)
    await adapter.start()
    try:
        await discord_api.current()
        await discord_api.wait_until(lambda: adapter.client.user is not None)
        yield adapter
    finally:
        await adapter.stop()


def outbound(
    text: str, *, channel_id: str = ALLOWED, message_id: str = "1300000000000000101", turn_id: str = "turn-1"
) -> Outbound:
    return Outbound(
        tenant="acme",
        channel="discord",
        turn_id=turn_id,
        conversation_key=channel_id,
        reply=Reply(text=text, model="m"),
        events=[
            EventRef(
                event_id=message_id,
                user_id="1000000000000000001",
                reply_target={"channel_id": channel_id, "message_id": message_id},
            )
        ],
    )


async def test_connects_with_message_content_intent_through_configured_base(
    discord_api: FakeDiscord, runtime: RecordingRuntime
) -> None:
    async with running(discord_api, runtime) as adapter:
        assert str(adapter.client.user.id) == BOT_USER_ID  # type: ignore[union-attr]
    [me] = discord_api.requests_to("GET", "/users/@me")
    assert me.headers["Authorization"] == f"Bot {TOKEN}"
    assert discord_api.requests_to("GET", "/gateway/bot")
    conn = discord_api.connections[0]
    # zlib-stream, or zstd-stream when zstandard is importable: the fake speaks both
    compression = discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
    assert conn.query == {"v": "10", "encoding": "json", "compress": compression}
    [identify] = discord_api.identifies
    assert identify["token"] == TOKEN
    assert identify["intents"] & MESSAGE_CONTENT_INTENT


async def test_mention_becomes_turn_then_reply_references_it(
    discord_api: FakeDiscord, runtime: RecordingRuntime
) -> None:
    async with running(discord_api, runtime, allowed=(ALLOWED,)) as adapter:
        await discord_api.dispatch("MESSAGE_CREATE", fixture("guild_mention"))
        [turn] = await runtime.wait_for_turns(1)
        assert turn.text == "how do I rotate the API keys?"
        assert turn.conversation_key == ALLOWED
        assert dict(turn.reply_target) == {"channel_id": ALLOWED, "message_id": "1300000000000000101"}
        await discord_api.wait_until(lambda: bool(discord_api.requests_to("POST", f"/channels/{ALLOWED}/typing")))

        await adapter.deliver(
            outbound(
                "Use **`rotate-keys`**; @everyone <@1000000000000000001> <@&1600000000000000001>",
                turn_id=runtime.results[0].turn_id,
            )
        )
        [sent] = discord_api.sent_messages
        assert sent.path == f"/channels/{ALLOWED}/messages"
        assert sent.json["content"] == "Use **`rotate-keys`**; @everyone <@1000000000000000001> <@&1600000000000000001>"
        assert sent.json["message_reference"] == {
            "type": 0,
            "message_id": 1300000000000000101,
            "channel_id": int(ALLOWED),
            "fail_if_not_exists": False,
        }
        assert sent.json["allowed_mentions"] == {"parse": [], "replied_user": True}
        assert adapter._typing == {}  # delivering stopped the typing indicator


async def test_long_answer_with_code_blocks_arrives_in_valid_chunks(
    discord_api: FakeDiscord, runtime: RecordingRuntime
) -> None:
    blocks = []
    for b in range(6):
        code = "\n".join(f"    value_{b}_{i} = compute({i})" for i in range(20))
        blocks.append(f"Step {b}: " + "explanation words " * 12 + f"\n\n```python\n{code}\n```")
    answer = "\n\n".join(blocks)
    assert 4500 <= len(answer) <= 6500
    async with running(discord_api, runtime) as adapter:
        await adapter.deliver(outbound(answer))
    sent = discord_api.sent_messages
    assert len(sent) >= 3
    contents = [r.json["content"] for r in sent]
    assert all(len(c) <= 2000 for c in contents)
    for content in contents:
        fences = [line for line in content.split("\n") if line.startswith("```")]
        assert len(fences) % 2 == 0, content
    assert "message_reference" in sent[0].json
    assert all("message_reference" not in r.json for r in sent[1:])
    assert all(r.json["allowed_mentions"] == {"parse": []} for r in sent[1:])
    found = re.findall(r"value_(\d+)_(\d+) =", "\n".join(contents))
    assert [(int(b), int(i)) for b, i in found] == [(b, i) for b in range(6) for i in range(20)]


async def test_ignores_itself_and_other_bots(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    async with running(discord_api, runtime):
        for name in (
            "dm_own_message",
            "guild_own_message",
            "guild_other_bot",
            "guild_webhook",
            "guild_no_mention",
            "dm",
        ):
            await discord_api.dispatch("MESSAGE_CREATE", fixture(name))
        await runtime.wait_for_turns(1)
        await asyncio.sleep(0.05)
    assert [t.event_id for t in runtime.turns] == ["1300000000000000108"]


async def test_reply_to_the_bot_without_ping_is_addressed(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    async with running(discord_api, runtime, allowed=(ALLOWED,)):
        await discord_api.dispatch("MESSAGE_CREATE", fixture("guild_no_mention"))
        await discord_api.dispatch("MESSAGE_CREATE", fixture("reply_to_bot_without_ping"))
        [turn] = await runtime.wait_for_turns(1)
        await asyncio.sleep(0.05)
    assert turn.text == "thanks, and for prod?" and len(runtime.turns) == 1


async def test_direct_messages_work(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    async with running(discord_api, runtime, allowed=(ALLOWED,)) as adapter:
        await discord_api.dispatch("MESSAGE_CREATE", fixture("dm_with_image"))
        [turn] = await runtime.wait_for_turns(1)
        assert turn.conversation_key == f"dm:{DM}"
        assert [i.url for i in turn.images] == [fixture("dm_with_image")["attachments"][0]["url"]]
        await adapter.deliver(outbound("It is a cat.", channel_id=DM, message_id="1300000000000000109"))
    [sent] = discord_api.sent_messages
    assert sent.path == f"/channels/{DM}/messages"
    assert sent.json["message_reference"]["message_id"] == 1300000000000000109


async def test_allowlist_with_threads_looked_up_once(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    discord_api.add_channel(THREAD, guild_id=GUILD, parent_id=ALLOWED)
    discord_api.add_channel("1200000000000000002", guild_id=GUILD)
    async with running(discord_api, runtime, allowed=(ALLOWED,)):
        await discord_api.dispatch("MESSAGE_CREATE", fixture("guild_mention_not_allowed_channel"))
        await discord_api.dispatch("MESSAGE_CREATE", fixture("thread_mention"))
        second = dict(fixture("thread_mention"), id="1300000000000000199")
        await discord_api.dispatch("MESSAGE_CREATE", second)
        turns = await runtime.wait_for_turns(2)
        await asyncio.sleep(0.05)
    assert [t.event_id for t in turns] == ["1300000000000000106", "1300000000000000199"]
    assert all(t.conversation_key == THREAD for t in turns)
    assert len(discord_api.requests_to("GET", f"/channels/{THREAD}")) == 1
    assert len(discord_api.requests_to("GET", "/channels/1200000000000000002")) == 1  # not a thread: refused


@pytest.mark.parametrize("code", [4000, None], ids=["close-frame", "tcp-drop"])
async def test_dropped_gateway_connection_is_resumed(
    discord_api: FakeDiscord, runtime: RecordingRuntime, code: int | None
) -> None:
    async with running(discord_api, runtime):
        await discord_api.dispatch("MESSAGE_CREATE", fixture("dm"))
        await runtime.wait_for_turns(1)
        seq = await discord_api.dispatch("MESSAGE_CREATE", dict(fixture("dm"), id="1300000000000000201"))
        await runtime.wait_for_turns(2)
        await discord_api.drop(code=code)
        await discord_api.wait_until(lambda: len(discord_api.resumes) == 1)
        [resume] = discord_api.resumes
        assert resume == {"seq": seq, "session_id": discord_api.session_id, "token": TOKEN}
        assert len(discord_api.identifies) == 1  # resumed, not re-identified
        await discord_api.dispatch("MESSAGE_CREATE", dict(fixture("dm"), id="1300000000000000202"))
        turns = await runtime.wait_for_turns(3)
    assert [t.event_id for t in turns][-1] == "1300000000000000202"
    assert len(discord_api.connections) == 2


async def test_rejected_message_content_intent_logs_a_clear_hint(
    discord_api: FakeDiscord, runtime: RecordingRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    discord_api.reject_identify = 4014
    config = DiscordChannelConfig.model_validate({"bot_token": TOKEN, "api_base_url": discord_api.api_base})
    adapter = DiscordAdapter(tenant="acme", config=config, runtime=runtime)
    with caplog.at_level(logging.ERROR, logger="channels.discord.adapter"):
        await adapter.start()
        assert adapter._task is not None
        await asyncio.wait_for(asyncio.shield(adapter._task), 5)
    await adapter.stop()
    assert any("4014" in r.getMessage() and "MESSAGE CONTENT INTENT" in r.getMessage() for r in caplog.records)


async def test_duplicate_message_starts_typing_once(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    async with running(discord_api, runtime) as adapter:
        await discord_api.dispatch("MESSAGE_CREATE", fixture("dm"))
        await discord_api.dispatch("MESSAGE_CREATE", fixture("dm"))
        await runtime.wait_for_turns(2)
        assert [r.duplicate for r in runtime.results] == [False, True]
        assert list(adapter._typing) == [runtime.results[0].turn_id]


async def test_typing_stops_by_itself_after_the_cap(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    async with running(discord_api, runtime) as adapter:
        adapter.typing_cap_s = 0.1
        await discord_api.dispatch("MESSAGE_CREATE", fixture("dm"))
        await runtime.wait_for_turns(1)
        await discord_api.wait_until(lambda: not adapter._typing)
        assert len(discord_api.requests_to("POST", f"/channels/{DM}/typing")) == 1


async def test_a_storage_hiccup_is_retried_because_the_gateway_never_redelivers(
    discord_api: FakeDiscord, runtime: RecordingRuntime
) -> None:
    runtime.fail_with = StorageError("database is locked")
    runtime.fail_times = 2
    async with running(discord_api, runtime) as adapter:
        adapter.ingest_retry_delays_s = (0.01, 0.01, 0.01)
        await discord_api.dispatch("MESSAGE_CREATE", fixture("dm"))
        await runtime.wait_for_turns(1)
    assert runtime.fail_times == 0
    assert [t.event_id for t in runtime.turns] == ["1300000000000000108"]


async def test_ingest_failure_is_logged_not_raised(
    discord_api: FakeDiscord, runtime: RecordingRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.fail_with = StorageError("database unreachable")
    async with running(discord_api, runtime) as adapter:
        adapter.ingest_retry_delays_s = (0.01,)
        with caplog.at_level(logging.ERROR, logger="channels.discord.adapter"):
            await discord_api.dispatch("MESSAGE_CREATE", fixture("dm"))
            await discord_api.wait_until(lambda: any("1300000000000000108" in r.getMessage() for r in caplog.records))
        assert adapter._typing == {}


async def test_rate_limit_is_handled_by_discord_py(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    discord_api.fail("POST", f"/channels/{ALLOWED}/messages", 429)
    async with running(discord_api, runtime) as adapter:
        await adapter.deliver(outbound("after a short wait"))
    assert [r.json["content"] for r in discord_api.sent_messages] == ["after a short wait"] * 2


@pytest.mark.parametrize(("status", "code", "retryable"), [(403, 50013, False), (404, 10003, False), (503, 0, True)])
async def test_delivery_errors_are_translated(
    discord_api: FakeDiscord, runtime: RecordingRuntime, status: int, code: int, retryable: bool
) -> None:
    discord_api.fail("POST", f"/channels/{ALLOWED}/messages", status, code=code)
    async with running(discord_api, runtime) as adapter:
        with pytest.raises(DeliveryError) as caught:
            await adapter.deliver(outbound("hello"))
    assert caught.value.retryable is retryable
    assert f"HTTP {status}" in str(caught.value) and ALLOWED in str(caught.value)


async def test_deliver_before_login_is_retryable(runtime: RecordingRuntime) -> None:
    config = DiscordChannelConfig.model_validate({"bot_token": TOKEN, "api_base_url": "http://127.0.0.1:9/api/v10"})
    adapter = DiscordAdapter(tenant="acme", config=config, runtime=runtime)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hello"))
    assert caught.value.retryable is True


async def test_bad_reply_target_is_not_retryable(discord_api: FakeDiscord, runtime: RecordingRuntime) -> None:
    async with running(discord_api, runtime) as adapter:
        bad = Outbound(
            tenant="acme",
            channel="discord",
            turn_id="t",
            conversation_key="x",
            reply=Reply(text="hi"),
            events=[EventRef(event_id="1", user_id="2", reply_target={"channel": "C1"})],
        )
        with pytest.raises(DeliveryError) as caught:
            await adapter.deliver(bad)
    assert caught.value.retryable is False
