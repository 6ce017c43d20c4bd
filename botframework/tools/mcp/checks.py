"""Load-time checks of MCP references (the raw YAML, like the other reference checks).

What can be known without starting a server: ``mcp:`` references that are malformed or name no
configured server, two references that take a tool of the same name from two servers (or a Python
tool's name), and ``per_tenant`` credentials for a tenant that does not exist. What the servers
list is checked by ``check-config --probe`` and at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botframework.tools.mcp.config import is_mcp_ref, parse_mcp_ref

__all__ = ["mcp_problems"]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def mcp_problems(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(yaml path, message)`` for every MCP reference problem in the parsed YAML ``data``."""
    from botframework.tools.registry import resolve_tool

    servers = _mapping(data.get("mcp_servers"))
    tenants = _mapping(data.get("tenants"))
    configured = ", ".join(sorted(str(s) for s in servers)) or "none"
    for sname, server in servers.items():
        for tname in _mapping(_mapping(server).get("per_tenant")):
            if tname not in tenants:
                yield (
                    f"mcp_servers.{sname}.per_tenant.{tname}",
                    f"unknown tenant {tname!r} (tenants: {', '.join(sorted(map(str, tenants))) or 'none'})",
                )
    for tname, tenant in tenants.items():
        refs = _mapping(_mapping(tenant).get("agent")).get("tools")
        if not isinstance(refs, list):
            continue
        base = f"tenants.{tname}.agent.tools"
        taken: dict[str, str] = {}
        for ref in refs:
            if not isinstance(ref, str) or is_mcp_ref(ref):
                continue
            try:
                taken.setdefault(resolve_tool(ref).name, f"the Python tool {ref!r}")
            except LookupError:
                continue  # reported by the tool checks
        for i, ref in enumerate(refs):
            if not isinstance(ref, str) or not is_mcp_ref(ref):
                continue
            try:
                parsed = parse_mcp_ref(ref)
            except ValueError as exc:
                yield f"{base}.{i}", str(exc)
                continue
            if parsed.server not in servers:
                yield f"{base}.{i}", f"unknown MCP server {parsed.server!r} (configured in mcp_servers: {configured})"
                continue
            if parsed.tool is None:
                continue
            other = taken.get(parsed.tool)
            if other is not None and other != ref:
                yield (
                    f"{base}.{i}",
                    f"{ref!r} clashes with {other}: both are named {parsed.tool!r}; tool names must be unique",
                )
            taken.setdefault(parsed.tool, repr(ref))
