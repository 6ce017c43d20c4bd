"""Held replies (botframework.held_replies) through the real runtime, with an adapter that holds them.

The core records such a reply and never delivers it; the adapter waits for it, reads it and claims
parts of it, atomically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from botframework.channel import ChannelAdapter, Outbound, ReplyClaim
from botframework.config.schema import Config
from botframework.config.types import StrictModel
from botframework.messages import ToolCall
from botframework.plugins import CHANNELS
from botframework.runtime import Runtime
from botframework.testing import ScriptedModel, Step, wait_until
from botframework.turn import Turn

CHANNEL = "holdtest"


class HoldingConfig(StrictModel):
    hold: bool = True
    """Hold replies (True) or let the core deliver them."""


class HoldingAdapter(ChannelAdapter[HoldingConfig]):
    name = CHANNEL
    config_model = HoldingConfig
    delivered: ClassVar[list[Outbound]] = []

    @property
    def holds_replies(self) -> bool:
        return self.config.hold

    async def deliver(self, outbound: Outbound) -> None:
        HoldingAdapter.delivered.append(outbound)


@pytest.fixture(autouse=True)
def holding_channel() -> Iterator[None]:
    HoldingAdapter.delivered = []
    with CHANNELS.registered(CHANNEL, HoldingAdapter):
        yield


def make_runtime(db_url: str, *, hold: bool = True) -> tuple[Runtime, ScriptedModel]:
    config = Config.model_validate(
        {
            "storage": {"url": db_url},
            "models": {"main": {"provider": "offline", "model": "scripted", "context_window": 8192}},
            "tenants": {
                "acme": {
                    "agent": {"model": "main", "tools": ["clock"]},
                    "channels": {CHANNEL: {"hold": hold}},
                }
            },
        }
    )
    model = ScriptedModel(name="main", config=config.models["main"])
    return Runtime(config=config, clients={"main": model}), model


@pytest.fixture
async def rt(db_url: str) -> AsyncIterator[tuple[Runtime, ScriptedModel]]:
    runtime, model = make_runtime(db_url)
    await runtime.start()
    try:
        yield runtime, model
    finally:
        await runtime.stop()


def turn(event_id: str, text: str, user: str = "u1") -> Turn:
    return Turn(tenant="acme", channel=CHANNEL, event_id=event_id, conversation_key=user, user_id=user, text=text)


async def test_a_held_reply_is_recorded_not_delivered_and_wakes_the_waiter(
    rt: tuple[Runtime, ScriptedModel],
) -> None:
    runtime, model = rt
    model.steps.append(Step(text="the answer", delay_s=0.3))
    await runtime.ingest(turn("m1", "question"))
    started = time.monotonic()
    assert await runtime.wait_reply("acme", CHANNEL, "m1", timeout=5.0)
    assert time.monotonic() - started < 1.5  # woken when recorded, not at the timeout
    [held] = await runtime.held_replies("acme", CHANNEL, "u1")
    assert held.reply.text == "the answer" and held.resume_from == 0
    assert [e.event_id for e in held.events] == ["m1"]
    await asyncio.sleep(0.2)
    assert HoldingAdapter.delivered == []


async def test_waiting_gives_up_at_the_timeout(rt: tuple[Runtime, ScriptedModel]) -> None:
    runtime, model = rt
    model.steps.append(Step(text="slow", delay_s=3.0))
    await runtime.ingest(turn("m1", "question"))
    started = time.monotonic()
    assert not await runtime.wait_reply("acme", CHANNEL, "m1", timeout=0.4)
    assert 0.35 < time.monotonic() - started < 1.5
    assert not await runtime.wait_reply("acme", CHANNEL, "unknown-event", timeout=0.1)
    assert await runtime.held_replies("acme", CHANNEL, "u1") == []


async def test_of_two_concurrent_claims_exactly_one_wins(rt: tuple[Runtime, ScriptedModel]) -> None:
    runtime, model = rt
    model.steps.append(Step(text="only once"))
    await runtime.ingest(turn("m1", "question"))
    assert await runtime.wait_reply("acme", CHANNEL, "m1", timeout=5.0)
    [held] = await runtime.held_replies("acme", CHANNEL, "u1")
    claim = ReplyClaim(outbound=held, parts=1, complete=True)
    results = await asyncio.gather(runtime.claim_replies([claim]), runtime.claim_replies([claim]))
    assert sorted(results) == [False, True]
    assert await runtime.held_replies("acme", CHANNEL, "u1") == []
    assert b'botframework_deliveries_total{channel="holdtest",result="sent"} 1.0' in runtime.metrics.render()


async def test_partial_claims_keep_the_rest_held_and_a_lost_claim_takes_nothing(
    rt: tuple[Runtime, ScriptedModel],
) -> None:
    runtime, model = rt
    model.steps += [Step(text="first reply"), Step(text="second reply")]
    await runtime.ingest(turn("m1", "one"))
    assert await runtime.wait_reply("acme", CHANNEL, "m1", timeout=5.0)
    await runtime.ingest(turn("m2", "two"))
    assert await runtime.wait_reply("acme", CHANNEL, "m2", timeout=5.0)
    first, second = await runtime.held_replies("acme", CHANNEL, "u1")
    assert await runtime.claim_replies([ReplyClaim(outbound=first, parts=1, complete=False)])
    # A claim made from the stale view loses as a whole: the second reply is not taken either.
    stale = [ReplyClaim(outbound=first, parts=1, complete=True), ReplyClaim(outbound=second, parts=1, complete=True)]
    assert not await runtime.claim_replies(stale)
    now_first, now_second = await runtime.held_replies("acme", CHANNEL, "u1")
    assert (now_first.turn_id, now_first.resume_from) == (first.turn_id, 1)
    assert (now_second.turn_id, now_second.resume_from) == (second.turn_id, 0)


async def test_a_message_steered_into_a_running_turn_is_answered_by_that_turn(
    rt: tuple[Runtime, ScriptedModel],
) -> None:
    runtime, model = rt
    model.steps += [
        Step(tool_calls=(ToolCall("c1", "clock", "{}"),), delay_s=0.8),
        Step(text="both answered"),
    ]
    await runtime.ingest(turn("m1", "first"))
    await asyncio.sleep(0.3)
    second = await runtime.ingest(turn("m2", "second, while the first runs"))
    assert await runtime.wait_reply("acme", CHANNEL, "m2", timeout=5.0)
    [held] = await runtime.held_replies("acme", CHANNEL, "u1")
    assert held.reply.text == "both answered" and held.turn_id != second.turn_id
    assert [e.event_id for e in held.events] == ["m1", "m2"]


async def test_held_replies_stay_held_across_a_restart(db_url: str) -> None:
    runtime, model = make_runtime(db_url)
    await runtime.start()
    model.steps.append(Step(text="kept"))
    await runtime.ingest(turn("m1", "question"))
    assert await runtime.wait_reply("acme", CHANNEL, "m1", timeout=5.0)
    await runtime.stop()
    again, _ = make_runtime(db_url)
    await again.start()
    try:
        await asyncio.sleep(0.3)
        [held] = await again.held_replies("acme", CHANNEL, "u1")
        assert held.reply.text == "kept"
        assert HoldingAdapter.delivered == []
    finally:
        await again.stop()


async def test_an_adapter_that_does_not_hold_gets_deliver_called(db_url: str, tmp_path: Path) -> None:
    runtime, model = make_runtime(db_url, hold=False)
    await runtime.start()
    try:
        model.steps.append(Step(text="pushed"))
        await runtime.ingest(turn("m1", "question"))
        for _ in range(100):
            if HoldingAdapter.delivered:
                break
            await asyncio.sleep(0.05)
        [outbound] = HoldingAdapter.delivered
        assert outbound.reply.text == "pushed"

        async def nothing_held() -> bool:  # the delivery is recorded as sent just after deliver() returns
            return await runtime.held_replies("acme", CHANNEL, "u1") == []

        await wait_until(nothing_held, timeout=5.0, what="the pushed reply to be recorded as sent")
    finally:
        await runtime.stop()
