"""The recovery loop: work a database failure interrupted resumes by itself when the database is back.

An accepted message is stored before it is acknowledged, so whatever a failure interrupts is still
in the database: an open turn, or a pending delivery. At start the runtime re-scans both; this
loop does the same *while the process runs*, without a restart:

- when nothing has happened for ``idle_probe_s``, it probes the database anyway, so an outage
  shows on ``/healthz`` even when no traffic would have met it;
- while storage is down (:class:`~botframework.storage_health.StorageHealth`), it probes the
  database with a cheap query, with backoff (``probe_delays_s``, the last one repeated), so storage
  is seen up again within about a second of the server answering, even when no request arrives;
- after a failure was reported (:meth:`RecoveryLoop.interrupted`: a turn gave up retrying, a
  delivery could not be recorded, a background task hit the database) and storage is up, it runs
  the re-scan (``rescan``: open turns back to the scheduler, pending replies sent again), retrying
  with backoff until one succeeds.

Re-running is safe: the scheduler ignores a turn it already runs or queues, a turn that already
has its answer is not asked again, and a delivery already under way is not started twice.
Each failure is one log line with its kind and the next retry; never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from botframework.errors import StorageError
from botframework.storage_health import describe
from storage.db import Database

__all__ = ["RecoveryLoop"]

log = logging.getLogger("botframework.recovery")


class RecoveryLoop:
    """Probe a down database, and re-scan interrupted work once it answers."""

    def __init__(
        self,
        *,
        db: Database,
        rescan: Callable[[], Awaitable[None]],
        probe_delays_s: tuple[float, ...] = (0.2, 0.5, 1.0),
        rescan_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0),
        idle_probe_s: float = 10.0,
    ) -> None:
        self._db = db
        self._rescan = rescan
        self._probe_delays_s = probe_delays_s
        self._rescan_delays_s = rescan_delays_s
        self.idle_probe_s = idle_probe_s
        """Probe the database after this long without activity (it sees an outage with no traffic)."""
        self._wake = asyncio.Event()
        self._pending = False
        self.rescans = 0
        """Re-scans that completed (for tests and logs)."""

    def interrupted(self) -> None:
        """Some accepted work was left unfinished by a storage failure: re-scan once storage is up."""
        self._pending = True
        self._wake.set()

    async def _probe(self) -> bool:
        try:
            async with self._db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except StorageError:
            return False
        return True

    async def _wait_until_up(self) -> None:
        attempt = 0
        while not self._db.health.ok:
            delay = self._probe_delays_s[min(attempt, len(self._probe_delays_s) - 1)]
            if await self._db.health.wait_up(delay):
                return  # some other operation found it up
            attempt += 1
            if await self._probe():
                return

    async def run(self) -> None:
        """Run until cancelled (the runtime's stop)."""
        self._db.health.on_down.append(self.interrupted)  # an outage interrupts whatever was in flight
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_probe_s):  # not wait_for: it can swallow a cancel
                        await self._wake.wait()
                except TimeoutError:
                    await self._probe()  # a failure marks storage down, which wakes this loop
                    continue
                self._wake.clear()
                await self._wait_until_up()
                await self._rescan_with_backoff()
        finally:
            self._db.health.on_down.remove(self.interrupted)

    async def _rescan_with_backoff(self) -> None:
        attempt = 0
        while self._pending:
            self._pending = False
            try:
                await self._rescan()
            except StorageError as exc:
                self._pending = True
                delay = self._rescan_delays_s[min(attempt, len(self._rescan_delays_s) - 1)]
                attempt += 1
                log.warning("recovery re-scan failed (%s); retry %d in %ss", describe(exc), attempt, delay)
                await asyncio.sleep(delay)
                await self._wait_until_up()
            else:
                self.rescans += 1
