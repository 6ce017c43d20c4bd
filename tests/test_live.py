"""The shared live reply (botframework.live) with fake vendor calls that record what they were asked."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from botframework.errors import DeliveryError
from botframework.live import LiveReplies, ThrottledLiveReply
from botframework.testing import wait_until
from botframework.turn import ReplySink

SMALL = 0.05
"""A small interval: throttled edits arrive quickly, and tests wait for them with wait_until."""
LONG = 30.0
"""An interval no test waits out: an edit scheduled with it is still pending when the test looks."""


@dataclass
class FakeChannel:
    """Records posts and edits; ``post_fails`` / ``edit_fails`` make the next call raise."""

    posts: list[str] = field(default_factory=list)
    edits: list[tuple[str, str, float]] = field(default_factory=list)
    post_fails: BaseException | None = None
    edit_fails: BaseException | None = None
    post_handle: str | None = "msg-1"
    hold_post: asyncio.Event | None = None
    hold_edit: asyncio.Event | None = None
    edit_cancelled: bool = False

    async def post(self, text: str) -> str | None:
        self.posts.append(text)
        if self.hold_post is not None:
            await self.hold_post.wait()
        if self.post_fails is not None:
            raise self.post_fails
        return self.post_handle

    async def edit(self, handle: str, text: str) -> None:
        self.edits.append((handle, text, time.monotonic()))
        if self.hold_edit is not None:
            try:
                await self.hold_edit.wait()
            except asyncio.CancelledError:
                self.edit_cancelled = True
                raise
        if self.edit_fails is not None:
            failure, self.edit_fails = self.edit_fails, None
            raise failure

    def preview(self, text: str) -> str:
        return f"{text} …"

    def live(self, interval: float = SMALL) -> ThrottledLiveReply[str]:
        return ThrottledLiveReply(
            post=self.post, edit=self.edit, preview=self.preview, interval=interval, label="test live reply"
        )


def edits_reach(channel: FakeChannel, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(channel.edits) >= n

    return check


def test_it_is_a_reply_sink() -> None:
    sink: ReplySink = FakeChannel().live()
    assert hasattr(sink, "finish")


async def test_first_delta_posts_one_placeholder_then_edits_are_throttled_to_the_newest_text() -> None:
    channel = FakeChannel()
    live = channel.live(interval=0.2)
    await live.delta("Hel")
    assert channel.posts == ["Hel …"] and live.handle == "msg-1"
    for piece in ["lo", ", ", "wor", "ld"]:
        await live.delta(piece)
    assert len(channel.posts) == 1  # one placeholder, however many deltas
    await wait_until(edits_reach(channel, 1), what="the throttled edit")
    assert channel.edits[0][:2] == ("msg-1", "Hello, world …")
    assert len(channel.edits) == 1  # five deltas, one edit

    await live.delta("!")
    await wait_until(edits_reach(channel, 2), what="the second throttled edit")
    assert channel.edits[1][:2] == ("msg-1", "Hello, world! …")
    assert channel.edits[1][2] - channel.edits[0][2] >= 0.2 * 0.9  # at most one edit per interval

    assert await live.finish() == "msg-1"


async def test_an_unchanged_preview_is_not_sent_again() -> None:
    channel = FakeChannel()
    previews: list[str] = []

    def head(text: str) -> str:
        previews.append(text)
        return text[:3]

    live = ThrottledLiveReply(post=channel.post, edit=channel.edit, preview=head, interval=SMALL)
    await live.delta("Hel")
    await live.delta("lo")

    async def compared() -> bool:  # the throttled update rendered the new text (and compared it at once)
        return previews == ["Hel", "Hello"]

    await wait_until(compared, what="the throttled update to run")
    assert channel.edits == []


async def test_reset_discards_the_streamed_text() -> None:
    channel = FakeChannel()
    live = channel.live()
    await live.delta("First attempt")
    await live.reset()
    await live.delta("Second")
    await wait_until(edits_reach(channel, 1), what="the edit after the reset")
    assert channel.edits[-1][1] == "Second …"
    assert all("First" not in text for _, text, _ in channel.edits)


async def test_a_notice_posts_the_placeholder_and_the_next_delta_replaces_it() -> None:
    channel = FakeChannel()
    live = channel.live()
    await live.notice("retrying…")
    assert channel.posts == ["retrying… …"], "the user sees the retry instead of silence"
    await live.delta("The answer")
    await wait_until(edits_reach(channel, 1), what="the edit after the notice")
    assert channel.edits[-1][1] == "The answer …"


async def test_a_notice_after_text_is_shown_below_it_until_the_next_delta() -> None:
    channel = FakeChannel()
    live = channel.live()
    await live.delta("Partial")
    await live.reset()
    await live.notice("retrying…")
    await wait_until(edits_reach(channel, 1), what="the edit with the notice")
    assert channel.edits[-1][1] == "retrying… …"
    await live.delta("Fresh")
    await wait_until(edits_reach(channel, 2), what="the edit after the notice")
    assert channel.edits[-1][1] == "Fresh …"
    await live.finish()
    await live.notice("too late")
    assert len(channel.posts) == 1 and all("too late" not in e[1] for e in channel.edits)


async def test_a_failed_placeholder_closes_the_sink_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    failure = DeliveryError("chat.postMessage to channel C1 failed: ratelimited", retryable=True)
    channel = FakeChannel(post_fails=failure)
    live = channel.live()
    with caplog.at_level(logging.WARNING, logger="botframework.live"):
        await live.delta("partial")  # not raised
    assert live.closed
    assert "test live reply placeholder failed: chat.postMessage to channel C1 failed: ratelimited" in caplog.text
    await live.delta(" more")
    await live.reset()
    assert channel.posts == ["partial …"] and channel.edits == []
    assert await live.finish() is None


async def test_a_placeholder_without_a_handle_closes_the_sink(caplog: pytest.LogCaptureFixture) -> None:
    channel = FakeChannel(post_handle=None)
    live = channel.live()
    with caplog.at_level(logging.WARNING, logger="botframework.live"):
        await live.delta("partial")
    assert live.closed and "no message handle" in caplog.text
    await live.delta(" more")
    assert len(channel.posts) == 1
    assert await live.finish() is None


async def test_a_failed_edit_is_logged_and_the_next_one_carries_the_newest_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = FakeChannel(edit_fails=DeliveryError("chat.update to channel C1 failed: ratelimited", retryable=True))
    live = channel.live()
    await live.delta("a")
    with caplog.at_level(logging.WARNING, logger="botframework.live"):
        await live.delta("b")
        await wait_until(edits_reach(channel, 1), what="the failing edit")
        await wait_until(lambda: _logged(caplog, "update failed"), what="the failure to be logged")
    assert "test live reply update failed: chat.update to channel C1 failed" in caplog.text
    assert not live.closed  # an edit failure does not stop live updates
    await live.delta("c")
    await wait_until(edits_reach(channel, 2), what="the next edit")
    assert channel.edits[-1][1] == "abc …"


async def test_an_unexpected_error_is_logged_with_its_traceback_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    channel = FakeChannel(edit_fails=RuntimeError("sdk bug"))
    live = channel.live()
    await live.delta("a")
    with caplog.at_level(logging.WARNING, logger="botframework.live"):
        await live.delta("b")
        await wait_until(lambda: _logged(caplog, "failed unexpectedly"), what="the failure to be logged")
    [record] = [r for r in caplog.records if "unexpectedly" in r.getMessage()]
    assert "RuntimeError: sdk bug" in record.getMessage() and record.exc_info is not None


async def test_finish_cancels_a_pending_edit_and_stops_all_further_calls() -> None:
    channel = FakeChannel()
    live = channel.live(interval=LONG)
    await live.delta("Hello")
    await live.delta(", world")  # schedules an edit LONG seconds away
    assert await asyncio.wait_for(live.finish(), 10) == "msg-1"  # does not wait the interval out
    await live.delta(" late")
    await live.reset()
    assert live.closed and channel.edits == [] and len(channel.posts) == 1
    assert await live.finish() == "msg-1"  # idempotent: a retried deliver finds the same placeholder


async def test_finish_cancels_an_edit_in_flight() -> None:
    channel = FakeChannel(hold_edit=asyncio.Event())
    live = channel.live()
    await live.delta("a")
    await live.delta("b")
    await wait_until(edits_reach(channel, 1), what="the edit to start")
    assert await asyncio.wait_for(live.finish(), 10) == "msg-1"
    assert channel.edit_cancelled


async def test_finish_waits_for_a_placeholder_being_posted() -> None:
    release = asyncio.Event()
    channel = FakeChannel(hold_post=release)
    live = channel.live()
    posting = asyncio.create_task(live.delta("Hi"))

    async def post_started() -> bool:
        return bool(channel.posts)

    await wait_until(post_started, what="the placeholder post to start")
    finishing = asyncio.create_task(live.finish())
    await asyncio.sleep(0)
    assert not finishing.done()  # the handle is not known yet
    release.set()
    assert await asyncio.wait_for(finishing, 10) == "msg-1"
    await posting


async def test_live_replies_keep_by_turn_and_evict_the_oldest() -> None:
    channels = [FakeChannel() for _ in range(3)]
    replies = LiveReplies[str](limit=2)
    lives = [c.live(interval=LONG) for c in channels]
    for i, live in enumerate(lives):
        await live.delta(f"turn {i}")
        replies.add(f"turn-{i}", live)
    assert len(replies) == 2

    async def evicted() -> bool:
        return lives[0].closed

    await wait_until(evicted, what="the evicted live reply to be finished")
    assert replies.pop("turn-0") is None
    assert replies.pop("turn-1") is lives[1]
    await replies.close()
    assert lives[2].closed and len(replies) == 0


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text
