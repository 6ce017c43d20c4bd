"""Summary rows: a model-written summary of every message of a conversation before ``upto_offset``.

Rows are only ever added; the newest coverage (largest ``upto_offset``) is the one in use, so two
workers that summarize the same range at once leave two equivalent rows and nothing breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import Summary

__all__ = ["SummaryRecord", "add_summary", "latest_summary"]

summaries = cast(Table, Summary.__table__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SummaryRecord:
    """One stored summary. It covers the messages with ``offset < upto_offset`` (equivalently
    ``id < upto_message_id``); ``upto_message_id`` is the first message it does NOT cover, a turn start."""

    id: int
    conversation_id: int
    upto_offset: int
    upto_message_id: int
    text: str
    token_count: int
    model: str | None
    created_at: datetime


def _record(row: Any) -> SummaryRecord:
    return SummaryRecord(
        id=int(row.id),
        conversation_id=int(row.conversation_id),
        upto_offset=int(row.upto_offset),
        upto_message_id=int(row.upto_message_id),
        text=row.text,
        token_count=int(row.token_count),
        model=row.model,
        created_at=row.created_at,
    )


async def latest_summary(conn: AsyncConnection, *, conversation_id: int) -> SummaryRecord | None:
    """The summary with the widest coverage, or None."""
    query = (
        select(summaries)
        .where(summaries.c.conversation_id == conversation_id)
        .order_by(summaries.c.upto_offset.desc(), summaries.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return _record(row) if row is not None else None


async def add_summary(
    conn: AsyncConnection,
    *,
    conversation_id: int,
    upto_offset: int,
    upto_message_id: int,
    text: str,
    token_count: int,
    model: str | None,
) -> SummaryRecord:
    """Store a summary covering every message before ``upto_offset`` / ``upto_message_id``."""
    now = datetime.now(UTC)
    values = dict(
        conversation_id=conversation_id,
        upto_offset=upto_offset,
        upto_message_id=upto_message_id,
        text=text,
        token_count=token_count,
        model=model,
        created_at=now,
    )
    new_id = (await conn.execute(summaries.insert().values(**values).returning(summaries.c.id))).scalar_one()
    return SummaryRecord(
        id=int(new_id),
        conversation_id=conversation_id,
        upto_offset=upto_offset,
        upto_message_id=upto_message_id,
        text=text,
        token_count=token_count,
        model=model,
        created_at=now,
    )
