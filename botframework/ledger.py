"""Writes one ledger row per real model call, and loses none to a database outage.

A row is written at once. When that fails (the database is down), the row is kept in a bounded
in-memory backlog, and rows that follow join the backlog without trying, so no turn waits on a dead
database. A background task writes the backlog, oldest first, in batches of one transaction each,
with backoff, until it is empty; :meth:`LedgerWriter.close` tries once more at shutdown. Rows keep
the time of the call, not of the write. A failing write is logged (one line when the outage starts,
one when the backlog is written) and never breaks a reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from botframework.metrics import Metrics
from botframework.models.router import AttemptRecord
from storage.db import Database
from storage.ledger import LedgerEntry, record_call

__all__ = ["LedgerWriter"]

log = logging.getLogger("botframework.ledger")

_BATCH = 200


class LedgerWriter:
    def __init__(
        self,
        *,
        db: Database,
        metrics: Metrics | None = None,
        max_backlog: int = 10_000,
        retry_delays_s: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``max_backlog`` rows are kept while the database is down (beyond it the oldest are
        dropped and counted in ``dropped``); the backlog is retried after each of
        ``retry_delays_s`` in turn, then after the last one until it is written."""
        if max_backlog < 1 or not retry_delays_s:
            raise ValueError(f"max_backlog must be at least 1 and retry_delays_s non-empty, got {max_backlog}")
        self.db = db
        self.metrics = metrics
        self.max_backlog = max_backlog
        self.retry_delays_s = tuple(retry_delays_s)
        self.dropped = 0
        """Rows lost because the backlog was full (a very long outage)."""
        self._sleep = sleep
        self._backlog: deque[LedgerEntry] = deque()
        self._drain: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Rows waiting for the database."""
        return len(self._backlog)

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
            created_at=datetime.now(UTC),
        )
        if self._backlog:
            self._keep(entry)
            return
        try:
            async with self.db.write() as conn:
                await record_call(conn, entry)
        except Exception as exc:
            log.warning(
                "ledger write failed (%s: %s); keeping rows in memory until the database takes them",
                type(exc).__name__,
                exc,
            )
            self._keep(entry)

    def _keep(self, entry: LedgerEntry) -> None:
        if len(self._backlog) >= self.max_backlog:
            self._backlog.popleft()
            if not self.dropped:
                log.error("ledger backlog full (%d rows): dropping the oldest rows", self.max_backlog)
            self.dropped += 1
        self._backlog.append(entry)
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._drain_backlog())

    async def flush(self) -> bool:
        """Write the backlog now; True when it is empty afterwards."""
        while self._backlog:
            batch = [self._backlog[i] for i in range(min(_BATCH, len(self._backlog)))]
            try:
                async with self.db.write() as conn:
                    for entry in batch:
                        await record_call(conn, entry)
            except Exception as exc:
                log.debug("ledger backlog write failed: %s: %s", type(exc).__name__, exc)
                return False
            written = {id(e) for e in batch}
            while self._backlog and id(self._backlog[0]) in written:
                self._backlog.popleft()
        return True

    async def _drain_backlog(self) -> None:
        attempt = 0
        while self._backlog:
            await self._sleep(self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)])
            attempt += 1
            size = len(self._backlog)
            if await self.flush():
                log.info("ledger: %d buffered row(s) written after %d retr(ies)", size, attempt)

    async def close(self) -> None:
        """Stop retrying in the background and write what is left, once."""
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
        if self._backlog and not await self.flush():
            log.error("ledger: %d row(s) could not be written before shutdown and are lost", len(self._backlog))
