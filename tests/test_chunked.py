"""The core's chunked delivery records every part around its vendor call, and asks before resending."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import BaseModel

from botframework.channel import PART_KEY_LENGTH, EventRef, InFlightPart, Outbound
from botframework.chunked import ChunkedAdapter
from botframework.errors import DeliveryError, StorageError
from botframework.render import ChannelLimit
from botframework.turn import Reply, ReplyTarget
from tests.fakes.runtime import RecordingRuntime


class _Options(BaseModel):
    pass


class _Target(ReplyTarget):
    room: str


class _Vendor(ChunkedAdapter[_Options, _Target, str]):
    name: ClassVar[str] = "vendor"
    config_model: ClassVar[type[BaseModel]] = _Options
    target_model: ClassVar[type[ReplyTarget]] = _Target
    message_limit: ClassVar[ChannelLimit] = ChannelLimit(size=16, unit="chars")

    def __init__(self, runtime: RecordingRuntime, *, arrived: bool = False) -> None:
        super().__init__(tenant="acme", config=_Options(), runtime=runtime)
        self.calls: list[tuple[str, int, str]] = []
        self.arrived = arrived
        self.checked: list[int] = []

    async def send_part(self, target: _Target, text: str, *, index: int, outbound: Outbound) -> None:
        self.calls.append((text, index, outbound.part_key(index)))

    async def already_delivered(self, target: _Target, text: str, *, index: int, outbound: Outbound) -> bool:
        self.checked.append(index)
        return self.arrived


@dataclass
class _Journal:
    events: list[tuple[str, int]] = field(default_factory=list)
    fail_on: tuple[str, int] | None = None

    async def sending(self, index: int) -> None:
        self._note("sending", index)

    async def sent(self, index: int) -> None:
        self._note("sent", index)

    def _note(self, what: str, index: int) -> None:
        if self.fail_on == (what, index):
            raise StorageError("database unavailable")
        self.events.append((what, index))


def _outbound(journal: _Journal | None) -> Outbound:
    return Outbound(
        tenant="acme",
        channel="vendor",
        turn_id="turn-1",
        conversation_key="room-1",
        reply=Reply(text="alpha beta gamma\n\ndelta epsilon zeta\n\neta theta"),
        events=[EventRef(event_id="e1", user_id="u1", reply_target={"room": "room-1"})],
        journal=journal,
    )


@pytest.fixture
def runtime() -> RecordingRuntime:
    return RecordingRuntime()


async def test_each_part_is_in_flight_before_its_vendor_call_and_sent_after(runtime: RecordingRuntime) -> None:
    adapter = _Vendor(runtime)
    journal = _Journal()
    reply = _outbound(journal)
    await adapter.deliver(reply)
    count = len(adapter.render_reply(reply.reply.text))
    assert count >= 3 and len(adapter.calls) == count
    assert journal.events == [(what, i) for i in range(count) for what in ("sending", "sent")]
    assert adapter.checked == [], "nothing was in flight: no vendor check"


async def test_a_part_that_cannot_be_recorded_in_flight_is_not_sent(runtime: RecordingRuntime) -> None:
    adapter = _Vendor(runtime)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(_outbound(_Journal(fail_on=("sending", 1))))
    assert [c[1] for c in adapter.calls] == [0]
    assert caught.value.retryable and caught.value.delivered_parts == 1


async def test_a_part_sent_but_not_recorded_counts_as_delivered(runtime: RecordingRuntime) -> None:
    adapter = _Vendor(runtime)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(_outbound(_Journal(fail_on=("sent", 1))))
    assert [c[1] for c in adapter.calls] == [0, 1]
    assert caught.value.retryable and caught.value.delivered_parts == 2


@pytest.mark.parametrize("arrived", [True, False])
async def test_a_part_in_flight_is_checked_and_sent_again_only_if_it_did_not_arrive(
    runtime: RecordingRuntime, arrived: bool
) -> None:
    adapter = _Vendor(runtime, arrived=arrived)
    journal = _Journal()
    first = _outbound(journal)
    resumed = replace(first, resume_from=1, in_flight=InFlightPart(index=1, since=datetime.now(UTC)))
    await adapter.deliver(resumed)
    count = len(adapter.render_reply(first.reply.text))
    expected = list(range(2 if arrived else 1, count))
    assert adapter.checked == [1]
    assert [c[1] for c in adapter.calls] == expected
    assert ("sent", 1) in journal.events
    assert (("sending", 1) in journal.events) is not arrived
    assert [key for _, _, key in adapter.calls] == [first.part_key(i) for i in expected]


def test_part_keys_are_stable_distinct_and_fit_every_vendor() -> None:
    a, b = _outbound(None), _outbound(_Journal())
    assert a.part_key(0) == b.part_key(0)
    assert len({a.part_key(i) for i in range(100)}) == 100
    assert a.part_key(0) != replace(a, turn_id="turn-2").part_key(0)
    assert a.part_key(0) != replace(a, tenant="other").part_key(0)
    assert all(len(a.part_key(i)) == PART_KEY_LENGTH <= 25 for i in range(10))
