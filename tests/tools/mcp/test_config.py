"""The ``mcp_servers`` config and ``mcp:`` references, validated at load like the rest."""

from __future__ import annotations

import pytest

from botframework.config.loader import parse_config
from botframework.errors import ConfigError
from botframework.tools.mcp.config import McpRef, McpServerConfig, parse_mcp_ref

BASE = """
models: {main: {provider: offline}}
mcp_servers:
%s
tenants:
  acme:
    agent: {model: main, tools: %s}
  globex:
    agent: {model: main}
"""


def problems(servers: str, tools: str = "[]") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE % (servers, tools), env={"TOKEN": "t0ken-value"})
    return [str(p) for p in info.value.problems]


def test_the_documented_shapes_load_with_secrets_and_variables() -> None:
    config = parse_config(
        BASE
        % (
            '  time: {command: /usr/bin/python3, args: ["-m", "mcp_server_time"], env: {TZ: UTC}}\n'
            '  search: {url: "https://mcp.example.com/mcp", headers: {Authorization: "Bearer ${TOKEN}"},\n'
            '           per_tenant: {acme: {headers: {Authorization: "Bearer acme"}}}}',
            '[clock, "mcp:time", "mcp:search/web_search"]',
        ),
        env={"TOKEN": "t0ken-value"},
    )
    search = config.mcp_servers["search"]
    assert search.transport == "http" and config.mcp_servers["time"].transport == "stdio"
    assert search.headers["Authorization"].get_secret_value() == "Bearer t0ken-value"
    assert "t0ken-value" not in repr(config)
    assert search.for_tenant("acme").headers["Authorization"].get_secret_value() == "Bearer acme"
    assert search.for_tenant("globex") is search
    assert (search.scope_for("acme"), search.scope_for("globex")) == ("acme", None)
    assert config.mcp_servers["time"].model_copy(update={"connection": "per_tenant"}).scope_for("globex") == "globex"


@pytest.mark.parametrize(
    ("servers", "tools", "expected"),
    [
        ("  x: {command: a, url: 'http://h/mcp'}", "[]", "mcp_servers.x: set either command (a stdio server) or url"),
        ("  x: {args: [a]}", "[]", "mcp_servers.x: set either command"),
        ("  x: {url: 'http://h/mcp', env: {A: b}}", "[]", "mcp_servers.x: env: for stdio servers (command) only"),
        ("  x: {command: a, headers: {A: b}}", "[]", "mcp_servers.x: headers: for Streamable HTTP servers (url) only"),
        ("  x: {url: 'ftp://h'}", "[]", "mcp_servers.x.url: String should match pattern"),
        (
            "  x: {command: a, per_tenant: {nobody: {env: {A: b}}}}",
            "[]",
            "mcp_servers.x.per_tenant.nobody: unknown tenant 'nobody'",
        ),
        ("  x: {command: a}", '["mcp:y"]', "tenants.acme.agent.tools.0: unknown MCP server 'y' (configured in"),
        ("  x: {command: a}", '["mcp:x/"]', "tenants.acme.agent.tools.0: 'mcp:x/' is not an MCP tool reference"),
        (
            "  x: {command: a}",
            '[clock, "mcp:x/clock"]',
            "tenants.acme.agent.tools.1: 'mcp:x/clock' clashes with the Python tool 'clock'",
        ),
        (
            "  x: {command: a}\n  y: {command: b}",
            '["mcp:x/find", "mcp:y/find"]',
            "tenants.acme.agent.tools.1: 'mcp:y/find' clashes with 'mcp:x/find'",
        ),
        ("  x: {command: a, timeout_s: 0}", "[]", "mcp_servers.x.timeout_s: Input should be greater than 0"),
    ],
)
def test_mistakes_are_reported_with_their_path(servers: str, tools: str, expected: str) -> None:
    found = problems(servers, tools)
    assert any(p.startswith(expected) for p in found), found


def test_loading_starts_nothing() -> None:
    config = parse_config(BASE % ("  x: {command: /nonexistent/server}", '["mcp:x"]'))
    assert config.mcp_servers["x"] == McpServerConfig(command="/nonexistent/server")


def test_references() -> None:
    assert parse_mcp_ref("mcp:time") == McpRef("time")
    assert parse_mcp_ref("mcp:search/web_search") == McpRef("search", "web_search")
    assert str(McpRef("search", "web_search")) == "mcp:search/web_search"
    for bad in ("mcp:", "mcp:a/b/c", "mcp:/x", "mcp:a b"):
        with pytest.raises(ValueError, match="is not an MCP tool reference"):
            parse_mcp_ref(bad)
