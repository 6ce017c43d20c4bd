"""A tenant's tools: its Python tools plus the tools of the MCP servers its agent lists.

Asked before each model call. Each server's listing is converted once per listing (a re-list makes a
new generation); a server that cannot be used is left out for that call. Names must be unique across
everything offered: a server tool that clashes with a Python tool is left out, and tools of two
servers that clash are both left out (which one the model meant cannot be known). Every such problem
is logged once per tenant, and reported by ``check-config --probe`` with the same words.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mcp_types
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from botframework.errors import McpServerError
from botframework.messages import ImagePart
from botframework.tools.base import Tool, ToolContext
from botframework.tools.mcp.config import McpRef
from botframework.tools.mcp.connections import McpConnection, McpConnections, McpListing
from botframework.tools.mcp.results import to_output
from botframework.tools.output import ToolOutput

__all__ = ["McpSelection", "McpToolset", "TenantImageKeeper", "assemble"]

log = logging.getLogger("botframework.mcp")

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What every provider accepts as a function name (OpenAI's rule is the strictest)."""

TenantImageKeeper = Callable[[str, bytes, str], ImagePart]
"""``(tenant, bytes, media type) -> stored part`` (``MediaResolver.keep`` bound to the MCP source)."""


@dataclass(frozen=True, slots=True)
class McpSelection:
    """What an agent takes from one server: every tool (``whole``) or only the ``named`` ones. Each
    named tool maps to the index of its reference in ``agent.tools`` (for problem paths)."""

    server: str
    whole: bool
    named: Mapping[str, int]


def selections(refs: Sequence[tuple[int, McpRef]]) -> list[McpSelection]:
    """Group an agent's ``mcp:`` references by server, in the order first listed."""
    order: list[str] = []
    whole: set[str] = set()
    named: dict[str, dict[str, int]] = {}
    for index, ref in refs:
        if ref.server not in order:
            order.append(ref.server)
        if ref.tool is None:
            whole.add(ref.server)
        else:
            named.setdefault(ref.server, {}).setdefault(ref.tool, index)
    return [McpSelection(server=s, whole=s in whole, named=named.get(s, {})) for s in order]


@dataclass
class _Converted:
    generation: int
    tools: dict[str, Tool]
    problems: list[tuple[str, str]] = field(default_factory=list)


def convert(connection: McpConnection, listing: McpListing, make: Callable[[mcp_types.Tool], Tool]) -> _Converted:
    """One server's listing as Tools; tools a model cannot be offered become problems instead."""
    out = _Converted(generation=listing.generation, tools={})
    for mtool in listing.tools:
        if not TOOL_NAME.match(mtool.name):
            out.problems.append(
                (
                    connection.label,
                    f"tool {mtool.name!r} has a name models do not accept (letters, digits, _ and - only, "
                    "at most 64 characters); it is left out",
                )
            )
            continue
        try:
            Draft202012Validator.check_schema(mtool.input_schema)
        except SchemaError as exc:
            out.problems.append(
                (connection.label, f"tool {mtool.name!r} has an invalid input schema ({exc.message}); it is left out")
            )
            continue
        out.tools[mtool.name] = make(mtool)
    return out


def assemble(
    *,
    tenant: str,
    python_tools: Sequence[Tool],
    servers: Sequence[tuple[McpSelection, McpConnection, _Converted | None]],
) -> tuple[list[Tool], list[tuple[str, str]]]:
    """Everything ``tenant`` may be offered now, and every problem found (``(yaml path, message)``).

    ``servers`` pairs each selection with its connection and converted listing (None: unavailable).
    """
    problems: list[tuple[str, str]] = []
    offered: dict[str, list[tuple[McpConnection, Tool]]] = {}
    for selection, connection, converted in servers:
        if converted is None:
            continue
        problems.extend(converted.problems)
        chosen = converted.tools
        for name, index in selection.named.items():
            if name not in chosen:
                problems.append(
                    (
                        f"tenants.{tenant}.agent.tools.{index}",
                        f"MCP server {selection.server!r} has no usable tool {name!r} "
                        f"(it has: {', '.join(sorted(chosen)) or 'none'})",
                    )
                )
        if not selection.whole:
            chosen = {n: t for n, t in chosen.items() if n in selection.named}
        for name, t in chosen.items():
            offered.setdefault(name, []).append((connection, t))
    tools = list(python_tools)
    python_names = {t.name for t in python_tools}
    for name, sources in offered.items():
        if name in python_names:
            for connection, _ in sources:
                problems.append(
                    (
                        connection.label,
                        f"tool {name!r} clashes with the Python tool {name!r} of tenant {tenant!r}; "
                        "the MCP tool is left out",
                    )
                )
        elif len(sources) > 1:
            labels = [c.label for c, _ in sources]
            for connection, _ in sources:
                others = " and ".join(f"tool {name!r} of {lbl}" for lbl in labels if lbl != connection.label)
                problems.append(
                    (
                        connection.label,
                        f"tool {name!r} clashes with {others} (tenant {tenant!r} lists both); both are left out",
                    )
                )
        else:
            tools.append(sources[0][1])
    return tools, problems


class McpToolset:
    """The ``Toolset`` of one tenant whose agent lists MCP servers."""

    def __init__(
        self,
        *,
        tenant: str,
        python_tools: Sequence[Tool],
        refs: Sequence[tuple[int, McpRef]],
        connections: McpConnections,
        keep_image: TenantImageKeeper | None = None,
    ) -> None:
        self.tenant = tenant
        self.python_tools = tuple(python_tools)
        self.selections = selections(refs)
        self._connections = connections
        self._keep_image = keep_image
        self._converted: dict[str, _Converted] = {}
        self._reported: set[tuple[str, str]] = set()

    def connection(self, server: str) -> McpConnection:
        return self._connections.for_tenant(server, self.tenant)

    async def current(self) -> tuple[Tool, ...]:
        servers = await asyncio.gather(*(self._server(s) for s in self.selections))
        tools, problems = assemble(tenant=self.tenant, python_tools=self.python_tools, servers=servers)
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                log.warning("%s: %s", *problem)
        return tuple(tools)

    async def _server(self, selection: McpSelection) -> tuple[McpSelection, McpConnection, _Converted | None]:
        connection = self.connection(selection.server)
        try:
            listing = await connection.ensure()
        except McpServerError:
            return selection, connection, None  # logged by the connection, once per failure streak
        converted = self._converted.get(selection.server)
        if converted is None or converted.generation != listing.generation:
            converted = convert(connection, listing, lambda m: self._tool(connection, m))
            self._converted[selection.server] = converted
        return selection, connection, converted

    def _tool(self, connection: McpConnection, mtool: mcp_types.Tool) -> Tool:
        return mcp_tool(connection, mtool, self._keep_image)


def mcp_tool(connection: McpConnection, mtool: mcp_types.Tool, keep_image: TenantImageKeeper | None) -> Tool:
    """``mtool`` as a Tool that calls it through ``connection`` (the tenant's own)."""
    name = mtool.name

    async def call(args: Mapping[str, Any], ctx: ToolContext) -> ToolOutput:
        result = await connection.call(name, args)
        keep = None if keep_image is None else (lambda data, media_type: keep_image(ctx.tenant, data, media_type))
        return await to_output(result, server=connection.name, keep_image=keep)

    return Tool(
        name=name,
        description=mtool.description or mtool.title or name,
        parameters=mtool.input_schema,
        handler=call,
        timeout_s=connection.config.timeout_s,
    )
