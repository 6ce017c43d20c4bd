"""The ``mcp_servers:`` section of the config, and the ``mcp:<server>[/<tool>]`` tool references.

A server is either a stdio server (``command``, ``args``, ``env``: started as our child process) or a
Streamable HTTP server (``url``, ``headers``). Credentials are ``SecretStr``. A tenant that must use
its own credentials lists them under ``per_tenant.<tenant>``: that tenant then gets a connection of
its own, with its values merged over the server's. ``connection: per_tenant`` gives every tenant its
own connection even without credentials (servers that keep state, such as a memory server).

This module must stay light: the schema imports it, and importing the MCP SDK costs seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "MCP_MEDIA_SOURCE",
    "MCP_REF_PREFIX",
    "McpRef",
    "McpServerConfig",
    "McpTenantCredentials",
    "is_mcp_ref",
    "parse_mcp_ref",
]

MCP_REF_PREFIX = "mcp:"
"""A tool reference starting with this names an MCP server (``mcp:time``) or one of its tools
(``mcp:time/get_current_time``)."""

MCP_MEDIA_SOURCE = "mcp"
"""The source in ``media:mcp:<id>`` references to images that MCP tools returned (held in memory only)."""

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
_REF = re.compile(rf"^{MCP_REF_PREFIX}({_NAME})(?:/([^/\s]{{1,128}}))?$")

ServerName = Annotated[str, Field(pattern=rf"^{_NAME}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class McpTenantCredentials(_Strict):
    """One tenant's own credentials for a server, merged over the server's own values."""

    env: dict[EnvName, SecretStr] = Field(default_factory=dict)
    """stdio servers: environment variables for this tenant's server process."""
    headers: dict[HeaderName, SecretStr] = Field(default_factory=dict)
    """HTTP servers: headers for this tenant's requests (``Authorization: "Bearer ${ACME_TOKEN}"``)."""


class McpServerConfig(_Strict):
    """An MCP server whose tools agents may list as ``mcp:<name>`` or ``mcp:<name>/<tool>``."""

    command: str | None = Field(None, min_length=1)
    """stdio: the program to start (an absolute path, or a name found on PATH), e.g. ``mcp-server-time``."""
    args: list[str] = Field(default_factory=list)
    """stdio: its arguments."""
    env: dict[EnvName, SecretStr] = Field(default_factory=dict)
    """stdio: environment variables for it, over a minimal inherited set (HOME, LOGNAME, PATH, SHELL,
    TERM, USER); nothing else of the bot's environment (API keys) reaches the server."""
    cwd: str | None = None
    """stdio: its working directory; the bot's when omitted."""
    url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """Streamable HTTP: the endpoint, e.g. ``https://mcp.example.com/mcp``."""
    headers: dict[HeaderName, SecretStr] = Field(default_factory=dict)
    """Streamable HTTP: headers sent with every request (``Authorization: "Bearer ${TOKEN}"``)."""
    timeout_s: float | None = Field(None, gt=0, le=3600)
    """Longest one tool call may take; the agent's ``tool_timeout_s`` when omitted."""
    connect_timeout_s: float = Field(30.0, gt=0, le=600)
    """Longest starting (or reaching) the server and listing its tools may take."""
    connection: Literal["shared", "per_tenant"] = "shared"
    """``shared``: one connection (one process, for stdio) for every tenant that lists the server and
    has no ``per_tenant`` credentials; ``per_tenant``: one per tenant, for servers that keep state."""
    per_tenant: dict[ServerName, McpTenantCredentials] = Field(default_factory=dict)
    """Tenant name -> that tenant's own credentials; such a tenant always gets its own connection."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("set either command (a stdio server) or url (a Streamable HTTP server), not both")
        if self.url is not None:
            stray = [n for n in ("args", "env", "cwd") if getattr(self, n)]
            if stray or any(c.env for c in self.per_tenant.values()):
                stray_fields = ", ".join(stray) or "per_tenant env"
                raise ValueError(f"{stray_fields}: for stdio servers (command) only; a url server takes headers")
        elif self.headers or any(c.headers for c in self.per_tenant.values()):
            raise ValueError("headers: for Streamable HTTP servers (url) only; a stdio server takes env")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def for_tenant(self, tenant: str | None) -> McpServerConfig:
        """This config with ``tenant``'s own credentials merged in (unchanged for None or no entry)."""
        own = self.per_tenant.get(tenant) if tenant is not None else None
        if own is None:
            return self
        return self.model_copy(update={"env": {**self.env, **own.env}, "headers": {**self.headers, **own.headers}})

    def scope_for(self, tenant: str) -> str | None:
        """Which connection ``tenant`` uses: its own (the tenant name) or the shared one (None)."""
        return tenant if self.connection == "per_tenant" or tenant in self.per_tenant else None


@dataclass(frozen=True, slots=True)
class McpRef:
    """A parsed ``mcp:<server>[/<tool>]`` reference; ``tool`` None means every tool of the server."""

    server: str
    tool: str | None = None

    def __str__(self) -> str:
        return f"{MCP_REF_PREFIX}{self.server}" + (f"/{self.tool}" if self.tool else "")


def is_mcp_ref(ref: str) -> bool:
    return ref.startswith(MCP_REF_PREFIX)


def parse_mcp_ref(ref: str) -> McpRef:
    """The reference ``ref`` names; ValueError saying what is wrong with it."""
    match = _REF.match(ref)
    if match is None:
        raise ValueError(
            f"{ref!r} is not an MCP tool reference: write 'mcp:<server>' for every tool of a server "
            "or 'mcp:<server>/<tool>' for one"
        )
    return McpRef(server=match.group(1), tool=match.group(2))
