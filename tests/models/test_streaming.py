"""Shared stream pieces: finish-reason aliases, tool-call accumulation, response assembly."""

from __future__ import annotations

import pytest

from botframework.errors import ContentFilterError, IncompleteStreamError
from botframework.messages import ToolCall, ToolSpec
from botframework.models.base import Usage
from botframework.models.finish import normalize_finish_reason
from botframework.models.streaming import ToolCallAccumulator, build_response


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("stop", "stop"),
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("eos", "stop"),
        ("STOP", "stop"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("tool_use", "tool_calls"),
        ("length", "length"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("content_filter", "content_filter"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
        (None, None),
        ("", None),
    ],
)
def test_finish_reason_aliases(raw: str | None, expected: str | None) -> None:
    assert normalize_finish_reason(raw) == expected


def test_accumulator_by_index_and_without_index() -> None:
    acc = ToolCallAccumulator()
    acc.add(acc.key_for(0, "c1"), call_id="c1", name="clock", arguments="")
    acc.add(acc.key_for(1, "c2"), call_id="c2", name="search", arguments='{"q"')
    acc.add(acc.key_for(0, None), arguments='{"timezone": "UTC"}')
    acc.add(acc.key_for(1, None), arguments=': "x"}')
    assert acc.calls() == (
        ToolCall(id="c1", name="clock", arguments='{"timezone": "UTC"}'),
        ToolCall(id="c2", name="search", arguments='{"q": "x"}'),
    )

    loose = ToolCallAccumulator()  # a server that sends no index: a new id starts a new call
    for call_id, name, args in (("a", "clock", "{}"), (None, None, ""), ("b", "clock", '{"timezone": "X"}')):
        loose.add(loose.key_for(None, call_id), call_id=call_id, name=name, arguments=args)
    assert [(c.id, c.arguments) for c in loose.calls()] == [("a", "{}"), ("b", '{"timezone": "X"}')]

    repeated = ToolCallAccumulator()  # a server that repeats the full name in every fragment
    repeated.add(0, name="clock")
    repeated.add(0, name="clock", arguments="{}")
    [call] = repeated.calls()
    assert call.name == "clock" and call.id.startswith("call_")


async def test_build_response_rules() -> None:
    tools = [ToolSpec(name="clock", description="")]
    with pytest.raises(IncompleteStreamError, match="without a finish reason after 5 characters"):
        await build_response(
            model_name="m",
            raw_finish=None,
            text="hello",
            native_calls=(),
            tools=tools,
            usage=Usage(),
            provider_model="p",
        )
    text_call = await build_response(
        model_name="m",
        raw_finish="stop",
        text='{"name": "clock", "arguments": {}}',
        native_calls=(),
        tools=tools,
        usage=Usage(),
        provider_model="p",
    )
    assert text_call.finish_reason == "tool_calls" and text_call.tool_calls[0].name == "clock"
    claimed = await build_response(
        model_name="m",
        raw_finish="tool_calls",
        text="no calls after all",
        native_calls=(),
        tools=tools,
        usage=Usage(),
        provider_model="p",
    )
    assert claimed.finish_reason == "stop" and claimed.tool_calls == ()
    with pytest.raises(ContentFilterError, match="I can't help"):
        await build_response(
            model_name="m",
            raw_finish="content_filter",
            text="",
            native_calls=(),
            tools=tools,
            usage=Usage(),
            provider_model="p",
            refusal="I can't help with that",
        )
