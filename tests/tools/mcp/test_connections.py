"""Connections: opened at first need, stdio servers as children in their own process group, stopped
with the runtime, reopened after the server exits, re-listed when the server's tools change, and a
failing server waited out instead of retried at every turn."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

import botframework.tools.mcp.connections as connections_module
from botframework.config.schema import Config
from botframework.errors import McpServerError
from botframework.runtime import Runtime
from botframework.tools.mcp.config import McpRef, McpServerConfig, McpTenantCredentials
from botframework.tools.mcp.connections import McpConnection, McpConnections
from botframework.tools.mcp.toolset import McpToolset
from botframework.turn import Origin
from tests.fakes import Reply, ToolCallSpec
from tests.fakes.local import serve_local
from tests.fakes.mcp_server import McpHttpServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.tools.mcp.conftest import TIME_SERVER, openai_model


def children(marker: str) -> list[tuple[int, int]]:
    """(pid, process group) of our live child processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid, pgrp = fields[0], int(fields[1]), int(fields[2])
        if ppid == os.getpid() and marker in cmdline and state != "Z":
            found.append((int(entry), pgrp))
    return found


@pytest.mark.slow
async def test_a_stdio_server_starts_when_needed_in_its_own_group_restarts_after_exiting_and_stops_with_us(
    db_url: str,
) -> None:
    ask = {"tenant": "acme", "origin": Origin.background("t"), "conversation_key": "k"}
    async with FakeOpenAIServer() as fake:
        for zone in ("UTC", "Europe/Paris"):
            fake.push(
                Reply(tool_calls=[ToolCallSpec(name="get_current_time", arguments=f'{{"timezone": "{zone}"}}')]),
                Reply(text=f"time in {zone}"),
            )
        config = Config.model_validate(
            {
                "storage": {"url": db_url},
                "models": {"main": openai_model(fake)},
                "mcp_servers": {"time": TIME_SERVER},
                "tenants": {"acme": {"agent": {"model": "main", "tools": ["mcp:time"]}}},
            }
        )
        rt = Runtime(config=config, channels=False)
        await rt.start()
        try:
            assert children("mcp_server_time") == []  # nothing started before a turn needs it
            assert (await rt.ask(**ask, text="time?")).text == "time in UTC"  # type: ignore[arg-type]
            [(first, group)] = children("mcp_server_time")
            assert group == first != os.getpgid(0)  # leader of a process group of its own

            os.kill(first, signal.SIGKILL)
            assert rt.mcp is not None
            [connection] = rt.mcp.connections
            for _ in range(250):  # the end of its stdout is noticed without any call
                if not connection.connected:
                    break
                await asyncio.sleep(0.02)
            assert not connection.connected
            assert (await rt.ask(**ask, text="and Paris?")).text == "time in Europe/Paris"  # type: ignore[arg-type]
            assert "Europe/Paris" in fake.requests[3].body["messages"][-1]["content"]
            [(second, _)] = children("mcp_server_time")
            assert second != first
        finally:
            await rt.stop()
    assert children("mcp_server_time") == []
    assert second not in {int(e) for e in os.listdir("/proc") if e.isdigit()}


async def test_a_failing_server_is_waited_out_and_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="botframework.mcp")
    monkeypatch.setattr(connections_module, "RETRY_DELAYS_S", (0.3,))
    starts = tmp_path / "starts"
    script = f"echo started >> {starts}; echo 'config file missing' >&2; exit 3"
    connection = McpConnection(name="flaky", config=McpServerConfig(command="/bin/sh", args=["-c", script]))
    try:
        with pytest.raises(McpServerError) as first:
            await connection.ensure()
        with pytest.raises(McpServerError) as second:
            await connection.ensure()  # within the wait: no new process
        assert starts.read_text().count("started") == 1
        await asyncio.sleep(0.35)
        with pytest.raises(McpServerError):
            await connection.ensure()
        assert starts.read_text().count("started") == 2
    finally:
        await connection.close()
    assert str(first.value) == str(second.value)
    assert str(first.value) == (
        "mcp_servers.flaky: the server closed the connection before answering; "
        "the server printed: config file missing"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(str(first.value))


async def test_tools_are_listed_again_when_the_server_says_they_changed() -> None:
    async with McpHttpServer("tickets") as server:
        connections = McpConnections({"tickets": McpServerConfig(url=server.url)})
        toolset = McpToolset(
            tenant="acme", python_tools=[], refs=[(0, McpRef("tickets"))], connections=connections
        )
        try:
            before = {t.name for t in await toolset.current()}
            connection = connections.for_tenant("tickets", "acme")
            await connection.call("grow", {})
            for _ in range(250):
                listing = connection.listing
                if listing is not None and listing.generation > 1:
                    break
                await asyncio.sleep(0.02)
            after = {t.name: t for t in await toolset.current()}
            result = await after["extra_tool"].handler({"note": "hi"}, None)  # type: ignore[arg-type]
        finally:
            await connections.close()
    assert "extra_tool" not in before and set(after) == before | {"extra_tool"}
    assert result.text == "noted: hi"


async def test_a_connect_that_hangs_gives_up_after_connect_timeout_s() -> None:
    config = McpServerConfig(command=sys.executable, args=["-c", "import time; time.sleep(60)"], connect_timeout_s=0.5)
    connection = McpConnection(name="mute", config=config)
    try:
        with pytest.raises(McpServerError, match=r"^mcp_servers.mute: no answer within connect_timeout_s \(0.5 s\)$"):
            await asyncio.wait_for(connection.ensure(), 5)
    finally:
        await asyncio.wait_for(connection.close(), 15)
    assert children("time.sleep(60)") == []


async def test_an_http_server_that_refuses_the_credentials_is_named_with_its_status() -> None:
    seen: list[str | None] = []

    async def refuse(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"error": "invalid_token"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/mcp", refuse)
    runner, port = await serve_local(app)
    url = f"http://127.0.0.1:{port}/mcp"
    connection = McpConnection(
        name="tickets", config=McpServerConfig(url=url, headers={"Authorization": "Bearer stale-token"})
    )
    try:
        with pytest.raises(McpServerError) as info:
            await connection.ensure()
    finally:
        await connection.close()
        await runner.cleanup()
    assert str(info.value) == (
        f"mcp_servers.tickets: HTTP 401 from {url} (check headers: the server refused the credentials)"
    )
    assert seen and set(seen) == {"Bearer stale-token"}


async def test_closing_gives_up_a_connect_under_way() -> None:
    config = McpServerConfig(command=sys.executable, args=["-c", "import time; time.sleep(60)"], connect_timeout_s=60)
    connection = McpConnection(name="mute", config=config)
    connecting = asyncio.create_task(connection.ensure())
    await asyncio.sleep(0.5)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(connection.close(), 15)
    with pytest.raises(McpServerError, match="closed while connecting"):
        await connecting
    assert asyncio.get_running_loop().time() - started < 10
    assert children("time.sleep(60)") == []


def test_each_connection_is_named_by_its_yaml_path() -> None:
    config = McpServerConfig(command="x", per_tenant={"acme": McpTenantCredentials(env={"TOKEN": SecretStr("t")})})
    assert McpConnection(name="s", config=config).label == "mcp_servers.s"
    assert McpConnection(name="s", config=config, tenant="acme").label == "mcp_servers.s.per_tenant.acme"
    assert McpConnection(name="s", config=config, tenant="globex").label == "mcp_servers.s (tenant globex)"
    assert McpConnection(name="s", config=config, tenant="acme").config.env["TOKEN"].get_secret_value() == "t"
