"""The model-call ledger: one row per real model call, summarized per tenant, model, outcome and day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import MODEL_CALLS

__all__ = ["LedgerEntry", "UsageRow", "record_call", "usage_summary"]

calls = MODEL_CALLS


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    tenant: str
    origin: str
    conversation_id: int | None
    turn_id: str | None
    model: str
    provider_model: str
    attempt: int
    purpose: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    latency_ms: int
    outcome: str
    error_kind: str | None
    created_at: datetime | None = None
    """When the call happened (a row written late, after a database outage, keeps it); now if None."""


@dataclass(frozen=True, kw_only=True)
class UsageRow:
    tenant: str
    model: str
    outcome: str
    calls: int
    input_tokens: int
    output_tokens: int
    day: str


_INSERT = calls.insert()


async def record_call(conn: AsyncConnection, entry: LedgerEntry) -> None:
    now = entry.created_at or datetime.now(UTC)
    await conn.execute(
        _INSERT,
        dict(
            tenant=entry.tenant,
            origin=entry.origin,
            conversation_id=entry.conversation_id,
            turn_id=entry.turn_id,
            model=entry.model,
            provider_model=entry.provider_model,
            attempt=entry.attempt,
            purpose=entry.purpose,
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cached_tokens=entry.cached_tokens,
            latency_ms=entry.latency_ms,
            outcome=entry.outcome,
            error_kind=entry.error_kind,
            created_at=now,
            day=now.date(),
        ),
    )


async def usage_summary(conn: AsyncConnection, *, tenant: str | None = None) -> list[UsageRow]:
    query = select(
        calls.c.tenant,
        calls.c.model,
        calls.c.outcome,
        calls.c.day,
        func.count().label("calls"),
        func.coalesce(func.sum(calls.c.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(calls.c.output_tokens), 0).label("output_tokens"),
    ).group_by(calls.c.tenant, calls.c.model, calls.c.outcome, calls.c.day)
    if tenant is not None:
        query = query.where(calls.c.tenant == tenant)
    query = query.order_by(calls.c.day, calls.c.tenant, calls.c.model, calls.c.outcome)
    rows = []
    for r in (await conn.execute(query)).all():
        day = r.day.isoformat() if isinstance(r.day, date) else str(r.day)
        rows.append(
            UsageRow(
                tenant=r.tenant,
                model=r.model,
                outcome=r.outcome,
                calls=int(r.calls),
                input_tokens=int(r.input_tokens),
                output_tokens=int(r.output_tokens),
                day=day,
            )
        )
    return rows
