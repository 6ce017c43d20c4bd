"""Delivery records: each part marked in flight before its vendor call and sent after it."""

from __future__ import annotations

import asyncio

from botframework.states import DeliveryStatus
from botframework.turn import Reply
from storage.conversations import get_or_create_conversation
from storage.db import Database
from storage.deliveries import (
    DeliveryJournal,
    create_delivery,
    delivery_for_turn,
    mark_delivery,
    mark_part_sending,
    mark_part_sent,
)
from storage.turns import create_turn


async def _delivery(db: Database, turn_id: str = "t1") -> int:
    async with db.write() as conn:
        cid = await get_or_create_conversation(conn, tenant="acme", channel="chat", key=f"k-{turn_id}")
        await create_turn(conn, turn_id=turn_id, conversation_id=cid, tenant="acme", origin="chat")
        return await create_delivery(conn, turn_id=turn_id, tenant="acme", channel="chat", reply=Reply(text="x"))


async def test_a_part_in_flight_is_what_a_restart_finds(db: Database) -> None:
    did = await _delivery(db)
    journal = DeliveryJournal(db=db, delivery_id=did)
    await journal.sending(0)
    await journal.sent(0)
    await journal.sending(1)  # the process dies here
    async with db.read() as conn:
        record = await delivery_for_turn(conn, "t1")
    assert record is not None and record.progress == 1
    assert record.in_flight is not None and record.in_flight.index == 1
    assert record.in_flight.since.tzinfo is not None


async def test_a_part_sent_clears_the_in_flight_mark_and_never_moves_progress_back(db: Database) -> None:
    did = await _delivery(db)
    async with db.write() as conn:
        await mark_part_sending(conn, did, 2)
        await mark_part_sent(conn, did, 2)
        await mark_part_sent(conn, did, 0)  # a late writer for an earlier part
    async with db.read() as conn:
        record = await delivery_for_turn(conn, "t1")
    assert record is not None and record.progress == 3 and record.in_flight is None


async def test_resending_a_part_in_flight_keeps_the_first_attempts_time(db: Database) -> None:
    """A second crash must still look back to the first attempt, which may be the one that arrived."""
    did = await _delivery(db)
    async with db.write() as conn:
        await mark_part_sending(conn, did, 1)
    async with db.read() as conn:
        first = await delivery_for_turn(conn, "t1")
    await asyncio.sleep(0.05)
    async with db.write() as conn:
        await mark_part_sending(conn, did, 1)
    async with db.read() as conn:
        again = await delivery_for_turn(conn, "t1")
    assert first is not None and again is not None
    assert first.in_flight is not None and again.in_flight == first.in_flight


async def test_a_failed_attempt_keeps_the_part_in_flight_and_sent_clears_it(db: Database) -> None:
    """A vendor error (a timeout) does not say the part did not arrive: the next attempt checks."""
    did = await _delivery(db)
    async with db.write() as conn:
        await mark_part_sending(conn, did, 0)
        await mark_delivery(conn, did, status=DeliveryStatus.PENDING, error="timeout", progress=0)
    async with db.read() as conn:
        failed = await delivery_for_turn(conn, "t1")
    assert failed is not None and failed.in_flight is not None and failed.in_flight.index == 0
    async with db.write() as conn:
        await mark_delivery(conn, did, status=DeliveryStatus.SENT)
    async with db.read() as conn:
        sent = await delivery_for_turn(conn, "t1")
    assert sent is not None and sent.in_flight is None


async def test_progress_recorded_past_the_part_in_flight_clears_it(db: Database) -> None:
    """The vendor took the part but its record failed: the attempt's error carries the progress."""
    did = await _delivery(db)
    async with db.write() as conn:
        await mark_part_sending(conn, did, 1)
        await mark_delivery(conn, did, status=DeliveryStatus.PENDING, error="database blip", progress=2)
    async with db.read() as conn:
        record = await delivery_for_turn(conn, "t1")
    assert record is not None and record.progress == 2 and record.in_flight is None
