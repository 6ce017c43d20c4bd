"""``check-config --probe``: start or reach every configured MCP server, list its tools, report problems.

Every server is probed with its own config (and once more per tenant with ``per_tenant`` credentials),
all at once, each within its ``connect_timeout_s``. Then each tenant's ``mcp:`` references are checked
against what the servers listed, with the same rules (and words) as at run time: tools models cannot
be offered, tools a reference names that the server lacks, name clashes. Each problem is one line
naming its YAML path; nothing is left running afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import mcp_types

from botframework.config.schema import Config
from botframework.errors import ConfigProblem, McpServerError
from botframework.logs import collect_secrets, redact_text
from botframework.tools.base import Tool, ToolContext
from botframework.tools.mcp.config import is_mcp_ref, parse_mcp_ref
from botframework.tools.mcp.connections import McpConnection, McpListing
from botframework.tools.mcp.toolset import assemble, convert, selections
from botframework.tools.registry import resolve_tools

__all__ = ["probe_mcp_servers"]


async def probe_mcp_servers(config: Config) -> tuple[list[ConfigProblem], list[str]]:
    """(problems, one summary line per connection probed)."""
    base = {name: McpConnection(name=name, config=cfg, log_failures=False) for name, cfg in config.mcp_servers.items()}
    own = {
        (name, tenant): McpConnection(name=name, config=cfg, tenant=tenant, log_failures=False)
        for name, cfg in config.mcp_servers.items()
        for tenant in cfg.per_tenant
    }
    connections = [*base.values(), *own.values()]
    try:
        outcomes = await asyncio.gather(*(_list(c) for c in connections))
    finally:
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    secrets = collect_secrets(config)
    found: list[tuple[str, str]] = []
    listings: dict[McpConnection, McpListing] = {}
    summary: list[str] = []
    for connection, outcome in zip(connections, outcomes, strict=True):
        if isinstance(outcome, McpListing):
            listings[connection] = outcome
            names = ", ".join(t.name for t in outcome.tools) or "no tools"
            summary.append(f"{connection.label}: {len(outcome.tools)} tool(s): {names}")
        else:
            found.append((connection.label, outcome.removeprefix(f"{connection.label}: ")))
    for tenant_name, tenant in config.tenants.items():
        refs = [(i, parse_mcp_ref(r)) for i, r in enumerate(tenant.agent.tools) if is_mcp_ref(r)]
        if not refs:
            continue
        servers = []
        for selection in selections(refs):
            connection = own.get((selection.server, tenant_name), base[selection.server])
            listing = listings.get(connection)
            servers.append((selection, connection, None if listing is None else convert(connection, listing, _stub)))
        _, problems = assemble(tenant=tenant_name, python_tools=resolve_tools(tenant.agent.tools), servers=servers)
        found.extend(problems)
    order = {name: i for i, name in enumerate(config.mcp_servers)}

    def position(problem: tuple[str, str]) -> tuple[int, int]:
        head, _, rest = problem[0].partition(".")
        return (0, order.get(rest.split(".")[0], 0)) if head == "mcp_servers" else (1, 0)

    unique = sorted(dict.fromkeys(found), key=position)
    return [ConfigProblem(path, redact_text(message, secrets)) for path, message in unique], summary


async def _list(connection: McpConnection) -> McpListing | str:
    try:
        return await connection.ensure()
    except McpServerError as exc:
        return str(exc)


def _stub(mtool: mcp_types.Tool) -> Tool:
    async def never(args: Mapping[str, Any], ctx: ToolContext) -> str:
        raise AssertionError("the probe calls no tool")

    return Tool(name=mtool.name, description=mtool.description or "", parameters=mtool.input_schema, handler=never)
