"""Deleting what is older than the retention period (``storage.retention_days``).

Whole finished turns go, with their messages, the inbound events they answered and their replies,
so a conversation's remaining history never holds half a turn (a tool call without its result).
Summaries older than the cutoff go too, and conversations left with nothing. Open turns are kept
whatever their age (they are still to be answered). The model-call ledger holds no message text
and is kept: it is the billing record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, select

from botframework.states import TurnStatus
from storage.db import Database
from storage.tables import CONVERSATIONS, DELIVERIES, INBOUND_EVENTS, MESSAGES, SUMMARIES, TURNS, WEBHOOK_NONCES

__all__ = ["PruneCounts", "prune_before"]

_OPEN = tuple(s.value for s in TurnStatus if s.is_open)


@dataclass(frozen=True, kw_only=True)
class PruneCounts:
    turns: int
    messages: int
    events: int
    conversations: int


async def prune_before(db: Database, cutoff: datetime) -> PruneCounts:
    """Delete finished turns created before ``cutoff`` and everything that belongs to them."""
    old = select(TURNS.c.id).where(TURNS.c.created_at < cutoff, TURNS.c.status.not_in(_OPEN)).scalar_subquery()
    async with db.write() as conn:
        messages = await conn.execute(delete(MESSAGES).where(MESSAGES.c.turn_id.in_(old)))
        events = await conn.execute(delete(INBOUND_EVENTS).where(INBOUND_EVENTS.c.turn_id.in_(old)))
        await conn.execute(delete(DELIVERIES).where(DELIVERIES.c.turn_id.in_(old)))
        await conn.execute(delete(SUMMARIES).where(SUMMARIES.c.created_at < cutoff))
        turns = await conn.execute(delete(TURNS).where(TURNS.c.created_at < cutoff, TURNS.c.status.not_in(_OPEN)))
        empty = and_(
            CONVERSATIONS.c.updated_at < cutoff,
            ~exists().where(TURNS.c.conversation_id == CONVERSATIONS.c.id),
            ~exists().where(MESSAGES.c.conversation_id == CONVERSATIONS.c.id),
        )
        conversations = await conn.execute(delete(CONVERSATIONS).where(empty))
        await conn.execute(delete(WEBHOOK_NONCES).where(WEBHOOK_NONCES.c.expires_at < cutoff))
    return PruneCounts(
        turns=int(turns.rowcount or 0),
        messages=int(messages.rowcount or 0),
        events=int(events.rowcount or 0),
        conversations=int(conversations.rowcount or 0),
    )
