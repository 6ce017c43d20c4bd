"""Queries behind held replies: replies an adapter hands out itself (a passive callback response).

A held reply is an ordinary pending delivery that the core does not send. The adapter claims parts
of it with a conditional update (``status = pending AND progress = what it read``), so of two
requests racing for the same reply exactly one wins, in this process or another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.states import DeliveryStatus
from storage.tables import DELIVERIES, INBOUND_EVENTS

__all__ = ["claim_delivery_parts", "reply_recorded_for_event"]

deliveries = DELIVERIES
events = INBOUND_EVENTS


async def reply_recorded_for_event(
    conn: AsyncConnection, *, tenant: str, channel: str, event_id: str
) -> tuple[str, bool] | None:
    """(turn id, whether its reply is recorded) of the turn answering an event; None for an unknown event.

    The event's turn is the one it belongs to now: a message steered into a running turn answers with it.
    """
    row = (
        await conn.execute(
            select(events.c.turn_id, deliveries.c.id)
            .select_from(events.outerjoin(deliveries, deliveries.c.turn_id == events.c.turn_id))
            .where(events.c.tenant == tenant, events.c.channel == channel, events.c.event_id == event_id)
        )
    ).first()
    if row is None:
        return None
    return str(row.turn_id), row.id is not None


async def claim_delivery_parts(
    conn: AsyncConnection, *, turn_id: str, expected_progress: int, parts: int, complete: bool
) -> bool:
    """Advance a pending delivery by ``parts`` if nobody else did since it was read; sent when ``complete``."""
    values: dict[str, Any] = {
        "progress": expected_progress + parts,
        "attempts": deliveries.c.attempts + 1,
        "last_error": None,
    }
    if complete:
        values["status"] = DeliveryStatus.SENT
        values["sent_at"] = datetime.now(UTC)
    result = await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.turn_id == turn_id,
            deliveries.c.status == DeliveryStatus.PENDING,
            deliveries.c.progress == expected_progress,
        )
        .values(**values)
    )
    return result.rowcount == 1
