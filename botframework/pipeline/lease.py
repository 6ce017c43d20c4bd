"""Gateway leases: one process at a time holds a channel's long-lived outgoing connection.

A lease is a PostgreSQL session advisory lock taken on a connection of its own. The server releases
it the moment that session ends, so when the holder dies (SIGKILL, a lost machine: the TCP session
drops) another process's next try, every ``retry_s``, gets it. The holder checks its session every
``retry_s`` too: when the session is gone (database restart, network partition) the lock is gone
with it, so the holder stops its adapter before anyone else can start one, then competes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

__all__ = ["GatewayLease", "lease_key"]

log = logging.getLogger("botframework.pipeline.lease")


def lease_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class GatewayLease:
    """Runs ``on_acquired`` while this process holds ``name``'s lock and ``on_lost`` when it stops holding it."""

    def __init__(
        self,
        *,
        dsn: str,
        name: str,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        retry_s: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.name = name
        self.key = lease_key(name)
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self.retry_s = retry_s
        self.held = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"lease:{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.held:
            await self._release()

    async def _release(self) -> None:
        self.held = False
        try:
            await self._on_lost()
        except Exception as exc:  # stopping an adapter must not keep the lease loop from going on
            log.warning("stopping %s after losing its lease failed: %s: %s", self.name, type(exc).__name__, exc)

    async def _run(self) -> None:
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                while True:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key, timeout=5):
                        break
                    await asyncio.sleep(self.retry_s)
                self.held = True
                log.info("this process now holds %s", self.name)
                await self._on_acquired()
                while True:
                    await asyncio.sleep(self.retry_s)
                    await conn.fetchval("SELECT 1", timeout=max(2.0, self.retry_s * 2))
            except Exception as exc:  # any failure of this session (asyncpg raises several kinds)
                if self.held:
                    log.warning("lost the lease on %s (%s: %s); stopping it here", self.name, type(exc).__name__, exc)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            if self.held:
                await self._release()
            await asyncio.sleep(self.retry_s)
