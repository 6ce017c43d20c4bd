"""Writes one ledger row per real model call. A failing write is logged and never breaks a reply."""

from __future__ import annotations

import logging

from botframework.metrics import Metrics
from botframework.models.router import AttemptRecord
from storage.db import Database
from storage.ledger import LedgerEntry, record_call

__all__ = ["LedgerWriter"]

log = logging.getLogger("botframework.ledger")


class LedgerWriter:
    def __init__(self, *, db: Database, metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics

    async def record(
        self,
        record: AttemptRecord,
        *,
        tenant: str,
        origin: str,
        conversation_id: int | None,
        turn_id: str | None,
        purpose: str = "turn",
    ) -> None:
        if self.metrics is not None:
            self.metrics.observe_model_call(record)
        entry = LedgerEntry(
            tenant=tenant,
            origin=origin,
            conversation_id=conversation_id,
            turn_id=turn_id,
            model=record.model_name,
            provider_model=record.provider_model,
            attempt=record.attempt,
            purpose=purpose,
            input_tokens=record.usage.input_tokens,
            output_tokens=record.usage.output_tokens,
            cached_tokens=record.usage.cached_tokens,
            latency_ms=record.latency_ms,
            outcome=record.outcome,
            error_kind=record.error.kind.value if record.error is not None else None,
        )
        try:
            async with self.db.write() as conn:
                await record_call(conn, entry)
        except Exception:
            log.exception(
                "ledger write failed for a %s call to %s (the reply is unaffected)",
                record.outcome,
                record.model_name,
            )
