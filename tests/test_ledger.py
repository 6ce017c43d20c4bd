"""The ledger writer across a database outage: rows are kept in memory, bounded, and written when
the database is back, with the time of the call; nothing is logged with a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from botframework.errors import ServerError, StorageError
from botframework.ledger import LedgerWriter
from botframework.models.base import Usage
from botframework.models.router import AttemptRecord
from storage.db import Database
from storage.tables import MODEL_CALLS


class FaultyDatabase(Database):
    """Writes fail like an unreachable server while ``down`` is set; ``writes`` counts attempts."""

    down = False
    writes = 0

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        self.writes += 1
        if self.down:
            raise StorageError(f"database write failed ({self.dialect}): connection refused (simulated outage)")
        async with super().write() as conn:
            yield conn


@pytest.fixture
async def faulty(db_url: str) -> AsyncIterator[FaultyDatabase]:
    database = FaultyDatabase(db_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


def attempt(n: int, *, tokens: int = 100, failed: bool = False) -> AttemptRecord:
    error = ServerError("boom", status=500) if failed else None
    return AttemptRecord(
        model_name="main",
        provider_model="gpt-x",
        attempt=n,
        outcome="server_error" if failed else "ok",
        error=error,
        usage=Usage(input_tokens=tokens, output_tokens=n),
        latency_ms=5,
        estimated_prompt_tokens=90,
    )


async def record(ledger: LedgerWriter, *records: AttemptRecord) -> None:
    for r in records:
        await ledger.record(r, tenant="acme", origin="websocket", conversation_id=None, turn_id="t1")


async def rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(select(MODEL_CALLS).order_by(MODEL_CALLS.c.id))).all())


async def test_rows_written_during_an_outage_arrive_when_the_database_is_back(
    faulty: FaultyDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    slept: list[float] = []
    back = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            faulty.down = False
            back.set()
        await asyncio.sleep(0)

    ledger = LedgerWriter(db=faulty, sleep=sleep, retry_delays_s=(0.5, 1.0))
    await record(ledger, attempt(1))
    faulty.down = True
    before = datetime.now(UTC)
    with caplog.at_level(logging.INFO, logger="botframework.ledger"):
        await record(ledger, attempt(2, failed=True, tokens=700), attempt(3))
        writes_during_outage = faulty.writes
        assert ledger.backlog == 2
        await asyncio.wait_for(back.wait(), 5)
        await asyncio.wait_for(ledger._drain, 5)  # type: ignore[arg-type]
    assert ledger.backlog == 0
    assert writes_during_outage == 2, "the second row joined the backlog without trying the dead database"
    assert slept == [0.5, 1.0, 1.0]
    stored = await rows(faulty)
    assert [(r.attempt, r.outcome, r.input_tokens) for r in stored] == [
        (1, "ok", 100),
        (2, "server_error", 700),
        (3, "ok", 100),
    ]
    assert all(r.created_at.replace(tzinfo=UTC) >= before.replace(microsecond=0) for r in stored[1:])
    assert "keeping rows in memory" in caplog.text and "2 buffered row(s) written" in caplog.text
    assert not any(r.exc_info for r in caplog.records), "a traceback in the log is a bug"
    await ledger.close()


async def test_the_backlog_is_bounded_and_counts_what_it_dropped(faulty: FaultyDatabase) -> None:
    async def never(_seconds: float) -> None:
        await asyncio.Event().wait()

    ledger = LedgerWriter(db=faulty, sleep=never, max_backlog=3)
    faulty.down = True
    await record(ledger, *(attempt(n) for n in range(1, 6)))
    assert (ledger.backlog, ledger.dropped) == (3, 2)
    faulty.down = False
    await ledger.close()
    assert [r.attempt for r in await rows(faulty)] == [3, 4, 5], "the newest rows were kept"


async def test_close_reports_rows_it_could_not_write(faulty: FaultyDatabase, caplog: pytest.LogCaptureFixture) -> None:
    ledger = LedgerWriter(db=faulty, retry_delays_s=(60.0,))
    faulty.down = True
    await record(ledger, attempt(1))
    with caplog.at_level(logging.ERROR, logger="botframework.ledger"):
        await ledger.close()
    assert "1 row(s) could not be written before shutdown" in caplog.text


def test_invalid_settings_are_refused(db_url: str) -> None:
    with pytest.raises(ValueError, match="max_backlog"):
        LedgerWriter(db=Database(db_url), max_backlog=0)
