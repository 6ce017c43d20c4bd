from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from botframework.events import EventBus, EventKind, TurnEvent
from botframework.hooks import Answer, Deny, HookChain, ToolDecision, TurnHooks
from botframework.messages import ImagePart, ToolCall
from botframework.tools.base import Tool, ToolContext, tool
from botframework.tools.builtin import clock
from botframework.tools.executor import ToolExecutor
from botframework.tools.output import ToolOutput, ToolTimeBudget
from botframework.tools.registry import resolve_tool, resolve_tools

CTX = ToolContext(tenant="acme", conversation_id=1, turn_id="t1", origin="websocket")


@tool(
    name="add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)
async def add(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, int]:
    return {"sum": args["a"] + args["b"]}


@tool(name="blocking", description="A sync tool.")
def blocking(args: Mapping[str, Any], ctx: ToolContext) -> str:
    return f"thread={threading.current_thread() is not threading.main_thread()}"


@tool(name="slow", description="Never finishes in time.")
async def slow(args: Mapping[str, Any], ctx: ToolContext) -> str:
    await asyncio.sleep(10)
    return "late"


@tool(name="boom", description="Raises.")
async def boom(args: Mapping[str, Any], ctx: ToolContext) -> str:
    raise RuntimeError("kaput")


@tool(name="huge", description="Returns a lot.")
async def huge(args: Mapping[str, Any], ctx: ToolContext) -> str:
    return "word " * 5000


def make(hooks: TurnHooks | None = None, events: EventBus | None = None) -> ToolExecutor:
    return ToolExecutor(
        tools=[add, blocking, slow, boom, huge, clock],
        hooks=hooks or HookChain(),
        events=events or EventBus(),
        timeout_s=0.05,
        max_result_tokens=200,
        count_tokens=lambda s: len(s.split()),
    )


async def test_results_come_back_in_call_order_with_their_ids() -> None:
    calls = [
        ToolCall("c1", "add", '{"a": 2, "b": 3}'),
        ToolCall("c2", "blocking", "{}"),
        ToolCall("c3", "clock", '{"timezone": "Europe/Paris"}'),
    ]
    results = await make().run(calls, CTX)
    assert [r.tool_call_id for r in results] == ["c1", "c2", "c3"]
    assert json.loads(results[0].text) == {"sum": 5}
    assert results[1].text == "thread=True"
    assert "Europe/Paris" in results[2].text and not results[2].is_error


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (ToolCall("x", "add", '{"a": 1, "b": '), "not valid JSON"),
        (ToolCall("x", "add", '{"a": "one", "b": 2}'), "a: 'one' is not of type 'integer'"),
        (ToolCall("x", "add", "[1, 2]"), "expected a JSON object"),
        (ToolCall("x", "teleport", "{}"), "unknown tool 'teleport'"),
        (ToolCall("x", "slow", "{}"), "did not finish within"),
        (ToolCall("x", "boom", "{}"), "RuntimeError: kaput"),
        (ToolCall("x", "clock", '{"timezone": "Mars/Olympus"}'), "unknown time zone"),
    ],
)
async def test_every_failure_becomes_an_error_result(call: ToolCall, expected: str) -> None:
    [result] = await make().run([call], CTX)
    assert result.is_error
    assert result.tool_call_id == "x"
    assert expected in result.text


async def test_oversized_result_is_truncated_with_a_note() -> None:
    [result] = await make().run([ToolCall("h", "huge", "{}")], CTX)
    assert len(result.text.split()) <= 200
    assert "[truncated" in result.text


async def test_hooks_can_deny_answer_and_rewrite() -> None:
    class Policy(TurnHooks):
        async def before_tool(self, ctx: ToolContext, call: ToolCall) -> ToolCall:
            return ToolCall(call.id, call.name, '{"a": 40, "b": 2}') if call.id == "rewrite" else call

        async def approve_tool(self, ctx: ToolContext, call: ToolCall) -> ToolDecision:
            if call.name == "boom":
                return Deny("not on Sundays")
            if call.name == "slow":
                return Answer("cached answer")
            return await super().approve_tool(ctx, call)

    seen: list[TurnEvent] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    results = await make(HookChain([Policy()]), bus).run(
        [
            ToolCall("d", "boom", "{}"),
            ToolCall("a", "slow", "{}"),
            ToolCall("rewrite", "add", '{"a":0,"b":0}'),
        ],
        CTX,
    )
    assert results[0].is_error and "denied: not on Sundays" in results[0].text
    assert results[1].text == "cached answer" and not results[1].is_error
    assert json.loads(results[2].text) == {"sum": 42}
    kinds = [(e.kind, e.data.get("reason")) for e in seen]
    assert (EventKind.TOOL_SKIPPED, "denied") in kinds and (EventKind.TOOL_SKIPPED, "answered") in kinds
    assert any(e.kind is EventKind.TOOL_END and e.data["tool"] == "add" for e in seen)


