from __future__ import annotations

import asyncio

from botframework.scheduler import ConversationScheduler


async def test_one_turn_at_a_time_per_conversation_in_order() -> None:
    log: list[tuple[str, int, str]] = []
    gate = asyncio.Event()

    async def process(conversation_id: int, turn_id: str) -> None:
        log.append(("start", conversation_id, turn_id))
        if turn_id == "a1":
            await gate.wait()
        log.append(("end", conversation_id, turn_id))

    s = ConversationScheduler(process=process)
    s.submit(1, "a1")
    s.submit(1, "a2")
    s.submit(2, "b1")
    await asyncio.sleep(0.01)
    assert ("end", 2, "b1") in log  # another conversation is not blocked
    assert ("start", 1, "a2") not in log  # same conversation waits
    assert s.depth == 2
    gate.set()
    await asyncio.sleep(0.01)
    starts = [t for kind, c, t in log if kind == "start" and c == 1]
    assert starts == ["a1", "a2"]
    assert s.depth == 0


async def test_waiting_turns_are_taken_by_the_running_one() -> None:
    taken: list[list[str]] = []
    processed: list[str] = []
    release = asyncio.Event()

    async def process(conversation_id: int, turn_id: str) -> None:
        processed.append(turn_id)
        await release.wait()
        taken.append(s.take_waiting(conversation_id))

    s = ConversationScheduler(process=process)
    s.submit(7, "t1")
    await asyncio.sleep(0)
    s.submit(7, "t2")
    s.submit(7, "t3")
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.sleep(0.01)
    assert taken[0] == ["t2", "t3"]
    assert processed == ["t1"]


async def test_user_cancel_interrupts_only_that_turn() -> None:
    started = asyncio.Event()
    outcomes: list[str] = []

    async def process(conversation_id: int, turn_id: str) -> None:
        if turn_id == "slow":
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                outcomes.append("slow-cancelled")
                raise
        outcomes.append(turn_id)

    s = ConversationScheduler(process=process)
    s.submit(1, "slow")
    s.submit(1, "next")
    await started.wait()
    assert s.cancel("slow") is True
    await asyncio.sleep(0.01)
    assert outcomes == ["slow-cancelled", "next"]
    assert s.cancel("gone") is False


async def test_close_cancels_what_does_not_finish_in_time() -> None:
    async def process(conversation_id: int, turn_id: str) -> None:
        await asyncio.sleep(0 if turn_id == "quick" else 30)

    s = ConversationScheduler(process=process)
    s.submit(1, "quick")
    s.submit(2, "stuck")
    cancelled = await s.close(timeout=0.05)
    assert cancelled == 1
    s.submit(3, "late")  # ignored after close: it stays queued in storage for the next start
    assert s.depth == 0
