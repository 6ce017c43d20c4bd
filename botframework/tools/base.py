"""What a tool is: a name, a description, a JSON schema for its arguments, and an async handler."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botframework.errors import ToolError
from botframework.messages import ToolSpec

if TYPE_CHECKING:
    from botframework.modelcalls import ModelCalls

__all__ = ["Tool", "ToolContext", "ToolHandler", "tool"]


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """Who is calling: tools may use it for per-tenant behaviour, never to reach other tenants' data."""

    tenant: str
    conversation_id: int
    turn_id: str
    origin: str
    model_calls: ModelCalls | None = field(default=None, repr=False, compare=False)
    """The turn's one-shot model client; read it as :attr:`models`."""

    @property
    def models(self) -> ModelCalls:
        """Model calls on behalf of this turn (the structured helper): ``await ctx.models.parse(...)``.

        Uses the agent's helper models and tier allowlist (``agent.structured``); every call is a
        ledger row of this tenant and turn.
        """
        if self.model_calls is None:
            raise ToolError(
                f"no model calls are available to tools in this context (tenant {self.tenant!r}, "
                f"turn {self.turn_id!r}): it was not built by the invocation service"
            )
        return self.model_calls


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
