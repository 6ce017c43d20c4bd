"""A tenant's tools as of now: what the invocation service offers the model before each call.

Python tools are fixed at start; tools from MCP servers are discovered at run time and may change
between rounds (a server re-lists, goes away, comes back). The invocation service asks the agent's
toolset before every model call and runs that round's calls with the tools it offered, so the
budget's tool-schema reserve counts exactly what is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from botframework.tools.base import Tool

__all__ = ["Toolset"]


class Toolset(Protocol):
    async def current(self) -> Sequence[Tool]:
        """The tools to offer now (never raises for an unavailable source: its tools are left out)."""
        ...
