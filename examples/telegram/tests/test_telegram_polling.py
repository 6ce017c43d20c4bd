"""Long polling: getUpdates in a loop started by start(), the offset confirming only stored updates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from test_telegram_adapter import make_adapter
from tg_fake_api import FakeTelegram, group_update, private_update
from tg_runtime import RecordingRuntime


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(what)


async def test_polling_ingests_updates_and_confirms_them(fake_telegram: FakeTelegram, runtime: RecordingRuntime):
    adapter = make_adapter(fake_telegram, runtime, mode="polling", secret_token=None, poll_timeout_s=1)
    assert adapter.routes() == ()
    await adapter.start()
    try:
        fake_telegram.push(private_update(5001, chat_id=5, text="one"))
        fake_telegram.push(group_update(5002, chat_id=-100777, text="two"))
        await until(lambda: len(runtime.turns) == 2, "two turns")
        fake_telegram.push(private_update(5003, chat_id=5, text="three"))
        await until(lambda: len(runtime.turns) == 3, "the third turn")
        await until(lambda: fake_telegram.of("getUpdates")[-1].get("offset") == 5004, "the offset past 5003")
    finally:
        await adapter.stop()
    assert [t.text for t in runtime.turns] == ["one", "two", "three"]
    assert fake_telegram.of("deleteWebhook") == [{}]
    polls = fake_telegram.of("getUpdates")
    assert polls[0] == {"timeout": 1, "allowed_updates": ["message"]}
    assert {p.get("offset") for p in polls} <= {None, 5002, 5003, 5004}


async def test_an_update_that_could_not_be_stored_is_fetched_again(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.fail_with = ConnectionError("database is down")
    adapter = make_adapter(fake_telegram, runtime, mode="polling", secret_token=None, poll_timeout_s=1)
    adapter.poll_backoff_s = (0.05,)
    fake_telegram.push(private_update(6001, chat_id=5, text="keep me"))
    await adapter.start()
    try:
        await until(lambda: len(runtime.accepted) == 1, "the update stored on the second try")
    finally:
        await adapter.stop()
    assert [t.text for t in runtime.accepted] == ["keep me"]
    offsets = [p.get("offset") for p in fake_telegram.of("getUpdates")]
    assert offsets[:2] == [None, None]  # not confirmed until stored
    assert "database is down" in caplog.text and "Traceback" not in caplog.text


async def test_polling_survives_api_errors(fake_telegram: FakeTelegram, runtime: RecordingRuntime, caplog):
    adapter = make_adapter(fake_telegram, runtime, mode="polling", secret_token=None, poll_timeout_s=1)
    adapter.poll_backoff_s = (0.05,)
    fake_telegram.fail("getUpdates", 409, "Conflict: terminated by other getUpdates request")
    fake_telegram.fail("getUpdates", 502, "Bad Gateway")
    fake_telegram.push(private_update(7001, chat_id=5, text="after the errors"))
    await adapter.start()
    try:
        await until(lambda: len(runtime.turns) == 1, "the update after two failed polls")
    finally:
        await adapter.stop()
    assert "409 Conflict: terminated by other getUpdates request" in caplog.text
    assert len(fake_telegram.of("getUpdates")) >= 3
