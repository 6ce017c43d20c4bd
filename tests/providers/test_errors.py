"""Each shipped SDK provider's exception table: its SDK's and transport's exceptions -> our kinds."""

from __future__ import annotations

import asyncio

import httpx
import httpx2
import pytest

from botframework.errors import ErrorKind, ModelTimeoutError
from botframework.models.classify import ExceptionTable
from providers.anthropic.errors import ANTHROPIC_ERRORS
from providers.openai.errors import OPENAI_ERRORS


@pytest.mark.parametrize("table", [OPENAI_ERRORS, ANTHROPIC_ERRORS], ids=["openai", "anthropic"])
@pytest.mark.parametrize("transport", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_transport_errors_raised_while_reading_a_stream(table: ExceptionTable, transport: object) -> None:
    request = transport.Request("POST", "http://x")  # type: ignore[attr-defined]
    drop = table.classify(transport.RemoteProtocolError("peer closed connection", request=request), model="m")  # type: ignore[attr-defined]
    assert drop is not None and drop.kind is ErrorKind.CONNECTION and "peer closed" in str(drop)
    slow = table.classify(transport.ReadTimeout("read timed out", request=request), model="m", timeout_s=3)  # type: ignore[attr-defined]
    assert isinstance(slow, ModelTimeoutError) and "3s" in str(slow)
    assert table.classify(asyncio.CancelledError()) is None
    assert table.classify(KeyError("bug")) is None
