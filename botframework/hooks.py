"""Turn hooks: code that may modify, deny, answer instead of a tool, or abort a turn.

Subclass :class:`TurnHooks` and override what you need; every method defaults to "no change".
Hooks run in the order configured (``agent.hooks``): each is a name a package registered under the
entry-point group ``botframework.hooks``, or an import path ``package.module:attribute``. To abort
the turn, raise :class:`~botframework.errors.TurnAbortedError` with the message the user should see.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from botframework.errors import PluginError
from botframework.messages import ToolCall
from botframework.models.base import ModelRequest, ModelResponse
from botframework.tools.base import ToolContext

__all__ = ["Allow", "Answer", "Deny", "HookChain", "ToolDecision", "TurnHooks", "resolve_hooks"]


@dataclass(frozen=True)
class Allow:
    """Run the tool."""


@dataclass(frozen=True)
class Deny:
    """Do not run the tool; the model gets ``reason`` as an error result it can react to."""

    reason: str


@dataclass(frozen=True)
class Answer:
    """Do not run the tool; the model gets ``result`` as if the tool had returned it."""

    result: str


ToolDecision = Allow | Deny | Answer


class TurnHooks:
    """Override any subset. ``ctx`` says which tenant/conversation/turn is running."""

    async def before_model(self, ctx: ToolContext, request: ModelRequest, model_name: str) -> ModelRequest:
        return request

    async def after_model(self, ctx: ToolContext, response: ModelResponse, model_name: str) -> ModelResponse:
        return response

    async def before_tool(self, ctx: ToolContext, call: ToolCall) -> ToolCall:
        """May rewrite the call (e.g. its arguments) before approval and execution."""
        return call

    async def approve_tool(self, ctx: ToolContext, call: ToolCall) -> ToolDecision:
        return Allow()


class HookChain(TurnHooks):
    """Several hooks applied in order; the first non-Allow tool decision wins."""

    def __init__(self, hooks: Sequence[TurnHooks] = ()) -> None:
        self.hooks = tuple(hooks)

    async def before_model(self, ctx: ToolContext, request: ModelRequest, model_name: str) -> ModelRequest:
        for h in self.hooks:
            request = await h.before_model(ctx, request, model_name)
        return request

    async def after_model(self, ctx: ToolContext, response: ModelResponse, model_name: str) -> ModelResponse:
        for h in self.hooks:
            response = await h.after_model(ctx, response, model_name)
        return response

    async def before_tool(self, ctx: ToolContext, call: ToolCall) -> ToolCall:
        for h in self.hooks:
            call = await h.before_tool(ctx, call)
        return call

    async def approve_tool(self, ctx: ToolContext, call: ToolCall) -> ToolDecision:
        for h in self.hooks:
            decision = await h.approve_tool(ctx, call)
            if not isinstance(decision, Allow):
                return decision
        return Allow()


def resolve_hooks(refs: Sequence[str]) -> list[TurnHooks]:
    """Hooks by entry-point name or ``package.module:attribute``; a class is instantiated without
    arguments. Raises LookupError saying what is wrong and what is available."""
    from botframework.plugins import HOOKS

    out: list[TurnHooks] = []
    for ref in refs:
        module_name, sep, attr = ref.partition(":")
        obj: object
        if not sep:
            try:
                obj = HOOKS.load(ref)
            except PluginError as exc:
                raise LookupError(f"{exc}; or give an import path 'package.module:attribute'") from exc
        else:
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise LookupError(f"cannot import hook {ref!r}: {exc}") from exc
        if isinstance(obj, type) and issubclass(obj, TurnHooks):
            obj = obj()
        if not isinstance(obj, TurnHooks):
            raise LookupError(f"hook {ref!r} is a {type(obj).__name__}, not a TurnHooks subclass or instance")
        out.append(obj)
    return out
