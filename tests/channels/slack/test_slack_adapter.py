"""SlackAdapter against a local fake Slack Web API, with real signatures and a recording runtime."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from markdown_it import MarkdownIt

from botframework.channel import EventRef, Outbound
from botframework.errors import DeliveryError, StorageError
from botframework.testing import serve_adapter as serve
from botframework.testing import wait_until
from botframework.turn import Reply
from channels.slack import SlackAdapter
from channels.slack.config import SlackChannelConfig
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack, signed_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "slack"
CHANNEL = "C0123456789"
THREAD = "1731400000.000100"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def make_adapter(slack: FakeSlack, runtime: RecordingRuntime, **overrides: Any) -> SlackAdapter:
    config = SlackChannelConfig.model_validate(
        {"signing_secret": SECRET, "bot_token": BOT_TOKEN, "api_base_url": slack.base_url, **overrides}
    )
    return SlackAdapter(tenant="acme", config=config, runtime=runtime)


async def post_event(
    client: TestClient[web.Request, web.Application], body: str, **sign: Any
) -> ClientResponse:
    headers = signed_headers(SECRET, body, **sign)
    return await client.post("/t/acme/slack/events", data=body.encode(), headers=headers)


def outbound(text: str, *, turn_id: str = "turn-1", thread_ts: str | None = THREAD) -> Outbound:
    return Outbound(
        tenant="acme",
        channel="slack",
        turn_id=turn_id,
        conversation_key=f"{CHANNEL}:{THREAD}",
        reply=Reply(text=text, model="m"),
        events=[
            EventRef(
                event_id="Ev1", user_id="U024BE7LH", reply_target={"channel": CHANNEL, "thread_ts": thread_ts}
            )
        ],
    )


# inbound


async def test_start_learns_bot_user_through_configured_base_url(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(slack, runtime)
    await adapter.start()
    [call] = slack.calls_to("auth.test")
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert adapter.bot_user_id == BOT_USER_ID
    await adapter.stop()


async def test_construction_makes_no_api_call(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    make_adapter(slack, runtime)
    await asyncio.sleep(0)
    assert slack.calls == []


async def test_url_verification_is_answered(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    async with serve(make_adapter(slack, runtime)) as client:
        response = await post_event(client, fixture("url_verification"))
        assert response.status == 200
        assert (await response.json())["challenge"] == json.loads(fixture("url_verification"))["challenge"]
    assert runtime.turns == []


async def test_mention_is_ingested_before_ack_and_ack_does_not_wait_for_model(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    async with serve(make_adapter(slack, runtime)) as client:
        response = await post_event(client, fixture("app_mention"))
        assert response.status == 200
        # persisted before acknowledged...
        [turn] = runtime.turns
        assert turn.event_id == "Ev08MENTION1"
        assert turn.conversation_key == f"{CHANNEL}:{THREAD}"
        assert turn.text == "what is the status of <deploy> & rollback?"
        assert dict(turn.reply_target) == {"channel": CHANNEL, "thread_ts": THREAD}
        # ...and the ack went out while the "model" (which never finishes) is still running.
        [model] = runtime.model_tasks
        assert not model.done()
    assert slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=abc"},
    ],
    ids=["missing", "wrong", "garbage"],
)
async def test_unsigned_or_badly_signed_request_is_rejected(
    slack: FakeSlack, runtime: RecordingRuntime, headers: dict[str, str]
) -> None:
    async with serve(make_adapter(slack, runtime)) as client:
        response = await client.post(
            "/t/acme/slack/events", data=fixture("app_mention").encode(), headers=headers
        )
        assert response.status == 401
    assert runtime.turns == [] and runtime.membership_checks == []


async def test_stale_and_tampered_requests_are_rejected(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    body = fixture("app_mention")
    async with serve(make_adapter(slack, runtime)) as client:
        stale = await post_event(client, body, timestamp=int(time.time()) - 301)
        assert stale.status == 401
        future = await post_event(client, body, timestamp=int(time.time()) + 301)
        assert future.status == 401
        headers = signed_headers(SECRET, body)
        tampered = await client.post(
            "/t/acme/slack/events", data=body.replace("rollback", "drop tables").encode(), headers=headers
        )
        assert tampered.status == 401
        other_secret = await client.post(
            "/t/acme/slack/events", data=body.encode(), headers=signed_headers("another-secret", body)
        )
        assert other_secret.status == 401
        fresh = await post_event(client, body, timestamp=int(time.time()) - 240)
        assert fresh.status == 200
    assert [t.event_id for t in runtime.turns] == ["Ev08MENTION1"]


async def test_retried_event_reaches_runtime_with_same_event_id(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    body = fixture("app_mention")
    async with serve(make_adapter(slack, runtime)) as client:
        first = await post_event(client, body)
        retry = await post_event(client, body, retry_num=1)
        assert (first.status, retry.status) == (200, 200)
    assert [t.event_id for t in runtime.turns] == ["Ev08MENTION1", "Ev08MENTION1"]
    assert [r.duplicate for r in runtime.results] == [False, True]
    assert len(runtime.model_tasks) == 1


async def test_storage_failure_answers_503_so_slack_retries(
    slack: FakeSlack, runtime: RecordingRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.fail_with = StorageError("database is locked")
    async with serve(make_adapter(slack, runtime)) as client:
        response = await post_event(client, fixture("app_mention"))
        assert response.status == 503
        assert "X-Slack-No-Retry" not in response.headers
    assert not [r for r in caplog.records if r.exc_info], "a storage outage is one log line, not a traceback"


async def test_slow_ingest_still_completes_before_the_ack(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    runtime.ingest_delay = 0.2
    async with serve(make_adapter(slack, runtime)) as client:
        started = time.monotonic()
        response = await post_event(client, fixture("message_im"))
        assert response.status == 200
        assert time.monotonic() - started >= 0.2
        assert [t.event_id for t in runtime.turns] == ["Ev08DM000001"]


async def test_thread_reply_needs_the_bot_in_the_thread(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    async with serve(make_adapter(slack, runtime)) as client:
        response = await post_event(client, fixture("message_thread_reply"))
        assert response.status == 200
        assert runtime.turns == []
        assert runtime.membership_checks == [("acme", "slack", f"{CHANNEL}:{THREAD}")]

        runtime.join_conversation("acme", "slack", f"{CHANNEL}:{THREAD}")
        response = await post_event(client, fixture("message_thread_reply"))
        assert response.status == 200
        assert [t.text for t in runtime.turns] == ["can you also check staging?"]


async def test_mention_and_its_message_twin_give_one_turn(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    runtime.join_conversation("acme", "slack", f"{CHANNEL}:{THREAD}")
    async with serve(make_adapter(slack, runtime)) as client:
        for name in (
            "app_mention_in_thread",
            "message_thread_reply_mentioning_bot",
            "message_channel_mentioning_bot",
        ):
            assert (await post_event(client, fixture(name))).status == 200
    assert [t.event_id for t in runtime.turns] == ["Ev08MENTION2"]


@pytest.mark.parametrize(
    "name", ["message_bot_own", "message_im_own", "message_other_bot", "message_changed", "message_deleted"]
)
async def test_ignored_events_are_acknowledged_without_ingest(
    slack: FakeSlack, runtime: RecordingRuntime, name: str
) -> None:
    runtime.join_conversation("acme", "slack", f"{CHANNEL}:{THREAD}")
    async with serve(make_adapter(slack, runtime)) as client:
        response = await post_event(client, fixture(name))
        assert response.status == 200
    assert runtime.turns == []


async def test_bot_identity_from_envelope_when_auth_test_failed(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    slack.fail("auth.test", "invalid_auth")
    adapter = make_adapter(slack, runtime)
    async with serve(adapter) as client:
        before = adapter.bot_user_id
        assert before is None
        assert (await post_event(client, fixture("message_im_own"))).status == 200
        assert (await post_event(client, fixture("message_im"))).status == 200
    assert adapter.bot_user_id == BOT_USER_ID
    assert [t.event_id for t in runtime.turns] == ["Ev08DM000001"]


async def test_socket_mode_has_no_route(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime, mode="socket", app_token="xapp-1-A0APPID123-1-abc")
    assert adapter.routes() == ()


# outbound


async def test_deliver_posts_mrkdwn_in_the_thread(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime)
    await adapter.deliver(outbound("## Result\n\n**Done**: see [the log](https://ci.test/run?id=1&x=2)."))
    [call] = slack.calls_to("chat.postMessage")
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert call.params["channel"] == CHANNEL
    assert call.params["thread_ts"] == THREAD
    assert call.params["text"] == "*Result*\n\n*Done*: see <https://ci.test/run?id=1&amp;x=2|the log>."
    assert call.params["link_names"] in (False, 0, "0", "false")


async def test_model_text_cannot_ping_the_channel(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime)
    await adapter.deliver(outbound("<!channel> ping <@U024BE7LH> and <!here>"))
    text = slack.posted[0]["text"]
    assert "<!" not in text and "<@" not in text
    assert text == "&lt;!channel&gt; ping &lt;@U024BE7LH&gt; and &lt;!here&gt;"


async def test_long_reply_is_chunked_in_order_with_balanced_fences(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    code = "\n".join(f"result_{i} = transform(rows[{i}])  # keep <order> & types" for i in range(150))
    answer = (
        "Intro.\n\n```python\n"
        + code
        + "\n```\n\n"
        + "\n\n".join(f"Note {i}: " + "detail " * 40 for i in range(20))
    )
    adapter = make_adapter(slack, runtime)
    await adapter.deliver(outbound(answer))
    posted = slack.posted
    assert len(posted) >= 3
    assert all(p["thread_ts"] == THREAD and p["channel"] == CHANNEL for p in posted)
    assert all(len(p["text"]) <= 3900 for p in posted)
    for p in posted:
        assert sum(1 for line in p["text"].split("\n") if line.startswith("```")) % 2 == 0
    joined = "\n".join(p["text"] for p in posted)
    assert [int(n) for n in __import__("re").findall(r"result_(\d+) =", joined)] == list(range(150))
    assert "&lt;order&gt; &amp; types" in joined
    parser = MarkdownIt("commonmark")
    assert all(t.type != "fence" or t.map is not None for p in posted for t in parser.parse(p["text"]))


async def test_empty_reply_still_posts_something(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    await make_adapter(slack, runtime).deliver(outbound("   "))
    assert [p["text"] for p in slack.posted] == ["(empty reply)"]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ("ratelimited", True),
        ("internal_error", True),
        ("channel_not_found", False),
        ("not_in_channel", False),
    ],
)
async def test_delivery_errors_are_translated(
    slack: FakeSlack, runtime: RecordingRuntime, error: str, retryable: bool
) -> None:
    slack.fail("chat.postMessage", error)
    with pytest.raises(DeliveryError) as caught:
        await make_adapter(slack, runtime).deliver(outbound("hello"))
    assert caught.value.retryable is retryable
    assert error in str(caught.value) and CHANNEL in str(caught.value)


async def test_unreachable_api_is_a_retryable_delivery_error(runtime: RecordingRuntime) -> None:
    config = SlackChannelConfig.model_validate(
        {"signing_secret": SECRET, "bot_token": BOT_TOKEN, "api_base_url": "http://127.0.0.1:9/api/"}
    )
    adapter = SlackAdapter(tenant="acme", config=config, runtime=runtime)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hello"))
    assert caught.value.retryable is True


# live updates


def _updated(slack: FakeSlack) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(slack.calls_to("chat.update"))

    return check


async def test_live_updates_post_one_placeholder_throttle_edits_and_finalize(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True, update_interval_s=0.2)
    async with serve(adapter) as client:
        assert (await post_event(client, fixture("app_mention"))).status == 200
        [attached] = runtime.sinks
        turn_id = runtime.results[0].turn_id
        assert (attached.tenant, attached.channel, attached.turn_id) == ("acme", "slack", turn_id)
        sink = attached.sink

        await sink.delta("Hel")
        [placeholder] = slack.posted
        assert placeholder["thread_ts"] == THREAD and placeholder["text"].startswith("Hel")
        for piece in ["lo", ", ", "wor", "ld"]:
            await sink.delta(piece)
        assert slack.calls_to("chat.update") == []  # throttled: nothing before the interval
        await wait_until(_updated(slack), what="the throttled chat.update")
        await asyncio.sleep(0.25)  # a second interval passes: no further edit without new text
        updates = slack.calls_to("chat.update")
        assert len(updates) == 1 and updates[0].params["text"].startswith("Hello, world")

        await adapter.deliver(outbound("Hello, **world**!", turn_id=turn_id))
        final = slack.calls_to("chat.update")[-1].params
        assert final["ts"] == "1731500000.000001" and final["text"] == "Hello, *world*!"
        assert len(slack.posted) == 1  # still exactly one message in the thread
        await sink.delta(" late")  # after deliver, the sink is finished: no more edits
        await asyncio.sleep(0.25)
        assert len(slack.calls_to("chat.update")) == 2


async def test_live_reset_shows_the_restarted_answer(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True, update_interval_s=0.2)
    async with serve(adapter) as client:
        await post_event(client, fixture("app_mention"))
        sink = runtime.sinks[0].sink
        await sink.delta("First attempt")
        await sink.reset()
        await sink.delta("Second")
        await wait_until(_updated(slack), what="the throttled chat.update")
        [update] = slack.calls_to("chat.update")
        assert update.params["text"].startswith("Second") and "First" not in update.params["text"]


async def test_live_reply_longer_than_a_message_finalizes_first_chunk_and_posts_rest(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True, update_interval_s=0.2)
    async with serve(adapter) as client:
        await post_event(client, fixture("message_im"))
        [attached] = runtime.sinks
        await attached.sink.delta("Starting")
        answer = "\n\n".join(f"Paragraph {i}. " + "words " * 60 for i in range(30))
        await adapter.deliver(outbound(answer, turn_id=attached.turn_id, thread_ts="1731400200.000300"))
    [final] = slack.calls_to("chat.update")
    assert final.params["text"].startswith("Paragraph 0.")
    rest = slack.posted[1:]
    assert len(rest) >= 2 and all(len(p["text"]) <= 3900 for p in rest)
    assert all(p["thread_ts"] == "1731400200.000300" for p in slack.posted)


async def test_duplicate_event_attaches_no_second_sink(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True)
    async with serve(adapter) as client:
        await post_event(client, fixture("app_mention"))
        await post_event(client, fixture("app_mention"), retry_num=1)
    assert len(runtime.sinks) == 1


async def test_failed_placeholder_falls_back_to_a_normal_post(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True)
    async with serve(adapter) as client:
        await post_event(client, fixture("app_mention"))
        slack.fail("chat.postMessage", "ratelimited")
        [attached] = runtime.sinks
        await attached.sink.delta("partial")  # fails quietly
        await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))
    assert [c.params["text"] for c in slack.calls_to("chat.postMessage")] == ["partial …", "final answer"]
    assert slack.calls_to("chat.update") == []


async def test_deleted_placeholder_falls_back_to_posting(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True)
    async with serve(adapter) as client:
        await post_event(client, fixture("app_mention"))
        [attached] = runtime.sinks
        await attached.sink.delta("partial")
        slack.fail("chat.update", "message_not_found")
        await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))
    assert [p["text"] for p in slack.posted] == ["partial …", "final answer"]


async def test_rate_limited_finalize_is_retried_on_the_same_placeholder(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(slack, runtime, live_updates=True)
    async with serve(adapter) as client:
        await post_event(client, fixture("app_mention"))
        [attached] = runtime.sinks
        await attached.sink.delta("partial")
        slack.fail("chat.update", "ratelimited")
        with pytest.raises(DeliveryError) as caught:
            await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))
        assert caught.value.retryable
        await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))  # the core's retry
    updates = slack.calls_to("chat.update")
    assert [(u.params["ts"], u.params["text"]) for u in updates][-1] == ("1731500000.000001", "final answer")
    assert len(slack.posted) == 1


# socket mode


async def test_socket_mode_receives_events_and_acks_after_ingest(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    app_token = "xapp-1-A0APPID123-1-abcdef"
    adapter = make_adapter(slack, runtime, mode="socket", app_token=app_token)
    await adapter.start()
    try:
        await slack.wait_socket_connected()
        [opened] = slack.calls_to("apps.connections.open")
        assert opened.headers["Authorization"] == f"Bearer {app_token}"
        envelope = await slack.send_socket_event(json.loads(fixture("message_im")))
        await slack.wait_ack(envelope)
        assert [t.event_id for t in runtime.turns] == ["Ev08DM000001"]
    finally:
        await adapter.stop()
