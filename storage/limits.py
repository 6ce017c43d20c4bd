"""What the limits read from the database (:class:`botframework.limits.LimitsStore`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select

from botframework.states import TurnStatus
from storage.db import Database
from storage.tables import CONVERSATIONS, INBOUND_EVENTS, MODEL_CALLS, TURNS

__all__ = ["SqlLimitsStore"]

_OPEN = tuple(s.value for s in TurnStatus if s.is_open)
_OPEN_TURNS = (
    select(func.count())
    .select_from(TURNS.join(CONVERSATIONS, CONVERSATIONS.c.id == TURNS.c.conversation_id))
    .where(
        CONVERSATIONS.c.tenant == bindparam("b_tenant"),
        CONVERSATIONS.c.channel == bindparam("b_channel"),
        CONVERSATIONS.c.key == bindparam("b_key"),
        TURNS.c.status.in_(_OPEN),
    )
)


class SqlLimitsStore:
    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def open_turns(self, *, tenant: str, channel: str, conversation_key: str) -> int:
        params = {"b_tenant": tenant, "b_channel": channel, "b_key": conversation_key}
        async with self.db.read() as conn:
            return int((await conn.execute(_OPEN_TURNS, params)).scalar_one())

    async def tokens_today(self, *, tenant: str, channel: str | None = None, user_id: str | None = None) -> int:
        calls = MODEL_CALLS
        total = func.coalesce(func.sum(calls.c.input_tokens + calls.c.output_tokens), 0)
        today = datetime.now(UTC).date()
        query = select(total).where(calls.c.tenant == tenant, calls.c.day == today)
        if user_id is not None:
            started = (
                select(INBOUND_EVENTS.c.turn_id)
                .where(
                    INBOUND_EVENTS.c.tenant == tenant,
                    INBOUND_EVENTS.c.channel == channel,
                    INBOUND_EVENTS.c.user_id == user_id,
                    # a turn that started late yesterday may have called the model today
                    INBOUND_EVENTS.c.received_at
                    >= datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=1),
                )
                .scalar_subquery()
            )
            query = query.where(calls.c.turn_id.in_(started))
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
