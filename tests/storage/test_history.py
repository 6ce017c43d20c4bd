"""storage.history: the window-bounded queries the budget engine is built on."""

from __future__ import annotations

from botframework.messages import Message
from storage.conversations import append_messages, get_or_create_conversation
from storage.db import Database
from storage.history import load_history_window, load_offset_range, load_turn_tail


async def _conversation(db: Database, key: str = "u") -> int:
    async with db.write() as conn:
        return await get_or_create_conversation(conn, tenant="acme", channel="test", key=key)


async def _turn(db: Database, cid: int, turn_id: str, *texts: str, cost: int = 10) -> list[Message]:
    async with db.write() as conn:
        return await append_messages(
            conn,
            conversation_id=cid,
            turn_id=turn_id,
            turn_start=True,
            items=[(Message.user(t) if i == 0 else Message.assistant(t), cost) for i, t in enumerate(texts)],
        )


async def test_turn_tail_reads_from_the_turns_first_message_to_the_end(db: Database) -> None:
    cid = await _conversation(db)
    other = await _conversation(db, "other")
    await _turn(db, cid, "t1", "q1", "a1")
    t2 = await _turn(db, cid, "t2", "q2")
    await _turn(db, other, "x", "not mine")
    await _turn(db, cid, "t3", "q3")
    async with db.write() as conn:
        await append_messages(conn, conversation_id=cid, turn_id="t2", items=[(Message.assistant("a2"), 5)])
    async with db.read() as conn:
        tail = await load_turn_tail(conn, conversation_id=cid, turn_id="t2")
        missing = await load_turn_tail(conn, conversation_id=cid, turn_id="nope")
        wrong_conversation = await load_turn_tail(conn, conversation_id=other, turn_id="t2")
    assert [(m.text, m.turn_id, m.turn_start) for m in tail] == [
        ("q2", "t2", True),
        ("q3", "t3", True),
        ("a2", "t2", False),
    ]
    assert tail[0].id == t2[0].id and tail[0].offset == 20 and tail[-1].offset == 40
    assert missing == [] and wrong_conversation == []


async def test_history_window_snaps_forward_to_a_turn_start(db: Database) -> None:
    cid = await _conversation(db)
    await _turn(db, cid, "t1", "q1", "a1", "b1")  # offsets 0, 10, 20
    await _turn(db, cid, "t2", "q2", "a2")  # 30, 40
    t3 = await _turn(db, cid, "t3", "q3", "a3")  # 50, 60
    now = await _turn(db, cid, "t4", "q4")  # 70
    before = now[0].id or 0
    async with db.read() as conn:
        from_zero = await load_history_window(conn, conversation_id=cid, min_offset=0, max_offset=70, before_id=before)
        snapped = await load_history_window(conn, conversation_id=cid, min_offset=11, max_offset=70, before_id=before)
        exact = await load_history_window(conn, conversation_id=cid, min_offset=50, max_offset=70, before_id=before)
        none_left = await load_history_window(conn, conversation_id=cid, min_offset=51, max_offset=70, before_id=before)
        capped = await load_history_window(conn, conversation_id=cid, min_offset=11, max_offset=29, before_id=before)
    assert [m.text for m in from_zero] == ["q1", "a1", "b1", "q2", "a2", "q3", "a3"]
    assert [m.text for m in snapped] == ["q2", "a2", "q3", "a3"]
    assert [m.id for m in exact] == [m.id for m in t3]
    assert none_left == [] and capped == []
    assert all(m.token_count == 10 for m in from_zero)


async def test_offset_range_reads_a_slice(db: Database) -> None:
    cid = await _conversation(db)
    await _turn(db, cid, "t1", "q1", "a1", "b1")
    t2 = await _turn(db, cid, "t2", "q2", "a2")
    async with db.read() as conn:
        rows = await load_offset_range(conn, conversation_id=cid, min_offset=10, max_offset=40, before_id=t2[1].id or 0)
    assert [m.text for m in rows] == ["a1", "b1", "q2"]


async def test_window_queries_use_the_conversation_offset_index(db: Database) -> None:
    """Guards invariant 6 with many conversations: no scan over other conversations' rows."""
    from sqlalchemy import text

    from storage.history import _order, _window, messages

    ours, other = await _conversation(db, "ours"), await _conversation(db, "other")
    for i in range(40):
        for cid in (ours, other):
            async with db.write() as conn:
                await append_messages(conn, conversation_id=cid, turn_id=f"{cid}-{i}", turn_start=True,
                                      items=[(Message.user("q"), 10)] * 25)
    if db.dialect == "postgresql":
        async with db.write() as conn:
            await conn.execute(text("ANALYZE messages"))
    from sqlalchemy import select

    query = select(messages.c.id).where(*_window(ours, 5000, 9990, 10**9)).order_by(*_order())
    async with db.read() as conn:
        compiled = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})  # type: ignore[union-attr]
        prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(row[-1]) for row in await conn.execute(text(prefix + str(compiled))))
    assert "ix_messages_conversation_offset" in plan, plan
    assert "pk_messages" not in plan, plan


async def test_turn_tail_query_is_a_closed_range_on_the_offset_index(db: Database) -> None:
    """The tail read must not be planned from a table-wide ``offset >= x`` estimate (PostgreSQL then
    picks a parallel bitmap scan for mid-table conversations): both bounds sit in the index scan."""
    from sqlalchemy import text

    from storage.history import _tail_query

    cid = await _conversation(db)
    await _turn(db, cid, "t1", "q1", "a1")
    query = _tail_query(cid, 10)
    async with db.read() as conn:
        compiled = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})  # type: ignore[union-attr]
        prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(row[-1]) for row in await conn.execute(text(prefix + str(compiled))))
    assert "ix_messages_conversation_offset" in plan, plan
    if db.dialect == "postgresql":
        assert '"offset" <= ' in plan and "Parallel" not in plan, plan
    else:
        assert "offset>? AND offset<?" in plan.replace("=", ""), plan