def test_registry_resolves_builtins_entry_points_and_import_paths() -> None:
    assert resolve_tool("clock") is clock
    assert resolve_tool("tests.tools.test_executor:add") is add
    with pytest.raises(LookupError, match="unknown tool 'nope'"):
        resolve_tool("nope")
    with pytest.raises(LookupError, match="not a botframework Tool"):
        resolve_tool("json:dumps")
    with pytest.raises(LookupError, match="enabled twice"):
        resolve_tools(["clock", "clock"])


async def test_a_tools_own_timeout_wins_over_the_agents() -> None:
    patient = Tool(name="patient", description="", handler=slow.handler, timeout_s=0.2)
    started = asyncio.get_running_loop().time()
    [result] = await make().run([ToolCall("p", "patient", "{}")], CTX, tools=[patient])
    assert result.text == "error: tool 'patient' did not finish within 0.2 s"
    assert asyncio.get_running_loop().time() - started >= 0.2


async def test_the_turn_budget_bounds_every_call_across_rounds() -> None:
    budget = ToolTimeBudget(0.12)
    executor = make()
    patient = Tool(name="patient", description="", handler=slow.handler, timeout_s=0.08)
    [first] = await executor.run([ToolCall("a", "patient", "{}")], CTX, tools=[patient], budget=budget)
    [second] = await executor.run([ToolCall("b", "patient", "{}")], CTX, tools=[patient], budget=budget)
    [third] = await executor.run([ToolCall("c", "add", '{"a": 1, "b": 2}')], CTX, tools=[add], budget=budget)
    assert first.text == "error: tool 'patient' did not finish within 0.08 s"
    assert second.text == "error: tool 'patient' was stopped: the tools of this turn used up their time budget (0.12 s)"
    assert third.is_error and "have used up their time budget (0.12 s)" in third.text
    assert budget.used_s >= 0.12


async def test_tools_of_a_round_replace_the_static_ones_and_a_changed_schema_is_compiled_again() -> None:
    def typed(kind: str) -> Tool:
        schema = {"type": "object", "properties": {"x": {"type": kind}}, "required": ["x"]}
        return Tool(name="dyn", description="", parameters=schema, handler=add.handler)

    executor = make()
    [unknown] = await executor.run([ToolCall("1", "add", '{"a": 1, "b": 2}')], CTX, tools=[typed("string")])
    [as_string] = await executor.run([ToolCall("2", "dyn", '{"x": 5}')], CTX, tools=[typed("string")])
    [as_integer] = await executor.run([ToolCall("3", "dyn", '{"x": 5}')], CTX, tools=[typed("integer")])
    assert "unknown tool 'add'; available tools: dyn" in unknown.text
    assert "5 is not of type 'string'" in as_string.text
    assert "invalid arguments" not in as_integer.text  # reached the handler (which then fails on its own)


async def test_tool_output_images_are_kept_while_they_fit_the_result_cap() -> None:
    images = tuple(ImagePart(url=f"media:mcp:{i}") for i in range(5))

    @tool(name="pics", description="")
    async def pics(args: Mapping[str, Any], ctx: ToolContext) -> ToolOutput:
        return ToolOutput(text="five pictures", images=images)

    executor = ToolExecutor(
        tools=[pics],
        hooks=HookChain(),
        events=EventBus(),
        timeout_s=1,
        max_result_tokens=200,
        count_tokens=lambda s: len(s.split()),
        image_tokens=60,
    )
    [result] = await executor.run([ToolCall("i", "pics", "{}")], CTX)
    assert result.images == images[:3]  # 2 words + 3 x 60 <= 200
    assert result.text == "five pictures\n[2 of 5 images omitted: over the result size cap]"


async def test_a_tool_that_reports_its_own_error_is_an_error_result() -> None:
    @tool(name="fails", description="")
    async def fails(args: Mapping[str, Any], ctx: ToolContext) -> ToolOutput:
        return ToolOutput(text="error: quota exceeded", is_error=True)

    [result] = await make().run([ToolCall("f", "fails", "{}")], CTX, tools=[fails])
    assert result.is_error and result.text == "error: quota exceeded"
