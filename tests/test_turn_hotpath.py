"""The turn hot path's round trips (issue 9): a channel turn takes a handful of SQL statements and
transactions, reads back nothing it already has, and what it stops reading still reaches the user."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import event

from botframework.messages import ToolCall
from botframework.testing import BotHarness, Step, wait_until
from storage.tables import DELIVERIES
from tests.e2e.support import ChatClient

MAX_STATEMENTS = 16
MAX_TRANSACTIONS = 6


class _Recorder:
    def __init__(self, engine: Any) -> None:
        self.statements: list[str] = []
        self.transactions = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def _begin(self, _conn: Any) -> None:
        self.transactions += 1


async def _all_sent(bot: BotHarness) -> bool:
    from sqlalchemy import func, select

    async with bot.runtime.db.read() as conn:
        pending = await conn.execute(select(func.count()).select_from(DELIVERIES).where(DELIVERIES.c.status != "sent"))
        return int(pending.scalar_one()) == 0


async def test_a_channel_turn_takes_a_handful_of_statements_and_reads_nothing_back(db_url: str) -> None:
    async with (
        BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot,
        aiohttp.ClientSession() as http,
    ):
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        for n in range(3):  # the conversation exists and caches are warm, as for any later turn
            await client.send(f"w{n}", f"warm-up {n}")
            await client.wait_for("done", f"w{n}")
        await wait_until(lambda: _all_sent(bot), what="the warm-up replies to be marked sent")
        recorder = _Recorder(bot.runtime.db.engine.sync_engine)
        await client.send("c1", "hello there")
        done = await client.wait_for("done", "c1")
        await wait_until(lambda: _all_sent(bot), what="the reply to be marked sent")
        await client.close()
    assert done["text"] == "echo: hello there"
    statements = [s for s in recorder.statements if "FROM deliveries WHERE deliveries.status !=" not in s]  # ours
    assert len(statements) <= MAX_STATEMENTS, "\n".join(statements)
    polls = len(recorder.statements) - len(statements)  # each poll of ours was a transaction of its own
    assert recorder.transactions - polls <= MAX_TRANSACTIONS
    # the delivery has the turn's events from ingest; a fresh turn has no earlier work to read back
    assert not [s for s in statements if s.startswith("SELECT") and "inbound_events.turn_id = " in s]
    assert not [s for s in statements if s.startswith("SELECT") and "WHERE messages.turn_id = ? ORDER BY" in s]
    # ingest: one lookup for the event, the conversation and its queue, before the three inserts
    assert not [s for s in statements if s.startswith("SELECT conversations.id FROM conversations")]
    assert not [s for s in statements if s.startswith("SELECT inbound_events.turn_id")]
    # the turn starts from what ingest stored: marked running without being read back
    assert not [s for s in statements if s.startswith("SELECT turns.id")]


async def test_messages_steered_into_a_turn_each_get_their_frame(db_url: str) -> None:
    """The delivery of a turn that took in later messages still answers every one of them (the
    events a turn answers then come from the database, in arrival order)."""
    async with (
        BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot,
        aiohttp.ClientSession() as http,
    ):
        bot.model.steps.append(Step(tool_calls=(ToolCall(id="call_1", name="lookup", arguments="{}"),), delay_s=0.5))
        bot.model.steps.append(Step(text="one answer for both"))
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await client.send("c1", "first")
        await client.wait_for("accepted", "c1")

        async def model_called() -> bool:
            return bool(bot.model.requests)

        await wait_until(model_called, what="the first model call")
        await client.send("c2", "and this too")
        first = await client.wait_for("done", "c1")
        second = await client.wait_for("done", "c2")
        await client.close()
    assert first["text"] == second["text"] == "one answer for both"
    assert second["merged_into"] == "c1" and "merged_into" not in first
    assert len(bot.model.requests) == 2, "the steered message must not start a turn of its own"


def test_turn_events_log_at_debug_and_format_nothing_when_debug_is_off(caplog: Any) -> None:
    """Per-turn lines are DEBUG records; at INFO a turn's events cost no formatting at all."""
    import logging

    from botframework.events import EventKind, TurnEvent, log_event

    formatted: list[str] = []

    class Loud:
        def __str__(self) -> str:
            formatted.append("str")
            return "loud"

        __repr__ = __str__
        __format__ = lambda self, spec: str(self)  # noqa: E731

    def event(kind: EventKind) -> TurnEvent:
        return TurnEvent(kind=kind, tenant="t", origin="websocket", conversation_id=1, turn_id="x", data={"v": Loud()})

    per_turn = (EventKind.TURN_START, EventKind.MODEL_REQUEST, EventKind.MODEL_RESPONSE, EventKind.TURN_END)
    with caplog.at_level(logging.INFO, logger="botframework.events"):
        for kind in per_turn:
            log_event(event(kind))
    assert caplog.records == [] and formatted == []
    with caplog.at_level(logging.DEBUG, logger="botframework.events"):
        log_event(event(EventKind.TURN_END))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG] and "v=loud" in caplog.records[0].getMessage()
