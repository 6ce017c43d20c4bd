"""The adapter over HTTP (its routes mounted as the server mounts them) against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from botframework.channel import EventRef, Outbound
from botframework.errors import DeliveryError
from botframework.testing import AdapterClient, long_markdown_reply, serve_adapter, wait_until
from botframework.turn import Reply
from tg_fake_api import BOT_TOKEN, FakeTelegram, group_update, private_update
from tg_runtime import RecordingRuntime

from bf_telegram import TelegramAdapter
from bf_telegram.api import TelegramApiError
from bf_telegram.config import TelegramChannelConfig
from bf_telegram.events import TelegramTarget

SECRET = "s3cr3t-Token_for-acme"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/t/acme/telegram/webhook"


def make_adapter(fake: FakeTelegram, runtime: RecordingRuntime, **options: Any) -> TelegramAdapter:
    config = TelegramChannelConfig.model_validate(
        {"bot_token": BOT_TOKEN, "secret_token": SECRET, "api_base_url": fake.base_url, **options}
    )
    return TelegramAdapter(tenant="acme", config=config, runtime=runtime)


async def post(client: AdapterClient, update: Any, *, secret: str | None = SECRET) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[HEADER] = secret
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    async with client.post(PATH, data=body, headers=headers) as response:
        await response.read()
        return response.status


def outbound(text: str, target: TelegramTarget, *, resume_from: int = 0, turn_id: str = "turn-1") -> Outbound:
    return Outbound(
        tenant="acme",
        channel="telegram",
        turn_id=turn_id,
        conversation_key=str(target.chat_id),
        reply=Reply(text=text),
        events=[EventRef(event_id="1", user_id="5", reply_target=target.model_dump(mode="json"))],
        resume_from=resume_from,
    )


# inbound


async def test_the_webhook_route_is_served_below_the_tenant(fake_telegram: FakeTelegram, runtime: RecordingRuntime):
    adapter = make_adapter(fake_telegram, runtime)
    [route] = adapter.routes()
    assert (route.method, route.path) == ("POST", "telegram/webhook")
    assert make_adapter(fake_telegram, runtime, mode="polling").routes() == ()


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET[:-1], SECRET + "x", "ünïcode"])
async def test_a_missing_or_wrong_secret_token_is_refused_with_no_side_effect(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime, secret: str | None
) -> None:
    async with serve_adapter(make_adapter(fake_telegram, runtime)) as client:
        calls = len(fake_telegram.calls)
        assert await post(client, private_update(1001, chat_id=5, text="let me in"), secret=secret) == 401
        assert await post(client, b"not even json", secret=secret) == 401
    assert runtime.turns == []
    assert len(fake_telegram.calls) == calls


async def test_an_update_is_ingested_before_it_is_acknowledged(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime
) -> None:
    runtime.ingest_delay = 0.3
    async with serve_adapter(make_adapter(fake_telegram, runtime)) as client:
        assert await post(client, private_update(1001, chat_id=5, text="hello")) == 200
        assert runtime.completed == ["1001"]  # already stored when the 200 arrived
    [turn] = runtime.turns
    assert (turn.tenant, turn.channel, turn.event_id, turn.text, turn.conversation_key) == (
        "acme",
        "telegram",
        "1001",
        "hello",
        "5",
    )


async def test_a_redelivered_update_keeps_its_event_id(fake_telegram: FakeTelegram, runtime: RecordingRuntime):
    update = group_update(2001, chat_id=-100777, text="status?")
    async with serve_adapter(make_adapter(fake_telegram, runtime)) as client:
        for _ in range(3):
            assert await post(client, update) == 200
    assert [t.event_id for t in runtime.turns] == ["2001"] * 3
    assert len(runtime.accepted) == 1 and runtime.accepted[0].text == "status?"


async def test_a_failed_ingest_answers_500_so_telegram_redelivers(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.fail_with = ConnectionError("database is down")
    async with serve_adapter(make_adapter(fake_telegram, runtime)) as client:
        assert await post(client, private_update(1001, chat_id=5, text="hello")) == 500
        assert await post(client, private_update(1001, chat_id=5, text="hello")) == 200
    assert [t.event_id for t in runtime.accepted] == ["1001"]
    assert "database is down" in caplog.text and "Traceback" not in caplog.text


async def test_bad_and_ignored_payloads(fake_telegram: FakeTelegram, runtime: RecordingRuntime) -> None:
    edited = {"update_id": 3001, "edited_message": private_update(3001, chat_id=5, text="x")["message"]}
    async with serve_adapter(make_adapter(fake_telegram, runtime)) as client:
        assert await post(client, b"{not json") == 400
        assert await post(client, [1, 2]) == 400
        assert await post(client, {"message": {}}) == 400  # no update_id
        assert await post(client, edited) == 200
        assert (
            await post(
                client,
                group_update(3002, chat_id=-100777, text="x")
                | {"message": {**group_update(3002, chat_id=-100777, text="x")["message"], "entities": []}},
            )
            == 200
        )
    assert runtime.turns == []


async def test_without_the_bot_username_updates_wait_for_getme(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime
) -> None:
    fake_telegram.fail("getMe", 502, "Bad Gateway")
    fake_telegram.fail("getMe", 502, "Bad Gateway")
    async with serve_adapter(make_adapter(fake_telegram, runtime)) as client:  # start(): getMe fails
        update = group_update(4001, chat_id=-100777, text="hi")
        assert await post(client, update) == 503  # getMe fails again: Telegram will retry
        assert runtime.turns == []
        assert await post(client, update) == 200
    assert [t.text for t in runtime.turns] == ["hi"]
    assert len(fake_telegram.of("getMe")) == 3


async def test_start_registers_the_webhook_when_asked(fake_telegram: FakeTelegram, runtime: RecordingRuntime):
    url = "https://bot.example.com/t/acme/telegram/webhook"
    async with serve_adapter(make_adapter(fake_telegram, runtime, webhook_url=url)):
        pass
    assert fake_telegram.of("setWebhook") == [{"url": url, "secret_token": SECRET, "allowed_updates": ["message"]}]
    async with serve_adapter(make_adapter(fake_telegram, runtime)):
        pass
    assert len(fake_telegram.of("setWebhook")) == 1


# outbound


async def test_a_reply_answers_the_users_message_in_html(fake_telegram: FakeTelegram, runtime: RecordingRuntime):
    adapter = make_adapter(fake_telegram, runtime)
    await adapter.deliver(outbound("**Done** <ok> @alice", TelegramTarget(chat_id=-100777, message_id=42)))
    await adapter.deliver(
        outbound("in the topic", TelegramTarget(chat_id=-100555, message_id=57, message_thread_id=42))
    )
    await adapter.stop()
    first, second = fake_telegram.sent
    assert first == {
        "chat_id": -100777,
        "text": "<b>Done</b> &lt;ok&gt; @\u2060alice",
        "parse_mode": "HTML",
        "reply_parameters": {"message_id": 42, "allow_sending_without_reply": True},
    }
    assert second["message_thread_id"] == 42 and second["chat_id"] == -100555


async def test_a_long_reply_goes_out_in_chunks_and_a_retry_resumes(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(fake_telegram, runtime)
    target = TelegramTarget(chat_id=5, message_id=9)
    text = long_markdown_reply(12_000)
    fake_telegram.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    with pytest.raises(DeliveryError) as first_try:
        await adapter.deliver(outbound(text, target))
    assert first_try.value.retryable and first_try.value.delivered_parts == 0
    await adapter.deliver(outbound(text, target))
    parts = [p["text"] for p in fake_telegram.sent]
    assert len(parts) >= 3 and all(len(p) <= 4096 for p in parts)
    fake_telegram.calls.clear()
    await adapter.deliver(outbound(text, target, resume_from=2))
    await adapter.stop()
    assert [p["text"] for p in fake_telegram.sent] == parts[2:]


@pytest.mark.parametrize(
    ("code", "description", "retryable"),
    [
        (429, "Too Many Requests: retry after 5", True),
        (500, "Internal Server Error", True),
        (502, "Bad Gateway", True),
        (400, "Bad Request: chat not found", False),
        (403, "Forbidden: bot was blocked by the user", False),
        (401, "Unauthorized", False),
    ],
)
async def test_bot_api_errors_become_delivery_errors(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime, code: int, description: str, retryable: bool
) -> None:
    adapter = make_adapter(fake_telegram, runtime)
    fake_telegram.fail("sendMessage", code, description)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hi", TelegramTarget(chat_id=5, message_id=9)))
    await adapter.stop()
    assert caught.value.retryable is retryable
    assert f"{code} {description}" in str(caught.value) and "chat_id=5" in str(caught.value)
    assert fake_telegram.sent == []


async def test_an_unreachable_api_is_retryable_and_never_shows_the_token(runtime: RecordingRuntime) -> None:
    async with FakeTelegram() as fake:
        adapter = make_adapter(fake, runtime, request_timeout_s=2)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hi", TelegramTarget(chat_id=5, message_id=9)))
    await adapter.stop()
    assert caught.value.retryable
    assert BOT_TOKEN not in str(caught.value) and BOT_TOKEN.split(":")[1] not in repr(caught.value.__cause__)


async def test_a_group_that_became_a_supergroup_gets_the_reply_there(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(fake_telegram, runtime)
    fake_telegram.fail(
        "sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-100999
    )
    await adapter.deliver(outbound("hi", TelegramTarget(chat_id=-4012, message_id=9)))
    await adapter.stop()
    assert [(p["chat_id"], p["text"]) for p in fake_telegram.sent] == [(-100999, "hi")]


async def test_stop_closes_the_http_session(fake_telegram: FakeTelegram, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake_telegram, runtime)
    await adapter.deliver(outbound("hi", TelegramTarget(chat_id=5, message_id=9)))
    await adapter.stop()
    await asyncio.sleep(0)
    assert adapter.api._session is None


# live updates


async def test_live_updates_post_one_message_edit_it_and_finalize(
    fake_telegram: FakeTelegram, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(fake_telegram, runtime, live_updates=True)
    adapter.live_interval_s = 0.2
    async with serve_adapter(adapter) as client:
        assert await post(client, private_update(8001, chat_id=5, text="hi", message_id=31)) == 200
        assert await post(client, private_update(8001, chat_id=5, text="hi", message_id=31)) == 200
        [(turn_id, sink)] = runtime.sinks  # the redelivery attached nothing
        await sink.delta("Hel")
        [placeholder] = fake_telegram.sent
        assert placeholder["text"].startswith("Hel") and placeholder["reply_parameters"]["message_id"] == 31
        await sink.delta("lo <world>")

        async def edited() -> bool:
            return bool(fake_telegram.of("editMessageText"))

        await wait_until(edited, what="the throttled edit")
        await adapter.deliver(outbound("Hello **<world>**", TelegramTarget(chat_id=5, message_id=31), turn_id=turn_id))
    edits = fake_telegram.of("editMessageText")
    assert edits[0]["text"].startswith("Hello &lt;world&gt;")
    assert edits[-1] == {
        "chat_id": 5,
        "message_id": 100_001,
        "text": "Hello <b>&lt;world&gt;</b>",
        "parse_mode": "HTML",
    }
    assert len(fake_telegram.sent) == 1  # the placeholder became the reply


async def test_an_edit_that_changes_nothing_is_not_an_error(fake_telegram: FakeTelegram, runtime: RecordingRuntime):
    adapter = make_adapter(fake_telegram, runtime, live_updates=True)
    target = TelegramTarget(chat_id=5, message_id=31)
    fake_telegram.fail(
        "editMessageText",
        400,
        "Bad Request: message is not modified: specified new message content "
        "and reply markup are exactly the same as a current content and reply markup of the message",
    )
    await adapter.edit_placeholder(target, 100_001, "same")
    fake_telegram.fail("editMessageText", 400, "Bad Request: message to edit not found")
    with pytest.raises(TelegramApiError):
        await adapter.edit_placeholder(target, 100_001, "gone")
    await adapter.stop()
