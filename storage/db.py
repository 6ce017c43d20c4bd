"""Engine setup for SQLite (embedded, WAL) and PostgreSQL (asyncpg), and migrations at start.

SQLite allows one writer at a time; a deferred transaction that later tries to write can fail
with "database is locked" instead of waiting. Within one process we therefore serialize write
transactions with an asyncio lock, and ``busy_timeout`` covers other processes (the CLI).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from botframework.errors import StorageError
from botframework.storage_health import StorageHealth
from storage.sqlite_driver import sqlite_dbapi

__all__ = ["DRIVER_ERRORS", "Database"]


def _driver_errors() -> tuple[type[BaseException], ...]:
    """What a failing database raises: SQLAlchemy's errors, and what the drivers raise unwrapped
    (asyncpg's connect raises ``ConnectionRefusedError`` and its own errors as they are)."""
    errors: list[type[BaseException]] = [SQLAlchemyError, OSError]
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency, but SQLite-only installs work
        pass
    else:
        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(errors)


DRIVER_ERRORS = _driver_errors()

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Database:
    """One engine plus the rules for using it. Hand ``read()``/``write()`` connections to repositories."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            module = sqlite_dbapi() if parsed.get_driver_name() == "aiosqlite" else None
            if module is not None:
                kwargs["module"] = module
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self.health = StorageHealth()
        """Up or down as the last operations found it (``/healthz``, retries, the recovery loop)."""

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (no transaction kept open longer than the block)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except DRIVER_ERRORS as exc:
            self.health.failed(exc)
            raise StorageError(f"database read failed ({self.dialect}): {exc}") from exc
        self.health.succeeded()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on error."""
        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                async with self._write_lock, self.engine.begin() as conn:
                    yield conn
        except DRIVER_ERRORS as exc:
            self.health.failed(exc)
            raise StorageError(f"database write failed ({self.dialect}): {exc}") from exc
        self.health.succeeded()

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision`` on this engine."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        def run(sync_conn: Connection) -> None:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    await conn.run_sync(run)
            else:
                async with self._write_lock, self.engine.begin() as conn:
                    await conn.run_sync(run)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"migration failed on {self.dialect}: {exc}") from exc

    async def close(self) -> None:
        await self.engine.dispose()
