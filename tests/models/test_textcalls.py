"""Tool calls written as text: parsing, and the streaming filter that hides them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botframework.models.textcalls import TextCallFilter, parse_text_tool_calls

TOOLS = ["clock", "search"]


def test_function_call_tag() -> None:
    found = parse_text_tool_calls(
        'Let me look.\n<function_call>{"name": "clock", "arguments": {"timezone": "UTC"}}</function_call>',
        TOOLS,
    )
    assert found is not None
    assert found.text == "Let me look."
    [call] = found.calls
    assert call.name == "clock"
    assert json.loads(call.arguments) == {"timezone": "UTC"}
    assert call.id.startswith("call_")


def test_tool_call_tag_and_several_calls_with_string_arguments_kept_verbatim() -> None:
    text = (
        '<tool_call>{"name": "search", "arguments": "{\\"q\\": \\"cats\\"}"}</tool_call>\n'
        '<tool_call>{"name": "clock", "arguments": {}}</tool_call>'
    )
    found = parse_text_tool_calls(text, TOOLS)
    assert found is not None
    assert [c.name for c in found.calls] == ["search", "clock"]
    assert found.calls[0].arguments == '{"q": "cats"}'
    assert found.calls[0].id != found.calls[1].id
    assert found.text == ""


def test_unclosed_tag_at_the_end() -> None:
    found = parse_text_tool_calls('Checking <function_call>{"name": "clock", "arguments": {}}', TOOLS)
    assert found is not None
    assert found.text == "Checking"
    assert [c.name for c in found.calls] == ["clock"]


def test_tag_like_text_inside_json_strings_is_never_altered() -> None:
    payload = {"q": "</function_call> and <function_call> and ``` fences"}
    text = f'<function_call>{{"name": "search", "arguments": {json.dumps(payload)}}}</function_call> done'
    found = parse_text_tool_calls(text, TOOLS)
    assert found is not None
    assert json.loads(found.calls[0].arguments) == payload
    assert found.text == "done"


def test_fenced_json_call_and_list() -> None:
    found = parse_text_tool_calls(
        'Sure:\n```json\n{"name": "clock", "parameters": {"timezone": "Asia/Tokyo"}}\n```', TOOLS
    )
    assert found is not None and found.text == "Sure:"
    assert json.loads(found.calls[0].arguments) == {"timezone": "Asia/Tokyo"}
    many = parse_text_tool_calls(
        '```\n[{"name": "clock"}, {"function": {"name": "search", "arguments": "{}"}}]\n```', TOOLS
    )
    assert many is not None and [c.name for c in many.calls] == ["clock", "search"]
    assert many.calls[0].arguments == "{}"


def test_bare_json_reply_is_a_call_only_for_offered_tools() -> None:
    found = parse_text_tool_calls('  {"name": "clock", "arguments": {}}  ', TOOLS)
    assert found is not None and found.text == "" and found.calls[0].name == "clock"
    assert parse_text_tool_calls('{"name": "weather", "arguments": {}}', TOOLS) is None


def test_ordinary_json_and_code_are_left_alone() -> None:
    assert (
        parse_text_tool_calls('Here is your data:\n```json\n{"name": "Alice", "age": 3}\n```', TOOLS) is None
    )
    assert parse_text_tool_calls('```python\nprint("<function_call>")\n```', TOOLS) is None
    assert parse_text_tool_calls("I can't call <function_call> here, it is broken {", TOOLS) is None
    assert parse_text_tool_calls("plain text", TOOLS) is None
    assert parse_text_tool_calls('<function_call>{"name": "clock"}</function_call>', []) is None


def test_tag_names_any_tool_so_the_loop_can_report_it_unknown() -> None:
    found = parse_text_tool_calls(
        '<function_call>{"name": "weather", "arguments": {}}</function_call>', TOOLS
    )
    assert found is not None and found.calls[0].name == "weather"


async def _stream(chunks: list[str], *, names: list[str] = TOOLS) -> tuple[str, str, list[str]]:
    out: list[str] = []

    async def on_text(t: str) -> None:
        out.append(t)

    f = TextCallFilter(on_text, tool_names=names)
    for c in chunks:
        await f.feed(c)
    final = await f.finish()
    return "".join(out), final.text, [c.name for c in final.calls]


async def test_filter_hides_the_call_markup_while_streaming() -> None:
    streamed, final, calls = await _stream(
        [
            "Let me check",
            " the time. <func",
            'tion_call>{"name": "clo',
            'ck", "arguments": {}}</function_call>',
        ]
    )
    assert calls == ["clock"]
    assert "function_call" not in streamed
    assert streamed == final == "Let me check the time. "


async def test_filter_streams_plain_text_and_code_as_it_comes() -> None:
    seen: list[str] = []

    async def on_text(t: str) -> None:
        seen.append(t)

    f = TextCallFilter(on_text, tool_names=TOOLS)
    await f.feed("Hello ")
    await f.feed("world\n```python\nx = 1\n")
    assert "".join(seen) == "Hello world\n```python\nx = 1\n"
    await f.feed("```\nbye <b>")
    final = await f.finish()
    assert "".join(seen) == final.text == "Hello world\n```python\nx = 1\n```\nbye <b>"
    assert final.calls == ()


async def test_filter_releases_fenced_json_that_is_not_a_call() -> None:
    streamed, final, calls = await _stream(['Data:\n```json\n{"na', 'me": "Bob"}\n```', " end"])
    assert calls == []
    assert streamed == final == 'Data:\n```json\n{"name": "Bob"}\n``` end'


async def test_filter_inactive_without_tools_passes_everything() -> None:
    streamed, final, calls = await _stream(['<function_call>{"name": "clock"}</function_call>'], names=[])
    assert calls == []
    assert streamed == final == '<function_call>{"name": "clock"}</function_call>'


SAMPLES = [
    'Checking now.\n<function_call>{"name": "clock", "arguments": {"timezone": "UTC"}}</function_call>',
    'A ```python\nprint(1)\n``` then ```json\n{"name": "search", "arguments": {"q": "</function_call>"}}'
    "\n``` ok",
    '{"name": "clock", "arguments": {}}',
    "No calls at all, just <b>html</b> and `code` and ``` unclosed",
    'Two: <tool_call>{"name": "clock"}</tool_call> and <tool_call>{"name": "search", "args": {"q": 1}}',
    '```json\n{"name": "Ann"}\n```\nThat is JSON, not a call.',
]


@settings(max_examples=60, deadline=None)
@given(sample=st.sampled_from(SAMPLES), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
async def test_any_chunking_streams_exactly_the_final_text(sample: str, cuts: list[int]) -> None:
    points = sorted({c % (len(sample) + 1) for c in cuts})
    chunks = [sample[a:b] for a, b in zip([0, *points], [*points, len(sample)], strict=True) if b > a]
    streamed, final, calls = await _stream(chunks)
    _, whole_final, whole_calls = await _stream([sample])
    assert streamed == final
    assert calls == whole_calls
    assert final == whole_final
    for marker in ("<function_call>", "<tool_call>"):
        if calls:
            assert marker not in streamed


@pytest.mark.parametrize("sample", SAMPLES)
def test_parse_agrees_with_the_filter_on_calls(sample: str) -> None:
    found = parse_text_tool_calls(sample, TOOLS)
    names = [c.name for c in found.calls] if found else []
    expected = {0: ["clock"], 1: ["search"], 2: ["clock"], 3: [], 4: ["clock", "search"], 5: []}
    assert names == expected[SAMPLES.index(sample)]
