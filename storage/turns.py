"""Turns and the inbound events they answer: dedupe, steering (merge), recovery after a restart."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, func, literal_column, null, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.inputs import clean_text
from botframework.states import TurnStatus
from botframework.turn import Turn
from storage.tables import CONVERSATIONS, INBOUND_EVENTS, MESSAGES, TURNS

__all__ = [
    "EventRecord",
    "IngestLookup",
    "TurnRecord",
    "claim_queued_turn",
    "create_turn",
    "events_of_turn",
    "find_event",
    "ingest_lookup",
    "insert_event",
    "merge_turns",
    "open_turns",
    "recent_transcript",
    "set_turn_status",
    "start_turn",
    "turn_record",
]

log = logging.getLogger(__name__)

turns = TURNS
events = INBOUND_EVENTS
conversations = CONVERSATIONS
messages = MESSAGES

OPEN_STATUSES = tuple(s.value for s in TurnStatus if s.is_open)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class TurnRecord:
    id: str
    conversation_id: int
    tenant: str
    origin: str
    status: TurnStatus
    channel: str
    conversation_key: str


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    event_id: str
    turn_id: str
    user_id: str
    reply_target: dict[str, Any]
    message_id: int


def _turn_query() -> Any:
    return select(
        turns.c.id,
        turns.c.conversation_id,
        turns.c.tenant,
        turns.c.origin,
        turns.c.status,
        conversations.c.channel,
        conversations.c.key,
    ).join(conversations, conversations.c.id == turns.c.conversation_id)


_TURN_BY_ID = _turn_query().where(turns.c.id == bindparam("b_turn"))
_INSERT_TURN = turns.insert()
_INSERT_EVENT = events.insert()
_MARK_RUNNING = update(turns).where(turns.c.id == bindparam("b_turn")).values(status=TurnStatus.RUNNING)
_CLAIM_QUEUED = (
    update(turns)
    .where(turns.c.id == bindparam("b_turn"), turns.c.status == TurnStatus.QUEUED)
    .values(status=TurnStatus.RUNNING)
)
_SET_STATUS = (
    update(turns)
    .where(turns.c.id == bindparam("b_turn"))
    .values(
        status=bindparam("b_status", type_=turns.c.status.type),
        finished_at=bindparam("b_finished", type_=turns.c.finished_at.type),
    )
)
_INGEST_LOOKUP = union_all(
    select(literal_column("'e'").label("kind"), events.c.turn_id, events.c.conversation_id.label("id")).where(
        events.c.tenant == bindparam("b_tenant"),
        events.c.channel == bindparam("b_channel"),
        events.c.event_id == bindparam("b_event"),
    ),
    select(literal_column("'c'").label("kind"), cast(null(), String).label("turn_id"), conversations.c.id).where(
        conversations.c.tenant == bindparam("b_tenant"),
        conversations.c.channel == bindparam("b_channel"),
        conversations.c.key == bindparam("b_key"),
    ),
    select(literal_column("'q'").label("kind"), cast(null(), String).label("turn_id"), func.count())
    .select_from(turns.join(conversations, conversations.c.id == turns.c.conversation_id))
    .where(
        conversations.c.tenant == bindparam("b_tenant"),
        conversations.c.channel == bindparam("b_channel"),
        conversations.c.key == bindparam("b_key"),
        turns.c.status.in_(OPEN_STATUSES),
    ),
)
"""The event (if already accepted), the conversation (if it exists) and how many of its turns are
open (the queue limit): one round trip per ingest."""


def _turn(row: Any) -> TurnRecord:
    return TurnRecord(
        id=row.id,
        conversation_id=int(row.conversation_id),
        tenant=row.tenant,
        origin=row.origin,
        status=TurnStatus(row.status),
        channel=row.channel,
        conversation_key=row.key,
    )


async def create_turn(conn: AsyncConnection, *, turn_id: str, conversation_id: int, tenant: str, origin: str) -> None:
    await conn.execute(
        _INSERT_TURN,
        dict(
            id=turn_id,
            conversation_id=conversation_id,
            tenant=tenant,
            origin=origin,
            status=TurnStatus.QUEUED,
            created_at=_now(),
        ),
    )


async def turn_record(conn: AsyncConnection, turn_id: str) -> TurnRecord | None:
    row = (await conn.execute(_TURN_BY_ID, {"b_turn": turn_id})).first()
    return _turn(row) if row is not None else None


async def start_turn(conn: AsyncConnection, turn_id: str) -> TurnRecord | None:
    """The turn as stored, marked running if it is open (call in a write transaction).

    The record keeps the status read *before* the update: ``QUEUED`` means the turn never ran, so
    its only stored messages are the user's.
    """
    record = await turn_record(conn, turn_id)
    if record is not None and record.status.is_open:
        await conn.execute(_MARK_RUNNING, {"b_turn": turn_id})
    return record


async def claim_queued_turn(conn: AsyncConnection, turn_id: str) -> bool:
    """Mark the turn running if it is still queued (never ran); False if it is not (anymore)."""
    result = await conn.execute(_CLAIM_QUEUED, {"b_turn": turn_id})
    return bool(result.rowcount == 1)


async def set_turn_status(conn: AsyncConnection, turn_id: str, status: TurnStatus) -> None:
    finished = None if status.is_open else _now()
    await conn.execute(_SET_STATUS, {"b_turn": turn_id, "b_status": status, "b_finished": finished})


async def open_turns(conn: AsyncConnection) -> list[TurnRecord]:
    """Turns accepted but not finished (after a crash), oldest first."""
    query = _turn_query().where(turns.c.status.in_(OPEN_STATUSES)).order_by(turns.c.created_at, turns.c.id)
    return [_turn(r) for r in (await conn.execute(query)).all()]


async def find_event(conn: AsyncConnection, *, tenant: str, channel: str, event_id: str) -> tuple[str, int] | None:
    """(turn_id, conversation_id) of an event already accepted, or None."""
    row = (
        await conn.execute(
            select(events.c.turn_id, events.c.conversation_id).where(
                events.c.tenant == tenant, events.c.channel == channel, events.c.event_id == event_id
            )
        )
    ).first()
    return (row.turn_id, int(row.conversation_id)) if row is not None else None


@dataclass(frozen=True, kw_only=True)
class IngestLookup:
    event: tuple[str, int] | None
    """``find_event``: (turn_id, conversation_id) of the event if it was accepted before."""
    conversation_id: int | None
    """The conversation of the key, if it exists."""
    open_turns: int
    """Turns of that conversation accepted and not finished."""


async def ingest_lookup(conn: AsyncConnection, *, tenant: str, channel: str, event_id: str, key: str) -> IngestLookup:
    """What ingesting an event needs to know before writing, in one round trip."""
    event: tuple[str, int] | None = None
    conversation_id: int | None = None
    waiting = 0
    params = {"b_tenant": tenant, "b_channel": channel, "b_event": event_id, "b_key": key}
    for row in await conn.execute(_INGEST_LOOKUP, params):
        if row.kind == "e":
            event = (row.turn_id, int(row.id))
        elif row.kind == "c":
            conversation_id = int(row.id)
        else:
            waiting = int(row.id or 0)
    return IngestLookup(event=event, conversation_id=conversation_id, open_turns=waiting)


async def insert_event(
    conn: AsyncConnection, *, turn: Turn, conversation_id: int, message_id: int, turn_id: str
) -> None:
    """Record an accepted event; the unique (tenant, channel, event_id) constraint backs the dedupe."""
    await conn.execute(
        _INSERT_EVENT,
        dict(
            tenant=turn.tenant,
            channel=turn.channel,
            event_id=turn.event_id,
            conversation_id=conversation_id,
            message_id=message_id,
            turn_id=turn_id,
            user_id=turn.user_id,
            reply_target=dict(turn.reply_target),
            received_at=turn.received_at,
        ),
    )


async def events_of_turn(conn: AsyncConnection, turn_id: str) -> list[EventRecord]:
    """The events a turn answers, in arrival order (the first started the turn)."""
    rows = (
        await conn.execute(
            select(
                events.c.event_id,
                events.c.turn_id,
                events.c.user_id,
                events.c.reply_target,
                events.c.message_id,
            )
            .where(events.c.turn_id == turn_id)
            .order_by(events.c.id)
        )
    ).all()
    return [
        EventRecord(
            event_id=r.event_id,
            turn_id=r.turn_id,
            user_id=r.user_id,
            reply_target=dict(r.reply_target or {}),
            message_id=int(r.message_id),
        )
        for r in rows
    ]


async def merge_turns(conn: AsyncConnection, *, into: str, merged: list[str]) -> None:
    """Steering: queued turns join the running one; their messages stop being turn starts."""
    if not merged:
        return
    await conn.execute(update(messages).where(messages.c.turn_id.in_(merged)).values(turn_id=into, turn_start=False))
    await conn.execute(update(events).where(events.c.turn_id.in_(merged)).values(turn_id=into))
    await conn.execute(update(turns).where(turns.c.id.in_(merged)).values(status=TurnStatus.MERGED, finished_at=_now()))


async def recent_transcript(conn: AsyncConnection, *, conversation_id: int, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` user/assistant texts, oldest first, with the event id of user messages."""
    query = (
        select(messages.c.role, messages.c.content, messages.c.tool_calls, events.c.event_id)
        .outerjoin(events, events.c.message_id == messages.c.id)
        .where(messages.c.conversation_id == conversation_id, messages.c.role.in_(("user", "assistant")))
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    out = []
    for row in reversed((await conn.execute(query)).all()):
        try:
            text = clean_text("".join(p.get("text", "") for p in (row.content or []) if p.get("type") == "text"))
        except (AttributeError, TypeError) as exc:  # a row no version of this code wrote; never fatal
            log.warning(
                "transcript of conversation %s: skipping a %s message with unreadable content (%s)",
                conversation_id,
                row.role,
                exc,
            )
            continue
        if row.role == "assistant" and not text:
            continue
        out.append({"role": row.role, "text": text, "event_id": row.event_id})
    return out
