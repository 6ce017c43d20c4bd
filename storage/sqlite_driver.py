"""SQLite through aiosqlite with one thread hop per statement instead of four.

aiosqlite runs every sqlite3 call on its own thread, and SQLAlchemy's adapter makes one call per
DBAPI step: create a cursor, execute, fetch the rows, close the cursor. Each is a queue put, a
thread wake-up and a GIL hand-over; at ~18 statements a turn they were most of a turn's CPU. The
cursor here does the four steps in one call on aiosqlite's thread and keeps the outcome
(description, rows, rowcount, lastrowid), so SQLAlchemy reads it without going back.

``commit`` and ``rollback`` skip the hop when no transaction is open: sqlite3 does nothing then
anyway, and the pool rolls back every connection it takes back, also right after a commit.

Everything else (server-side cursors, errors, connect, close) is SQLAlchemy's stock aiosqlite
adapter. :func:`sqlite_dbapi` returns None when the installed SQLAlchemy or aiosqlite lacks what
this relies on; the engine then uses the stock adapter.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

__all__ = ["sqlite_dbapi"]


def _run(raw: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[Any, list[Any], int, Any]:
    """On aiosqlite's thread: the whole statement, and what SQLAlchemy will ask about it."""
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _build() -> Any:
    import aiosqlite
    from sqlalchemy.dialects.sqlite.aiosqlite import (
        AsyncAdapt_aiosqlite_connection,
        AsyncAdapt_aiosqlite_cursor,
        AsyncAdapt_aiosqlite_dbapi,
    )

    if not hasattr(aiosqlite.Connection, "_execute") or not hasattr(AsyncAdapt_aiosqlite_cursor, "_execute_async"):
        return None

    class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
        __slots__ = ("_description", "_lastrowid", "_rowcount")
        _awaitable_cursor_close = False

        def __init__(self, adapt_connection: Any) -> None:
            self._description: Any = None
            self._rowcount = -1
            self._lastrowid: Any = None
            super().__init__(adapt_connection)

        def _make_new_cursor(self, connection: Any) -> Any:
            return None  # no sqlite3 cursor lives between calls

        def _aenter_cursor(self, cursor: Any) -> Any:
            return cursor

        @property
        def description(self) -> Any:
            return self._description

        @property
        def rowcount(self) -> int:
            return self._rowcount

        @property
        def lastrowid(self) -> Any:
            return self._lastrowid

        async def _execute_async(self, operation: Any, parameters: Any) -> Any:
            return await self._one_hop(operation, parameters, many=False)

        async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
            return await self._one_hop(operation, seq_of_parameters, many=True)

        async def _one_hop(self, operation: Any, parameters: Any, *, many: bool) -> None:
            connection = self._connection
            async with self._adapt_connection._execute_mutex:
                outcome = await connection._execute(_run, connection._conn, operation, parameters, many)
            self._description, rows, self._rowcount, self._lastrowid = outcome
            self._rows = collections.deque(rows)

    class OneHopConnection(AsyncAdapt_aiosqlite_connection):
        __slots__ = ()
        _cursor_cls = OneHopCursor

        def _in_transaction(self) -> bool:
            raw = self._connection._connection
            return raw is not None and bool(raw.in_transaction)

        def commit(self) -> None:
            if self._in_transaction():
                super().commit()

        def rollback(self) -> None:
            if self._in_transaction():
                super().rollback()

    class OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
        def connect(self, *arg: Any, **kw: Any) -> Any:
            stock = super().connect(*arg, **kw)
            return OneHopConnection(self, stock._connection)

    return OneHopDbapi(aiosqlite, sqlite3)


def sqlite_dbapi() -> Any:
    """The DBAPI module to hand ``create_async_engine(module=...)`` for ``sqlite+aiosqlite``, or None."""
    try:
        return _build()
    except (ImportError, AttributeError):
        return None
