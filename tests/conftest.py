"""Shared fixtures.

Database: SQLite by default. ``BOTFRAMEWORK_TEST_DB=postgresql`` runs every storage-touching test
on PostgreSQL instead (``BOTFRAMEWORK_TEST_PG_URL``, default the local server), each test in a
fresh database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botframework.testing import scratch_database
from storage.db import Database
from tests.fakes.anthropic_server import fake_anthropic  # noqa: F401
from tests.fakes.openai_server import fake_openai  # noqa: F401
from tests.fakes.pg_cluster import pg_cluster  # noqa: F401

PG_ADMIN_URL = os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKEND = os.environ.get("BOTFRAMEWORK_TEST_DB", "sqlite")


@pytest.fixture
async def db_url(tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty database of the backend under test (not migrated)."""
    if BACKEND == "postgresql":
        async with scratch_database(PG_ADMIN_URL, prefix="bf_test") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database of the backend under test."""
    database = Database(db_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()
