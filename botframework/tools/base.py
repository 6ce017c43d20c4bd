"""What a tool is: a name, a description, a JSON schema for its arguments, and an async handler."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botframework.messages import ToolSpec

__all__ = ["Tool", "ToolContext", "ToolHandler", "tool"]


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """Who is calling: tools may use it for per-tenant behaviour, never to reach other tenants' data."""

    tenant: str
    conversation_id: int
    turn_id: str
    origin: str


ToolHandler = Callable[[Mapping[str, Any], ToolContext], Awaitable[Any] | Any]
"""Receives validated arguments and the context; returns text, or anything JSON-serializable."""


@dataclass(frozen=True, kw_only=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    handler: ToolHandler
    timeout_s: float | None = None
    """Longest one call may take; the agent's ``tool_timeout_s`` when None."""

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=dict(self.parameters))

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


def tool(*, name: str, description: str, parameters: Mapping[str, Any] | None = None) -> Callable[[ToolHandler], Tool]:
    """Decorator turning a function ``(args, ctx) -> result`` into a :class:`Tool`.

    Sync functions are run in a worker thread so a slow tool never blocks the event loop.
    """

    def wrap(fn: ToolHandler) -> Tool:
        return Tool(
            name=name,
            description=description,
            parameters=parameters or {"type": "object", "properties": {}},
            handler=fn,
        )

    return wrap
