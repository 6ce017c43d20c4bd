"""The one-hop aiosqlite cursor (storage.sqlite_driver): same results, errors and transactions as
SQLAlchemy's stock adapter, one call to aiosqlite's thread per statement."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import text

from botframework.errors import StorageError
from storage.db import Database
from storage.sqlite_driver import sqlite_dbapi


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'one-hop.db'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"))
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls queued to aiosqlite's thread, by the function's name."""
    seen: Counter[str] = Counter()
    original = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen[getattr(fn, "__name__", "?")] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return seen


def test_the_engine_uses_it() -> None:
    assert sqlite_dbapi() is not None
    db = Database("sqlite+aiosqlite:///:memory:")
    assert type(db.engine.dialect.dbapi).__name__ == "OneHopDbapi"


async def test_rows_rowcount_lastrowid_and_returning(sqlite_db: Database) -> None:
    async with sqlite_db.write() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        assert inserted.lastrowid == 1
        many = await conn.execute(
            text("INSERT INTO t (name, n) VALUES (:name, :n)"), [{"name": "b", "n": 2}, {"name": "c", "n": 3}]
        )
        assert many.rowcount == 2
        updated = await conn.execute(text("UPDATE t SET n = n + 10 WHERE n >= 2"))
        assert updated.rowcount == 2
        returned = await conn.execute(text("UPDATE t SET n = n + 1 WHERE name = 'a' RETURNING id, n"))
        assert returned.all() == [(1, 2)]
    async with sqlite_db.read() as conn:
        result = await conn.execute(text("SELECT name, n FROM t ORDER BY id"))
        assert list(result.keys()) == ["name", "n"]
        assert result.all() == [("a", 2), ("b", 12), ("c", 13)]
        assert (await conn.execute(text("SELECT n FROM t WHERE name = 'zzz'"))).first() is None


async def test_one_hop_per_statement_and_none_for_an_idle_rollback(sqlite_db: Database, hops: Counter[str]) -> None:
    async with sqlite_db.write() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        await conn.execute(text("SELECT * FROM t"))
    async with sqlite_db.read() as conn:
        await conn.execute(text("SELECT * FROM t"))
    # three statements, one commit; no cursor/fetch/close calls, no rollback of a finished transaction
    assert hops == Counter({"_run": 3, "commit": 1})


async def test_a_failed_transaction_is_rolled_back(sqlite_db: Database) -> None:
    async with sqlite_db.write() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    with pytest.raises(StorageError) as failed:
        async with sqlite_db.write() as conn:
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('b', 2)"))
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 3)"))  # UNIQUE violation
    assert "UNIQUE" in str(failed.value)
    with pytest.raises(StorageError):
        async with sqlite_db.write() as conn:
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('c', 4)"))
            raise StorageError("the caller gives up")
    async with sqlite_db.read() as conn:
        assert (await conn.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all() == ["a"]
