"""The engine on a real database (SQLite, or PostgreSQL with BOTFRAMEWORK_TEST_DB=postgresql)."""

from __future__ import annotations

import pytest

import storage.history
from botframework.budget import BudgetEngine, InMemoryHistory
from botframework.messages import Message, ToolCall
from storage.db import Database
from tests.budget.helpers import (
    Case,
    DbWriter,
    MemoryWriter,
    Writer,
    agent,
    budget_config,
    bulk_insert,
    check_prepared,
    model,
    words,
)


def _turn(engine: BudgetEngine, i: int) -> list[tuple[Message, int]]:
    m = model(2000)
    msgs = [
        Message.user(f"q{i} " + words(40, i)),
        Message.assistant("", tool_calls=[ToolCall(f"c{i}", "lookup", "{}")]),
        Message.tool_result(f"c{i}", words(30, i)),
        Message.assistant(f"a{i} " + words(40, i)),
    ]
    return [(x, engine.count_message(m, x)) for x in msgs]


async def test_the_rows_read_depend_on_the_window_not_on_the_conversation_length(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = BudgetEngine(config=budget_config(), db=db)
    m = model(2000, max_output=200)
    materialized = 0
    original = storage.history.row_to_message

    def counting(row: object) -> Message:
        nonlocal materialized
        materialized += 1
        return original(row)

    monkeypatch.setattr(storage.history, "row_to_message", counting)
    reads = {}
    for turns in (50, 1000):
        w = await DbWriter.create(engine, m, db, key=f"len{turns}")
        await bulk_insert(db, w.conversation_id, [_turn(engine, i) for i in range(turns)])
        await w.append("now", [Message.user("and now?")], turn_start=True)
        materialized = 0
        case = Case(engine=engine, model=m, agent=agent(), conversation_id=w.conversation_id)
        prepared = await case.prepare("now")
        reads[turns] = materialized
        assert prepared.history_tokens > 0.5 * prepared.history_budget
    assert reads[1000] <= reads[50] + 8, reads  # 4000 stored messages read no more than 200 did
    assert reads[1000] < 100


async def _messy_conversation(w: Writer) -> None:
    await w.append(
        "t1",
        [
            Message.user("one " + words(50)),
            Message.assistant("", tool_calls=[ToolCall("a", "x", "{}"), ToolCall("b", "x", "{}")]),
            Message.tool_result("b", "B"),
            Message.tool_result("a", "A"),
            Message.assistant("done one"),
        ],
        turn_start=True,
    )
    await w.append(
        "t2",
        [
            Message.user("two"),
            Message.tool_result("ghost", "?"),
            Message.assistant("", tool_calls=[ToolCall("c", "x", "{}")]),
            Message.assistant("hmm"),
        ],
        turn_start=True,
    )
    await w.append("t3", [Message.user("three " + words(200))], turn_start=True)
    await w.append("t4", [Message.user("four")], turn_start=True)  # queued behind t3
    await w.append("t3", [Message.assistant("", tool_calls=[ToolCall("d", "x", "{}")])])
    await w.append("t5", [Message.user("five, steered")], turn_start=True)
    await w.steer("t5", "t3")
    await w.append("t3", [Message.tool_result("d", "D " + words(100)), Message.assistant("done three")])
    await w.append("t6", [Message.user("six, queued after four")], turn_start=True)


@pytest.mark.parametrize("window", [600, 1000, 4000])
async def test_sql_and_memory_sources_prepare_the_same_request(db: Database, window: int) -> None:
    m = model(window, max_output=100)
    mem_engine = BudgetEngine(config=budget_config(), source=InMemoryHistory())
    mem = MemoryWriter(mem_engine, m, mem_engine.source)  # type: ignore[arg-type]
    sql_engine = BudgetEngine(config=budget_config(), db=db)
    sql = await DbWriter.create(sql_engine, m, db)
    await _messy_conversation(mem)
    await _messy_conversation(sql)
    for turn in ("t3", "t4"):
        a = await Case(engine=mem_engine, model=m, agent=agent()).prepare(turn)
        b = await Case(engine=sql_engine, model=m, agent=agent(), conversation_id=sql.conversation_id).prepare(turn)
        assert [(x.role, x.text, x.tool_call_id) for x in a.messages] == [
            (x.role, x.text, x.tool_call_id) for x in b.messages
        ]
        assert (a.max_tokens, a.estimated_prompt_tokens, a.history_start_offset) == (
            b.max_tokens,
            b.estimated_prompt_tokens,
            b.history_start_offset,
        )
        check_prepared(
            Case(engine=sql_engine, model=m, agent=agent(), conversation_id=sql.conversation_id),
            b,
            await sql.stored(),
            turn,
        )
    texts = [x.text for x in b.messages]
    assert "six, queued after four" not in texts and texts[-1] == "four"
