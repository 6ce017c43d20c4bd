from __future__ import annotations

import asyncio

from botframework.messages import ImagePart, Message, ToolCall
from botframework.states import DeliveryStatus, TurnStatus
from botframework.turn import Reply, Turn
from storage.conversations import append_messages, get_or_create_conversation, turn_messages
from storage.db import Database
from storage.deliveries import create_delivery, delivery_for_turn, mark_delivery, pending_deliveries
from storage.ledger import LedgerEntry, record_call, usage_summary
from storage.turns import (
    create_turn,
    events_of_turn,
    find_event,
    insert_event,
    merge_turns,
    open_turns,
    recent_transcript,
    set_turn_status,
)


async def _conversation(db: Database, key: str = "u1", tenant: str = "acme") -> int:
    async with db.write() as conn:
        return await get_or_create_conversation(conn, tenant=tenant, channel="websocket", key=key)


async def test_offsets_follow_token_counts_across_appends(db: Database) -> None:
    cid = await _conversation(db)
    async with db.write() as conn:
        first = await append_messages(
            conn,
            conversation_id=cid,
            turn_id="t1",
            turn_start=True,
            items=[
                (Message.user("hi", images=[ImagePart(url="https://x/y.png")]), 7),
                (Message.assistant("", tool_calls=[ToolCall("c1", "clock", "{}")]), 11),
            ],
        )
        second = await append_messages(
            conn,
            conversation_id=cid,
            turn_id="t1",
            items=[(Message.tool_result("c1", "noon", is_error=True), 5)],
        )
    assert [m.offset for m in first + second] == [0, 7, 18]
    assert [m.turn_start for m in first + second] == [True, False, False]
    async with db.read() as conn:
        loaded = await turn_messages(conn, turn_id="t1")
    assert loaded[0].images == (ImagePart(url="https://x/y.png"),)
    assert loaded[1].tool_calls == (ToolCall("c1", "clock", "{}"),)
    assert loaded[2].is_error and loaded[2].tool_call_id == "c1"
    assert [m.token_count for m in loaded] == [7, 11, 5]


async def test_concurrent_appends_get_disjoint_offsets(db: Database) -> None:
    cid = await _conversation(db)

    async def add(i: int) -> None:
        async with db.write() as conn:
            await append_messages(
                conn, conversation_id=cid, turn_id=f"t{i}", items=[(Message.user(str(i)), 10)]
            )

    await asyncio.gather(*(add(i) for i in range(20)))
    async with db.read() as conn:
        offsets = sorted([m.offset for i in range(20) for m in await turn_messages(conn, turn_id=f"t{i}")])
    assert offsets == [10 * i for i in range(20)]


async def test_conversation_identity_is_per_tenant(db: Database) -> None:
    a = await _conversation(db, tenant="a")
    b = await _conversation(db, tenant="b")
    assert a != b and a == await _conversation(db, tenant="a")


async def test_events_dedupe_merge_and_recovery_queries(db: Database) -> None:
    cid = await _conversation(db)
    async with db.write() as conn:
        for n in (1, 2):
            turn = Turn(
                tenant="acme",
                channel="websocket",
                event_id=f"e{n}",
                conversation_key="u1",
                user_id="u1",
                text=f"m{n}",
                reply_target={"id": f"c{n}"},
            )
            await create_turn(conn, turn_id=f"t{n}", conversation_id=cid, tenant="acme", origin="websocket")
            [m] = await append_messages(
                conn,
                conversation_id=cid,
                turn_id=f"t{n}",
                turn_start=True,
                items=[(Message.user(turn.text), 3)],
            )
            assert m.id is not None
            await insert_event(conn, turn=turn, conversation_id=cid, message_id=m.id, turn_id=f"t{n}")
        assert await find_event(conn, tenant="acme", channel="websocket", event_id="e2") == ("t2", cid)
        assert await find_event(conn, tenant="other", channel="websocket", event_id="e2") is None
        await set_turn_status(conn, "t1", TurnStatus.RUNNING)
        await merge_turns(conn, into="t1", merged=["t2"])
    async with db.read() as conn:
        assert [t.id for t in await open_turns(conn)] == ["t1"]
        events = await events_of_turn(conn, "t1")
        merged_messages = await turn_messages(conn, turn_id="t1")
        transcript = await recent_transcript(conn, conversation_id=cid, limit=10)
    assert [e.event_id for e in events] == ["e1", "e2"]
    assert events[1].reply_target == {"id": "c2"}
    assert [m.turn_start for m in merged_messages] == [True, False]
    assert transcript == [
        {"role": "user", "text": "m1", "event_id": "e1"},
        {"role": "user", "text": "m2", "event_id": "e2"},
    ]


async def test_deliveries_lifecycle(db: Database) -> None:
    cid = await _conversation(db, key="k")
    async with db.write() as conn:
        await create_turn(conn, turn_id="t1", conversation_id=cid, tenant="acme", origin="websocket")
        did = await create_delivery(
            conn,
            turn_id="t1",
            tenant="acme",
            channel="websocket",
            reply=Reply(text="hello", model="main", input_tokens=3, output_tokens=4),
        )
    async with db.read() as conn:
        [pending] = await pending_deliveries(conn, tenant="acme", conversation_key="k")
    assert pending.reply.text == "hello" and pending.conversation_key == "k"
    async with db.write() as conn:
        await mark_delivery(conn, did, status=DeliveryStatus.PENDING, error="offline")
        await mark_delivery(conn, did, status=DeliveryStatus.SENT)
    async with db.read() as conn:
        record = await delivery_for_turn(conn, "t1")
        assert await pending_deliveries(conn) == []
    assert record is not None and record.status == "sent" and record.attempts == 2


async def test_usage_summary_groups_by_tenant_model_outcome_day(db: Database) -> None:
    def entry(tenant: str, outcome: str, tokens: int) -> LedgerEntry:
        return LedgerEntry(
            tenant=tenant,
            origin="websocket",
            conversation_id=1,
            turn_id="t",
            model="main",
            provider_model="gpt",
            attempt=1,
            purpose="turn",
            input_tokens=tokens,
            output_tokens=1,
            cached_tokens=0,
            latency_ms=5,
            outcome=outcome,
            error_kind=None if outcome == "ok" else outcome,
        )

    async with db.write() as conn:
        for e in [
            entry("a", "ok", 10),
            entry("a", "ok", 5),
            entry("a", "rate_limited", 0),
            entry("b", "ok", 1),
        ]:
            await record_call(conn, e)
    async with db.read() as conn:
        rows = await usage_summary(conn, tenant="a")
    summary = {(r.model, r.outcome): (r.calls, r.input_tokens, r.output_tokens) for r in rows}
    assert summary == {("main", "ok"): (2, 15, 2), ("main", "rate_limited"): (1, 0, 1)}
    assert all(r.tenant == "a" and len(r.day) == 10 for r in rows)
