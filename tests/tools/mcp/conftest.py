"""Fixtures for MCP tests: a runtime whose tenants list MCP servers, and the real servers.

Two servers this project did not write: ``mcp-server-time`` from PyPI over stdio (started with this
interpreter), and the official SDK's ``MCPServer`` over Streamable HTTP (``tests.fakes.mcp_server``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from botframework.config.schema import Config
from botframework.runtime import Runtime
from tests.fakes.mcp_server import McpHttpServer
from tests.fakes.openai_server import FakeOpenAIServer

TIME_SERVER: dict[str, Any] = {
    "command": sys.executable,
    "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
}
"""``mcp-server-time`` from PyPI, as a stdio server."""

RuntimeFactory = Callable[..., Awaitable[Runtime]]


async def _no_sleep(_: float) -> None:
    return None


def openai_model(server: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "context_window": 16384,
        "max_output_tokens": 2048,
        **extra,
    }


@pytest.fixture
async def runtime_factory(db_url: str) -> AsyncIterator[RuntimeFactory]:
    started: list[Runtime] = []

    async def make(
        *,
        models: dict[str, Any],
        mcp_servers: dict[str, Any],
        tenants: dict[str, dict[str, Any]] | None = None,
        **agent: Any,
    ) -> Runtime:
        """A started runtime; ``agent`` configures tenant acme when ``tenants`` is not given."""
        cfg = Config.model_validate(
            {
                "storage": {"url": db_url},
                "models": models,
                "mcp_servers": mcp_servers,
                "tenants": tenants or {"acme": {"agent": {"model": "main", **agent}}},
            }
        )
        rt = Runtime(config=cfg, channels=False, sleep=_no_sleep)
        await rt.start()
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.stop()


@pytest.fixture
async def tickets() -> AsyncIterator[McpHttpServer]:
    async with McpHttpServer("tickets") as server:
        yield server
