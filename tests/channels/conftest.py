"""Fixtures shared by the channel adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.runtime import RecordingRuntime


@pytest.fixture
async def runtime() -> AsyncIterator[RecordingRuntime]:
    """The core as an adapter sees it, recording what the adapter hands over."""
    rt = RecordingRuntime()
    yield rt
    await rt.aclose()
