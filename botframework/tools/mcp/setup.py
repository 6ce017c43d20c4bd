"""Wiring for the runtime: the process's connections and each tenant's toolset.

Light on purpose: the MCP SDK (seconds to import) is loaded only when the config has servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from botframework.messages import ImagePart
from botframework.tools.base import Tool
from botframework.tools.mcp.config import MCP_MEDIA_SOURCE, McpServerConfig, is_mcp_ref, parse_mcp_ref
from botframework.tools.toolset import Toolset

if TYPE_CHECKING:
    from botframework.media import MediaResolver
    from botframework.tools.mcp.connections import McpConnections

__all__ = ["mcp_connections", "mcp_toolset"]


def mcp_connections(servers: Mapping[str, McpServerConfig]) -> McpConnections | None:
    """The connection manager for ``servers`` (None when there are none)."""
    if not servers:
        return None
    from botframework.tools.mcp.connections import McpConnections

    return McpConnections(servers)


def mcp_toolset(
    *,
    tenant: str,
    refs: Sequence[str],
    python_tools: Sequence[Tool],
    connections: McpConnections | None,
    media: MediaResolver | None,
) -> Toolset | None:
    """The toolset of a tenant whose ``agent.tools`` has ``mcp:`` references (None otherwise)."""
    mcp_refs = [(i, parse_mcp_ref(r)) for i, r in enumerate(refs) if is_mcp_ref(r)]
    if not mcp_refs or connections is None:
        return None
    from botframework.tools.mcp.toolset import McpToolset

    keep = None
    if media is not None:
        resolver = media

        def keep_image(tenant_name: str, data: bytes, media_type: str) -> ImagePart:
            return resolver.keep(tenant_name, MCP_MEDIA_SOURCE, data, media_type)

        keep = keep_image
    return McpToolset(tenant=tenant, python_tools=python_tools, refs=mcp_refs, connections=connections, keep_image=keep)
