"""Compaction (history.strategy: summarize): persisted, chunked, bounded, and never blocking a turn."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from botframework.budget import SUMMARY_HEADER, BudgetEngine, InMemoryHistory, PreparedRequest
from botframework.budget.compaction import MAX_SUMMARY_CHUNKS, render_message
from botframework.messages import Message, ToolCall
from storage.db import Database
from storage.summaries import latest_summary
from tests.budget.helpers import (
    Case,
    DbWriter,
    MemoryWriter,
    Writer,
    agent,
    budget_config,
    check_prepared,
    model,
    words,
)


class RecordingSummarizer:
    def __init__(self, *, delay: float = 0.0, fail: bool = False, text: str | None = None) -> None:
        self.calls: list[dict[str, object]] = []
        self.delay = delay
        self.fail = fail
        self.text = text

    async def __call__(self, *, transcript: str, previous_summary: str | None, max_tokens: int) -> str:
        self.calls.append({"transcript": transcript, "previous": previous_summary, "max_tokens": max_tokens})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model unavailable")
        return self.text if self.text is not None else f"summary #{len(self.calls)}: the user asked things"


def summarizing_agent(**history: object):  # type: ignore[no-untyped-def]
    return agent(history={"strategy": "summarize", "summary_max_tokens": 64, **history})


async def fill(w: Writer, turns: int, *, start: int = 0) -> None:
    for i in range(start, start + turns):
        await w.append(
            f"t{i}",
            [Message.user(f"question {i} " + words(60, i)), Message.assistant(f"answer {i} " + words(60, i))],
            turn_start=True,
        )


async def prepare(case: Case, turn_id: str, summarizer: RecordingSummarizer) -> PreparedRequest:
    return await case.engine.prepare(
        conversation_id=case.conversation_id,
        turn_id=turn_id,
        model_name="m",
        model=case.model,
        agent=case.agent,
        tools=(),
        summarizer=summarizer,
    )


def memory_case(window: int = 3000, **history: object) -> tuple[Case, MemoryWriter, InMemoryHistory]:
    store = InMemoryHistory()
    engine = BudgetEngine(config=budget_config(), source=store)
    m = model(window, max_output=300)
    return Case(engine=engine, model=m, agent=summarizing_agent(**history)), MemoryWriter(engine, m, store), store


async def test_dropped_history_is_summarized_persisted_and_reused(db: Database) -> None:
    engine = BudgetEngine(config=budget_config(), db=db)
    m = model(3000, max_output=300)
    w = await DbWriter.create(engine, m, db)
    case = Case(engine=engine, model=m, agent=summarizing_agent(), conversation_id=w.conversation_id)
    summarizer = RecordingSummarizer()
    await fill(w, 30)
    await w.append("now", [Message.user("what did I ask first?")], turn_start=True)

    first = await prepare(case, "now", summarizer)
    check_prepared(case, first, await w.stored(), "now")
    assert len(summarizer.calls) >= 1 and summarizer.calls[0]["previous"] is None
    assert "question 0 " in str(summarizer.calls[0]["transcript"]) or "omitted" in str(
        summarizer.calls[0]["transcript"]
    )
    assert first.summary_id is not None
    assert first.system.startswith(case.agent.system_prompt) and SUMMARY_HEADER in first.system
    assert first.system.endswith(f"summary #{len(summarizer.calls)}: the user asked things")
    async with db.read() as conn:
        stored = await latest_summary(conn, conversation_id=w.conversation_id)
    assert stored is not None and stored.id == first.summary_id
    assert stored.upto_offset == first.history_start_offset
    assert stored.upto_message_id == first.messages[0].id and first.messages[0].turn_start

    # The next turn: history grew a little, the cut did not move -> no summarizer call, same prefix.
    calls = len(summarizer.calls)
    await w.append("now", [Message.assistant("You asked about alpha.")])
    await w.append("next", [Message.user("thanks")], turn_start=True)
    second = await prepare(case, "next", summarizer)
    check_prepared(case, second, await w.stored(), "next")
    assert len(summarizer.calls) == calls and second.summary_id == first.summary_id
    assert second.system == first.system and second.messages[: len(first.messages)] == first.messages

    # Much later the cut moves again: the new summary folds the previous one in.
    await fill(w, 15, start=100)
    await w.append("late", [Message.user("still there?")], turn_start=True)
    third = await prepare(case, "late", summarizer)
    check_prepared(case, third, await w.stored(), "late")
    assert len(summarizer.calls) > calls
    assert summarizer.calls[calls]["previous"] == f"summary #{calls}: the user asked things"
    assert third.summary_id not in (None, first.summary_id)
    assert third.history_start_offset > first.history_start_offset


async def test_a_large_drop_is_summarized_in_a_bounded_number_of_chunks() -> None:
    case, w, store = memory_case()
    summarizer = RecordingSummarizer()
    case.agent = agent()  # history accumulates while trimming...
    await fill(w, 200)
    await w.append("now", [Message.user("hello again")], turn_start=True)
    case.agent = summarizing_agent()  # ...then the agent switches to summarize
    prepared = await prepare(case, "now", summarizer)
    assert 1 <= len(summarizer.calls) <= MAX_SUMMARY_CHUNKS
    assert str(summarizer.calls[0]["transcript"]).startswith("[earlier messages omitted]")
    assert all(c["max_tokens"] == 64 for c in summarizer.calls)
    chunk_limit = max(512, 3000 // 2 - 64)
    for c in summarizer.calls:
        assert case.engine.count_text(case.model, str(c["transcript"])) <= chunk_limit * 1.1
    for previous, current in zip(summarizer.calls, summarizer.calls[1:], strict=False):
        assert current["previous"] is not None and previous["previous"] != current["previous"]
    assert store.summaries(1)[-1].upto_offset == prepared.history_start_offset


async def test_a_slow_summarizer_times_out_and_the_turn_is_trimmed(caplog: pytest.LogCaptureFixture) -> None:
    case, w, store = memory_case(summary_timeout_s=0.2)
    await fill(w, 30)
    await w.append("now", [Message.user("quick!")], turn_start=True)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="botframework.budget"):
        prepared = await prepare(case, "now", RecordingSummarizer(delay=30))
    assert time.monotonic() - started < 2
    assert prepared.summary_id is None and SUMMARY_HEADER not in prepared.system
    assert prepared.messages[-1].text == "quick!" and prepared.history_tokens > 0
    assert any("took longer than 0.2s" in r.getMessage() for r in caplog.records)
    assert store.summaries(1) == []
    check_prepared(case, prepared, await w.stored(), "now")


async def test_a_failing_summarizer_keeps_the_previous_summary(caplog: pytest.LogCaptureFixture) -> None:
    case, w, store = memory_case()
    await fill(w, 30)
    await w.append("now", [Message.user("one")], turn_start=True)
    first = await prepare(case, "now", RecordingSummarizer())
    assert first.summary_id is not None
    await fill(w, 20, start=100)
    await w.append("later", [Message.user("two")], turn_start=True)
    with caplog.at_level(logging.WARNING, logger="botframework.budget"):
        second = await prepare(case, "later", RecordingSummarizer(fail=True))
    assert second.summary_id == first.summary_id and second.system.endswith(store.summaries(1)[0].text)
    assert second.history_start_offset > first.history_start_offset
    assert any("model unavailable" in r.getMessage() for r in caplog.records)
    assert len(store.summaries(1)) == 1
    check_prepared(case, second, await w.stored(), "later")


async def test_an_empty_summary_counts_as_a_failure() -> None:
    case, w, store = memory_case()
    await fill(w, 30)
    await w.append("now", [Message.user("one")], turn_start=True)
    prepared = await prepare(case, "now", RecordingSummarizer(text="   "))
    assert prepared.summary_id is None and store.summaries(1) == []


async def test_an_overlong_summary_is_cut_to_summary_max_tokens() -> None:
    case, w, store = memory_case()
    await fill(w, 30)
    await w.append("now", [Message.user("one")], turn_start=True)
    prepared = await prepare(case, "now", RecordingSummarizer(text=words(500)))
    assert store.summaries(1)[0].token_count <= 64
    check_prepared(case, prepared, await w.stored(), "now")


async def test_without_a_summarizer_the_strategy_trims() -> None:
    case, w, store = memory_case()
    await fill(w, 30)
    await w.append("now", [Message.user("one")], turn_start=True)
    prepared = await case.engine.prepare(
        conversation_id=1, turn_id="now", model_name="m", model=case.model, agent=case.agent, tools=()
    )
    assert prepared.summary_id is None and store.summaries(1) == []
    check_prepared(case, prepared, await w.stored(), "now")


def test_transcripts_render_tool_calls_and_images_as_text() -> None:
    call = Message.assistant("checking", tool_calls=[ToolCall("a", "clock", "{}")])
    assert render_message(call) == "Assistant: checking\n[called clock({})]"
    assert render_message(Message.tool_result("a", "noon", name="clock")) == "Tool result (clock): noon"
    from botframework.messages import ImagePart

    assert render_message(Message.user("see", images=[ImagePart(url="https://x")])) == "User: see [1 image(s)]"


async def test_chunks_are_sized_for_the_summary_models_window_when_it_is_known() -> None:
    case, w, _ = memory_case(window=16_000)
    await fill(w, 160)
    await w.append("now", [Message.user("hi")], turn_start=True)
    summarizer = RecordingSummarizer()
    summarizer.context_window = 2000  # type: ignore[attr-defined]
    await prepare(case, "now", summarizer)
    assert summarizer.calls
    for c in summarizer.calls:
        assert case.engine.count_text(case.model, str(c["transcript"])) <= (2000 // 2 - 64) * 1.1


async def test_a_failed_summary_is_not_retried_by_the_next_calls_of_the_tool_loop() -> None:
    case, w, _ = memory_case(summary_timeout_s=0.2)
    await fill(w, 30)
    await w.append("now", [Message.user("go")], turn_start=True)
    slow = RecordingSummarizer(delay=30)
    started = time.monotonic()
    await prepare(case, "now", slow)
    await w.append("now", [Message.assistant("", tool_calls=[ToolCall("c1", "clock", "{}")]),
                           Message.tool_result("c1", "noon")])
    second = await prepare(case, "now", slow)
    assert len(slow.calls) == 1 and time.monotonic() - started < 1.5
    assert second.messages[-1].text == "noon"
