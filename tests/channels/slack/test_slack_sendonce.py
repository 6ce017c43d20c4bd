"""Slack: every reply part carries a metadata marker; a part in flight after a crash is looked up first."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from botframework.channel import EventRef, InFlightPart, Outbound
from botframework.errors import DeliveryError
from botframework.turn import Reply
from channels.slack import SlackAdapter
from channels.slack.adapter import MARKER_EVENT_TYPE, carries_marker
from channels.slack.config import SlackChannelConfig
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.slack_api import FakeSlack

CHANNEL = "C0123456789"
DM = "D0123456789"
THREAD = "1731400000.000100"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def make_adapter(slack: FakeSlack, runtime: RecordingRuntime) -> SlackAdapter:
    config = SlackChannelConfig.model_validate(
        {"signing_secret": "s" * 32, "bot_token": "xoxb-1-2-abc", "api_base_url": slack.base_url}
    )
    return SlackAdapter(tenant="acme", config=config, runtime=runtime)


def outbound(text: str, *, channel: str = CHANNEL, thread_ts: str | None = THREAD) -> Outbound:
    return Outbound(
        tenant="acme",
        channel="slack",
        turn_id="turn-1",
        conversation_key=channel,
        reply=Reply(text=text),
        events=[EventRef(event_id="Ev1", user_id="U1", reply_target={"channel": channel, "thread_ts": thread_ts})],
    )


def crashed_at(first: Outbound, index: int) -> Outbound:
    """The same reply as a restart sees it: parts before ``index`` recorded, ``index`` in flight."""
    since = datetime.now(UTC) - timedelta(seconds=2)
    return replace(first, resume_from=index, in_flight=InFlightPart(index=index, since=since))


async def test_every_part_carries_its_own_key_in_metadata(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime)
    reply = outbound("\n\n".join(f"Note {i}: " + "detail " * 60 for i in range(40)))
    await adapter.deliver(reply)
    posted = slack.posted
    assert len(posted) >= 3
    assert [p["metadata"] for p in posted] == [
        {"event_type": MARKER_EVENT_TYPE, "event_payload": {"key": reply.part_key(i)}} for i in range(len(posted))
    ]
    assert len({reply.part_key(i) for i in range(len(posted))}) == len(posted)


@pytest.mark.parametrize(("channel", "thread_ts", "method"), [
    (CHANNEL, THREAD, "conversations.replies"),
    (DM, None, "conversations.history"),
])
async def test_a_part_found_at_slack_is_not_posted_again(
    slack: FakeSlack, runtime: RecordingRuntime, channel: str, thread_ts: str | None, method: str
) -> None:
    adapter = make_adapter(slack, runtime)
    first = outbound("one\n\n" + "x " * 3000 + "\n\n" + "y " * 3000, channel=channel, thread_ts=thread_ts)
    parts = adapter.render_reply(first.reply.text)
    assert len(parts) >= 2
    for index in range(2):  # part 1 reached Slack, then the process died before recording it
        await adapter.send_part(adapter.parse_target(first.primary.reply_target, turn_id="t"), parts[index],
                                index=index, outbound=first)
    await adapter.deliver(crashed_at(first, 1))
    assert [p["text"] for p in slack.posted] == parts, "a part was posted twice or lost"
    [read] = slack.calls_to(method)
    assert read.params["channel"] == channel
    assert str(read.params["include_all_metadata"]).lower() in ("1", "true")
    assert float(read.params["oldest"]) < datetime.now(UTC).timestamp() - 2
    if thread_ts is not None:
        assert read.params["ts"] == thread_ts


async def test_a_part_not_at_slack_is_posted_again(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(slack, runtime)
    first = outbound("one\n\n" + "x " * 3000)
    parts = adapter.render_reply(first.reply.text)
    await adapter.send_part(adapter.parse_target(first.primary.reply_target, turn_id="t"), parts[0],
                            index=0, outbound=first)  # part 1 never arrived
    await adapter.deliver(crashed_at(first, 1))
    assert [p["text"] for p in slack.posted] == parts


async def test_a_failing_check_resends_the_part_with_one_warning(
    slack: FakeSlack, runtime: RecordingRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the history scope the check cannot tell: the part is resent (at most one duplicate)."""
    adapter = make_adapter(slack, runtime)
    first = outbound("short answer")
    slack.fail("conversations.replies", "missing_scope")
    with caplog.at_level(logging.WARNING):
        await adapter.deliver(crashed_at(first, 0))
    assert [p["text"] for p in slack.posted] == ["short answer"]
    [warning] = [r for r in caplog.records if "could not check" in r.getMessage()]
    assert "missing_scope" in warning.getMessage() and warning.exc_info is None


async def test_a_rate_limited_check_sends_nothing_and_is_retried_later(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    """Sending blind would risk the duplicate the check is there to prevent: try the whole part later."""
    adapter = make_adapter(slack, runtime)
    slack.fail("conversations.replies", "ratelimited", retry_after=7)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(crashed_at(outbound("short answer"), 0))
    assert slack.posted == []
    assert caught.value.retryable and caught.value.delivered_parts == 0


async def test_an_html_error_page_is_a_retryable_delivery_error(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    """A proxy's 502 page is not JSON: it used to raise AttributeError out of the error table."""
    adapter = make_adapter(slack, runtime)
    slack.fail("chat.postMessage", "bad_gateway", status=502, html=True)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hello"))
    assert caught.value.retryable and "HTTP 502" in str(caught.value)


def test_the_marker_matches_only_its_own_key() -> None:
    mine = {"metadata": {"event_type": MARKER_EVENT_TYPE, "event_payload": {"key": "k1"}}}
    assert carries_marker(mine, "k1")
    assert not carries_marker(mine, "k2")
    assert not carries_marker({"metadata": {"event_type": "other", "event_payload": {"key": "k1"}}}, "k1")
    assert not carries_marker({"text": "no metadata"}, "k1")
    assert not carries_marker("not a message", "k1")
