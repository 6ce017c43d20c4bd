"""``check-config --probe`` names every server that cannot be used; ``serve`` goes on without it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from botframework.cli import main
from tests.e2e.support import ChatClient, ServerProcess, write_config
from tests.fakes import Reply, ToolCallSpec
from tests.fakes.mcp_server import McpHttpServer
from tests.fakes.openai_server import FakeOpenAIServer


def config_file(path: Path, servers: dict[str, Any], tools: list[str]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'bot.db'}"},
                "models": {"main": {"provider": "offline"}},
                "mcp_servers": servers,
                "tenants": {"acme": {"agent": {"model": "main", "tools": tools}}},
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    return path


def test_probe_names_each_server_and_reference_that_cannot_be_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with McpHttpServer("tickets", extra_tools={"get-clock.v2": "a name models refuse"}).in_thread() as tickets:
        path = config_file(
            tmp_path / "bot.yaml",
            {
                "tickets": {"url": tickets.url, "headers": {"Authorization": "Bearer probe-secret-123"}},
                "broken": {"command": sys.executable, "args": ["-m", "no_such_mcp_server_module"]},
                "missing": {"command": "/nonexistent/mcp-server"},
                "down": {"url": "http://127.0.0.1:9/mcp", "connect_timeout_s": 5},
            },
            ["clock", "mcp:tickets", "mcp:tickets/nope", "mcp:broken"],
        )
        code = main(["check-config", "--probe", str(path)])
    out = capsys.readouterr()
    assert code == 1 and out.out == ""
    assert out.err.splitlines() == [
        "mcp_servers.tickets: tool 'get-clock.v2' has a name models do not accept (letters, digits, _ and - only, "
        "at most 64 characters); it is left out",
        "mcp_servers.broken: the server closed the connection before answering; the server printed: "
        f"{sys.executable}: No module named no_such_mcp_server_module",
        "mcp_servers.missing: cannot start /nonexistent/mcp-server: no such file (check command and PATH)",
        "mcp_servers.down: cannot reach the server (ConnectError: All connection attempts failed)",
        "tenants.acme.agent.tools.2: MCP server 'tickets' has no usable tool 'nope' "
        "(it has: broken, chart, grow, hang, lookup_ticket)",
    ]
    assert tickets.requests and {r.authorization for r in tickets.requests} == {"Bearer probe-secret-123"}


def test_probe_of_working_servers_lists_their_tools_and_check_config_alone_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with McpHttpServer("tickets").in_thread() as tickets:
        path = config_file(tmp_path / "bot.yaml", {"tickets": {"url": tickets.url}}, ["mcp:tickets/lookup_ticket"])
        assert main(["check-config", str(path)]) == 0
        assert tickets.requests == []
        assert main(["check-config", "--probe", str(path)]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.splitlines()[-2:] == [
        f"ok: {path} — 1 tenant(s), 1 model(s), 1 MCP server(s)",
        "  mcp_servers.tickets: 5 tool(s): lookup_ticket, hang, chart, broken, grow",
    ]


@pytest.mark.slow
async def test_serve_logs_a_server_that_cannot_start_once_and_answers_with_the_others(
    tmp_path: Path, db_url: str
) -> None:
    async with McpHttpServer("tickets") as tickets, FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="lookup_ticket", arguments='{"ticket_id": "T-9"}')]),
            Reply(text="T-9 is on fire."),
        )
        path = write_config(
            tmp_path / "bot.yaml",
            db_url=db_url,
            model_base_url=fake.base_url,
            tenants={
                "acme": {
                    "agent": {"model": "main", "tools": ["mcp:broken", "mcp:tickets"]},
                    "channels": {"websocket": {}},
                }
            },
        )
        config = yaml.safe_load(path.read_text())
        config["mcp_servers"] = {
            "broken": {"command": "/nonexistent/mcp-server"},
            "tickets": {"url": tickets.url},
        }
        path.write_text(yaml.safe_dump(config))
        server = ServerProcess(path, tmp_path / "server.log")
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                client = await ChatClient.connect(http, server.url, "acme", "ann")
                await client.send("c1", "T-9?")
                done = await client.wait_for("done", "c1")
                await client.close()
        finally:
            assert await server.stop() == 0
        offered = [t["function"]["name"] for t in fake.requests[0].body["tools"]]
    assert done["text"] == "T-9 is on fire."
    assert offered == ["lookup_ticket", "hang", "chart", "broken", "grow"]
    assert tickets.calls == [("lookup_ticket", {"ticket_id": "T-9"})]
    log = (tmp_path / "server.log").read_text()
    assert log.count("mcp_servers.broken: cannot start /nonexistent/mcp-server") == 1
    assert "Traceback" not in log
