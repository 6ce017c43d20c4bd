"""SQLite variant of the database outage: another process holds the database file's write lock
longer than the busy timeout, so writes fail with "database is locked". Turns interrupted by it
finish by themselves once the lock is released, each accepted message is answered once, and
``/healthz`` is degraded meanwhile, then ok. (PostgreSQL: ``test_db_outage.py``.)"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from botframework.testing import BotHarness, Step, wait_until
from tests.e2e.support import ChatClient

pytestmark = [pytest.mark.fault, pytest.mark.slow]

LOCK_S = 12.0
"""Longer than the 10 s busy timeout the engine sets, so writers give up."""


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _hold_write_lock(path: str, seconds: float, taken: threading.Event) -> None:
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        taken.set()
        threading.Event().wait(seconds)
        con.execute("COMMIT")
    finally:
        con.close()


async def test_a_locked_sqlite_file_delays_turns_but_loses_none(db_url: str, http: aiohttp.ClientSession) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    path = make_url(db_url).database
    assert path
    async with BotHarness(
        channel="websocket", channel_config={"identity": "none", "rate_limit_per_min": 1000}, db_url=db_url
    ) as bot:
        bot.model.default = lambda r: Step(text=f"echo: {r.messages[-1].text}", delay_s=1.0)
        clients = []
        for i in range(3):
            client = await ChatClient.connect(http, bot.base_url, bot.tenant, f"user{i}")
            await client.wait_for("history")
            clients.append(client)
        for i, client in enumerate(clients):
            await client.send("m1", f"before the lock {i}")
            await client.wait_for("accepted", "m1")
        taken = threading.Event()
        holder = asyncio.create_task(asyncio.to_thread(_hold_write_lock, path, LOCK_S, taken))
        await asyncio.to_thread(taken.wait, 10)

        async def degraded() -> bool:
            async with http.get(f"{bot.base_url}/healthz") as response:
                return bool((await response.json()).get("storage", {}).get("status") == "unavailable")

        await wait_until(degraded, timeout=LOCK_S, what="/healthz degraded while the file is locked")
        await holder

        async def answered() -> bool:
            return all(client.of("done", "m1") for client in clients)

        await wait_until(answered, timeout=30, what="every accepted message answered after the lock")
        await clients[0].send("m2", "after the lock")
        await clients[0].wait_for("done", "m2", timeout=15)

        async def ok() -> bool:
            async with http.get(f"{bot.base_url}/healthz") as response:
                return bool((await response.json()) == {"status": "ok"})

        await wait_until(ok, timeout=10, what="/healthz ok again")
        await asyncio.sleep(0.5)
        for client in clients:
            counts = Counter(f["reply_to"] for f in client.frames if f["type"] == "done")
            assert all(n == 1 for n in counts.values()), counts
            assert not client.ws.closed
            await client.close()
