"""Scratch PostgreSQL databases for tests and benchmarks: created empty, dropped afterwards.

One place for this, so the suite, the example plugin's tests and every benchmark name, create and
drop them the same way (``WITH (FORCE)``: a test that leaked a connection cannot leave one behind).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["create_scratch_database", "drop_scratch_database", "scratch_database"]


def _sibling(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def create_scratch_database(admin_url: str, *, prefix: str = "bf_scratch") -> str:
    """Create an empty database on ``admin_url``'s server; return its URL (same driver and user)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return _sibling(admin_url, name)


async def drop_scratch_database(admin_url: str, url: str) -> None:
    """Drop the database at ``url`` (made by :func:`create_scratch_database`), even if still in use."""
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@asynccontextmanager
async def scratch_database(admin_url: str, *, prefix: str = "bf_scratch") -> AsyncIterator[str]:
    """:func:`create_scratch_database` for the ``async with`` block, dropped when it ends."""
    url = await create_scratch_database(admin_url, prefix=prefix)
    try:
        yield url
    finally:
        await drop_scratch_database(admin_url, url)
