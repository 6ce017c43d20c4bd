"""Outbound deliveries: the reply of a turn, recorded before it is sent and marked once sent.

A reply goes out as parts (chunks). Each part is recorded as in flight (``sending_at``) before its
vendor call and as sent (``progress`` + 1, ``sending_at`` cleared) after it, so a process that dies
between the two leaves a record that says which part may or may not have arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.channel import InFlightPart
from botframework.states import DeliveryStatus
from botframework.turn import Reply
from storage.db import Database
from storage.tables import CONVERSATIONS, DELIVERIES, TURNS

__all__ = [
    "DeliveryJournal",
    "DeliveryRecord",
    "create_delivery",
    "delivery_for_turn",
    "mark_delivery",
    "mark_part_sending",
    "mark_part_sent",
    "pending_deliveries",
]

deliveries = DELIVERIES
turns = TURNS
conversations = CONVERSATIONS


@dataclass(frozen=True, kw_only=True)
class DeliveryRecord:
    id: int
    turn_id: str
    tenant: str
    channel: str
    conversation_key: str
    status: DeliveryStatus
    attempts: int
    reply: Reply
    progress: int = 0
    sending_at: datetime | None = None
    """When part ``progress`` was handed to the vendor by an attempt that never recorded the outcome."""

    @property
    def in_flight(self) -> InFlightPart | None:
        return None if self.sending_at is None else InFlightPart(index=self.progress, since=self.sending_at)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _record(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(row.id),
        turn_id=row.turn_id,
        tenant=row.tenant,
        channel=row.channel,
        conversation_key=row.key,
        status=DeliveryStatus(row.status),
        attempts=int(row.attempts),
        progress=int(row.progress or 0),
        sending_at=_aware(row.sending_at),
        reply=Reply(
            text=row.text,
            model=row.model,
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            error_kind=Reply.kind_from(row.error_kind),
        ),
    )


_INSERT = deliveries.insert().returning(deliveries.c.id)
_MARKS: dict[tuple[bool, bool], Any] = {}


def _mark_statement(*, progress: bool, sent: bool) -> Any:
    """The UPDATE of :func:`mark_delivery` for this shape, built once."""
    key = (progress, sent)
    if key not in _MARKS:
        values: dict[str, Any] = {
            "status": bindparam("b_status", type_=deliveries.c.status.type),
            "attempts": deliveries.c.attempts + 1,
            "last_error": bindparam("b_error", type_=deliveries.c.last_error.type),
        }
        if progress:
            new_progress = bindparam("b_progress", type_=deliveries.c.progress.type)
            values["progress"] = new_progress
            # Progress past the part in flight says it arrived: nothing is in flight any more.
            values["sending_at"] = case((deliveries.c.progress < new_progress, None), else_=deliveries.c.sending_at)
        if sent:
            values["sent_at"] = bindparam("b_sent", type_=deliveries.c.sent_at.type)
            values["sending_at"] = None
        _MARKS[key] = update(deliveries).where(deliveries.c.id == bindparam("b_id")).values(**values)
    return _MARKS[key]


def _query() -> Any:
    return (
        select(deliveries, conversations.c.key)
        .join(turns, turns.c.id == deliveries.c.turn_id)
        .join(conversations, conversations.c.id == turns.c.conversation_id)
    )


async def create_delivery(conn: AsyncConnection, *, turn_id: str, tenant: str, channel: str, reply: Reply) -> int:
    result = await conn.execute(
        _INSERT,
        dict(
            turn_id=turn_id,
            tenant=tenant,
            channel=channel,
            status=DeliveryStatus.PENDING,
            text=reply.text,
            model=reply.model,
            error_kind=str(reply.error_kind) if reply.error_kind is not None else None,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            attempts=0,
            created_at=datetime.now(UTC),
        ),
    )
    return int(result.scalar_one())


async def delivery_for_turn(conn: AsyncConnection, turn_id: str) -> DeliveryRecord | None:
    row = (await conn.execute(_query().where(deliveries.c.turn_id == turn_id))).first()
    return _record(row) if row is not None else None


async def mark_delivery(
    conn: AsyncConnection,
    delivery_id: int,
    *,
    status: DeliveryStatus,
    error: str | None = None,
    progress: int | None = None,
) -> None:
    """Record one delivery attempt: ``sent``, ``failed`` (final) or ``pending`` (will be tried again),
    and how many parts have gone out so far."""
    sent = status is DeliveryStatus.SENT
    params: dict[str, Any] = {"b_id": delivery_id, "b_status": status, "b_error": error}
    if progress is not None:
        params["b_progress"] = progress
    if sent:
        params["b_sent"] = datetime.now(UTC)
    await conn.execute(_mark_statement(progress=progress is not None, sent=sent), params)


async def mark_part_sending(conn: AsyncConnection, delivery_id: int, index: int) -> None:
    """Part ``index`` is about to go to the vendor. Written (and committed) before the vendor call.

    A part already in flight keeps its first ``sending_at``: a vendor check after another crash must
    look back to the earliest attempt that may have delivered it."""
    await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            or_(deliveries.c.progress != index, deliveries.c.sending_at.is_(None)),
        )
        .values(progress=index, sending_at=datetime.now(UTC))
    )


async def mark_part_sent(conn: AsyncConnection, delivery_id: int, index: int) -> None:
    """The vendor accepted part ``index``: a later attempt starts after it, with nothing in flight."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.progress <= index)
        .values(progress=index + 1, sending_at=None)
    )


class DeliveryJournal:
    """The core's :class:`~botframework.channel.PartJournal` for one delivery row: each mark is its own
    committed transaction, so it survives the process that wrote it."""

    def __init__(self, *, db: Database, delivery_id: int) -> None:
        self._db = db
        self._delivery_id = delivery_id

    async def sending(self, index: int) -> None:
        async with self._db.write() as conn:
            await mark_part_sending(conn, self._delivery_id, index)

    async def sent(self, index: int) -> None:
        async with self._db.write() as conn:
            await mark_part_sent(conn, self._delivery_id, index)


async def pending_deliveries(
    conn: AsyncConnection,
    *,
    tenant: str | None = None,
    channel: str | None = None,
    conversation_key: str | None = None,
) -> list[DeliveryRecord]:
    query = _query().where(deliveries.c.status == DeliveryStatus.PENDING)
    if tenant is not None:
        query = query.where(deliveries.c.tenant == tenant)
    if channel is not None:
        query = query.where(deliveries.c.channel == channel)
    if conversation_key is not None:
        query = query.where(conversations.c.key == conversation_key)
    return [_record(r) for r in (await conn.execute(query.order_by(deliveries.c.id))).all()]
