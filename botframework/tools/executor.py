"""Run the tool calls of one model response and turn every outcome into a tool result message.

Nothing a tool or the model does here can crash a turn: invalid JSON, unknown tools, schema
violations, denials, timeouts and exceptions all become error results the model can correct.
Parallel calls run concurrently; results are returned in call order (the tool protocol requires it).

The tools of a round are the ones offered to the model for it (``run(..., tools=...)``): tools
discovered at run time (MCP servers) may change between rounds. Each call is bounded by its tool's
timeout (or the agent's) and by what is left of the turn's :class:`ToolTimeBudget`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from botframework.errors import ToolArgumentsError, ToolError, UnknownToolError
from botframework.events import EventBus, EventKind
from botframework.hooks import Allow, Answer, Deny, TurnHooks
from botframework.messages import ImagePart, Message, TextPart, ToolCall
from botframework.tools.base import Tool, ToolContext
from botframework.tools.output import ToolOutput, ToolTimeBudget

__all__ = ["ToolExecutor"]


class ToolExecutor:
    def __init__(
        self,
        *,
        tools: Sequence[Tool],
        hooks: TurnHooks,
        events: EventBus,
        timeout_s: float,
        max_result_tokens: int,
        count_tokens: Callable[[str], int],
        image_tokens: int = 765,
    ) -> None:
        self._tools = {t.name: t for t in tools}
        self._validators: dict[str, tuple[Mapping[str, Any], Draft202012Validator]] = {}
        for t in tools:
            self._validator(t)
        self._hooks = hooks
        self._events = events
        self._timeout_s = timeout_s
        self._max_result_tokens = max_result_tokens
        self._count = count_tokens
        self._image_tokens = image_tokens

    def _validator(self, tool: Tool) -> Draft202012Validator:
        """The compiled schema of ``tool``, compiled again only when its schema object changes."""
        cached = self._validators.get(tool.name)
        if cached is not None and cached[0] is tool.parameters:
            return cached[1]
        try:
            Draft202012Validator.check_schema(dict(tool.parameters))
        except SchemaError as exc:
            raise ToolError(f"tool {tool.name!r} has an invalid parameters schema: {exc.message}") from exc
        validator = Draft202012Validator(dict(tool.parameters))
        self._validators[tool.name] = (tool.parameters, validator)
        return validator

    async def run(
        self,
        calls: Sequence[ToolCall],
        ctx: ToolContext,
        *,
        tools: Sequence[Tool] | None = None,
        budget: ToolTimeBudget | None = None,
    ) -> list[Message]:
        """Run ``calls`` with ``tools`` (those offered for this round; the constructor's when None)."""
        table = self._tools if tools is None else {t.name: t for t in tools}
        started = time.perf_counter()
        try:
            return list(await asyncio.gather(*(self._run_one(c, ctx, table, budget) for c in calls)))
        finally:
            if budget is not None:
                budget.spend(time.perf_counter() - started)

    async def _run_one(
        self, call: ToolCall, ctx: ToolContext, table: Mapping[str, Tool], budget: ToolTimeBudget | None
    ) -> Message:
        call = await self._hooks.before_tool(ctx, call)
        decision = await self._hooks.approve_tool(ctx, call)
        if isinstance(decision, Deny):
            await self._events.publish(EventKind.TOOL_SKIPPED, ctx, tool=call.name, call_id=call.id, reason="denied")
            return Message.tool_result(
                call.id, f"error: tool call denied: {decision.reason}", name=call.name, is_error=True
            )
        if isinstance(decision, Answer):
            await self._events.publish(EventKind.TOOL_SKIPPED, ctx, tool=call.name, call_id=call.id, reason="answered")
            return Message.tool_result(call.id, self._fit(decision.result), name=call.name)
        assert isinstance(decision, Allow)
        await self._events.publish(EventKind.TOOL_START, ctx, tool=call.name, call_id=call.id)
        started = time.perf_counter()
        images: tuple[ImagePart, ...] = ()
        tool = table.get(call.name)
        timeout_s = (tool.timeout_s if tool is not None else None) or self._timeout_s
        left = budget.remaining() if budget is not None else None
        cut_by_budget = left is not None and left < timeout_s
        try:
            if left is not None and left <= 0:
                raise ToolError(
                    f"the tools of this turn have used up their time budget ({budget.total_s if budget else 0:g} s); "
                    "answer with what you have"
                )
            output = await self._execute(call, ctx, table, timeout_s if left is None else min(timeout_s, left))
            text, images = await self._fit_off_loop(output)
            is_error = output.is_error
        except ToolError as exc:
            text, is_error = f"error: {exc}", True
        except TimeoutError:
            text = (
                f"error: tool {call.name!r} was stopped: the tools of this turn used up their time budget "
                f"({budget.total_s if budget else 0:g} s)"
                if cut_by_budget
                else f"error: tool {call.name!r} did not finish within {timeout_s:g} s"
            )
            is_error = True
        except Exception as exc:  # a tool's own bug must not end the turn
            text, is_error = f"error: tool {call.name!r} failed: {type(exc).__name__}: {exc}", True
        await self._events.publish(
            EventKind.TOOL_END,
            ctx,
            tool=call.name,
            call_id=call.id,
            is_error=is_error,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        if images:
            return Message(
                role="tool",
                content=(TextPart(text), *images),
                tool_call_id=call.id,
                name=call.name,
                is_error=is_error,
            )
        return Message.tool_result(call.id, text, name=call.name, is_error=is_error)

    def parse_arguments(self, call: ToolCall, tools: Mapping[str, Tool] | None = None) -> dict[str, Any]:
        """Decode and validate arguments; raises UnknownToolError / ToolArgumentsError."""
        table = self._tools if tools is None else tools
        if call.name not in table:
            raise UnknownToolError(call.name, sorted(table))
        raw = call.arguments.strip() or "{}"
        try:
            args = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ToolArgumentsError(call.name, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
        if not isinstance(args, dict):
            raise ToolArgumentsError(call.name, f"expected a JSON object, got {type(args).__name__}")
        errors = sorted(self._validator(table[call.name]).iter_errors(args), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(f"{'/'.join(str(p) for p in e.path) or '<root>'}: {e.message}" for e in errors[:5])
            raise ToolArgumentsError(call.name, problems)
        return args

    async def _execute(
        self, call: ToolCall, ctx: ToolContext, table: Mapping[str, Tool], timeout_s: float
    ) -> ToolOutput:
        args = self.parse_arguments(call, table)
        tool = table[call.name]
        async with asyncio.timeout(timeout_s):
            if tool.is_async:
                result = await tool.handler(args, ctx)
            else:
                result = await asyncio.to_thread(tool.handler, args, ctx)
        return result if isinstance(result, ToolOutput) else ToolOutput(text=_as_text(result))

    async def _fit_off_loop(self, output: ToolOutput) -> tuple[str, tuple[ImagePart, ...]]:
        """Counting a large result takes milliseconds per 100 KB: do it in a thread then."""
        if len(output.text) < 20_000:
            return self._fit_output(output)
        return await asyncio.to_thread(self._fit_output, output)

    def _fit_output(self, output: ToolOutput) -> tuple[str, tuple[ImagePart, ...]]:
        """Text first, then as many images as still fit the result cap (each costs ``image_tokens``)."""
        text = self._fit(output.text)
        if not output.images:
            return text, ()
        room = self._max_result_tokens - self._count(text)
        keep = max(0, min(len(output.images), room // max(1, self._image_tokens)))
        if keep < len(output.images):
            text += f"\n[{len(output.images) - keep} of {len(output.images)} images omitted: over the result size cap]"
        return text, output.images[:keep]

    def _fit(self, text: str) -> str:
        """Cap one result so a huge tool output cannot blow the window by itself."""
        if self._count(text) <= self._max_result_tokens:
            return text
        keep = self._max_result_tokens * 2
        while keep > 0:
            head = text[:keep]
            note = f"\n[truncated: the result was {len(text)} characters; showing the first {len(head)}]"
            if self._count(head + note) <= self._max_result_tokens:
                return head + note
            keep = keep * 3 // 4
        return "[result omitted: too large]"


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, Mapping | list | tuple | int | float | bool) or result is None:
        return json.dumps(result, ensure_ascii=False, default=str)
    return str(result)
