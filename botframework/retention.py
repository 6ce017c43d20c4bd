"""Message retention: ``storage.retention_days`` enforced by ``serve`` and ``botframework db prune``."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from botframework.errors import StorageError
from storage.db import Database
from storage.retention import PruneCounts, prune_before

__all__ = ["PRUNE_EVERY_S", "prune", "run_retention"]

log = logging.getLogger("botframework.retention")

PRUNE_EVERY_S = 6 * 3600.0


async def prune(db: Database, *, days: int, now: datetime | None = None) -> PruneCounts:
    """Delete what is older than ``days`` days (see :mod:`storage.retention`)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    counts = await prune_before(db, cutoff)
    log.info(
        "retention (%d days): deleted %d turn(s), %d message(s), %d conversation(s)",
        days,
        counts.turns,
        counts.messages,
        counts.conversations,
    )
    return counts


async def run_retention(db: Database, *, days: int, every_s: float = PRUNE_EVERY_S) -> None:
    """Prune now and then every ``every_s`` seconds until cancelled; a database failure waits for the next round."""
    while True:
        try:
            await prune(db, days=days)
        except StorageError as exc:
            log.warning("retention: pruning failed, trying again in %.0f s: %s", every_s, exc)
        await asyncio.sleep(every_s)
