"""Run the tool calls of one model response and turn every outcome into a tool result message.

Nothing a tool or the model does here can crash a turn: invalid JSON, unknown tools, schema
violations, denials, timeouts and exceptions all become error results the model can correct.
Parallel calls run concurrently; results are returned in call order (the tool protocol requires it).
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
from botframework.messages import Message, ToolCall
from botframework.tools.base import Tool, ToolContext

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
    ) -> None:
        self._tools = {t.name: t for t in tools}
        self._validators: dict[str, Draft202012Validator] = {}
        for t in tools:
            try:
                Draft202012Validator.check_schema(dict(t.parameters))
            except SchemaError as exc:
                raise ToolError(f"tool {t.name!r} has an invalid parameters schema: {exc.message}") from exc
            self._validators[t.name] = Draft202012Validator(dict(t.parameters))
        self._hooks = hooks
        self._events = events
        self._timeout_s = timeout_s
        self._max_result_tokens = max_result_tokens
        self._count = count_tokens

    async def run(self, calls: Sequence[ToolCall], ctx: ToolContext) -> list[Message]:
        return list(await asyncio.gather(*(self._run_one(c, ctx) for c in calls)))

    async def _run_one(self, call: ToolCall, ctx: ToolContext) -> Message:
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
        try:
            text = await self._fit_off_loop(await self._execute(call, ctx))
            is_error = False
        except ToolError as exc:
            text, is_error = f"error: {exc}", True
        except TimeoutError:
            text, is_error = f"error: tool {call.name!r} did not finish within {self._timeout_s:g} s", True
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
        return Message.tool_result(call.id, text, name=call.name, is_error=is_error)

    def parse_arguments(self, call: ToolCall) -> dict[str, Any]:
        """Decode and validate arguments; raises UnknownToolError / ToolArgumentsError."""
        if call.name not in self._tools:
            raise UnknownToolError(call.name, sorted(self._tools))
        raw = call.arguments.strip() or "{}"
        try:
            args = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ToolArgumentsError(call.name, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
        if not isinstance(args, dict):
            raise ToolArgumentsError(call.name, f"expected a JSON object, got {type(args).__name__}")
        errors = sorted(self._validators[call.name].iter_errors(args), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(f"{'/'.join(str(p) for p in e.path) or '<root>'}: {e.message}" for e in errors[:5])
            raise ToolArgumentsError(call.name, problems)
        return args

    async def _execute(self, call: ToolCall, ctx: ToolContext) -> str:
        args = self.parse_arguments(call)
        tool = self._tools[call.name]
        async with asyncio.timeout(self._timeout_s):
            if tool.is_async:
                result = await tool.handler(args, ctx)
            else:
                result = await asyncio.to_thread(tool.handler, args, ctx)
        return _as_text(result)

    async def _fit_off_loop(self, text: str) -> str:
        """Counting a large result takes milliseconds per 100 KB: do it in a thread then."""
        return self._fit(text) if len(text) < 20_000 else await asyncio.to_thread(self._fit, text)

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
