"""Tools from MCP servers: configured under ``mcp_servers:``, listed per agent as ``mcp:<server>``.

- :mod:`.config`: the config models and the ``mcp:<server>[/<tool>]`` references (light: the
  schema imports it);
- :mod:`.connections`: one live session per server (per tenant when it has its own credentials),
  opened at first need, re-listed when the server says its tools changed, reconnected after a failure;
- :mod:`.results`: an MCP tool result as text and images for the model;
- :mod:`.toolset`: a tenant's current tools (Python tools plus its servers'), asked before each model call;
- :mod:`.probe`: ``check-config --probe``.

Only ``config`` is imported here: the MCP SDK is loaded when a config actually uses a server.
"""

from botframework.tools.mcp.config import McpRef, McpServerConfig, McpTenantCredentials, is_mcp_ref, parse_mcp_ref

__all__ = ["McpRef", "McpServerConfig", "McpTenantCredentials", "is_mcp_ref", "parse_mcp_ref"]
