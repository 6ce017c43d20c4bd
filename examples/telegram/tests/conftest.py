"""Fixtures of the Telegram channel's tests: a fake Bot API, a recording runtime, a database.

``BOTFRAMEWORK_TEST_DB=postgresql`` runs the tests that store turns on PostgreSQL
(``BOTFRAMEWORK_TEST_PG_URL``, default the local server), each in a fresh database, dropped after.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botframework.testing import scratch_database
from tg_fake_api import FakeTelegram
from tg_runtime import RecordingRuntime

PG_ADMIN_URL = os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKEND = os.environ.get("BOTFRAMEWORK_TEST_DB", "sqlite")


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def runtime() -> RecordingRuntime:
    return RecordingRuntime()


@pytest.fixture
async def db_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the backend under test (the runtime migrates it at start)."""
    if BACKEND != "postgresql":
        yield f"sqlite+aiosqlite:///{tmp_path / 'telegram.db'}"
        return
    async with scratch_database(PG_ADMIN_URL, prefix="bf_tg") as url:
        yield url
