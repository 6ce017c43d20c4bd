"""Neutral request -> provider JSON bodies, checked against the fakes' protocol validators."""

from __future__ import annotations

from botframework.messages import ImagePart, Message, TextPart, ToolCall, ToolSpec
from botframework.models.base import ModelRequest
from providers.anthropic.wire import CONTINUATION_PLACEHOLDER, messages_body
from providers.openai.wire import chat_completions_body, uses_max_completion_tokens
from tests.fakes.anthropic_server import anthropic_protocol_problems
from tests.fakes.openai_server import openai_protocol_problems

CLOCK = ToolSpec(name="clock", description="time", parameters={"type": "object", "properties": {}})


def conversation() -> list[Message]:
    """A turn with images, two parallel tool calls (one failed), a steered user message and an answer."""
    return [
        Message.user("what is this?", images=[ImagePart(url="https://x.test/cat.png")]),
        Message.assistant("A cat."),
        Message.user("time in Paris and Tokyo?"),
        Message.assistant(
            "Checking.",
            tool_calls=[
                ToolCall(id="call_1", name="clock", arguments='{"timezone": "Europe/Paris"}'),
                ToolCall(id="call.2", name="clock", arguments='{"timezone": '),
            ],
        ),
        Message.tool_result("call_1", "10:00", name="clock"),
        Message.tool_result("call.2", "invalid arguments: not JSON", name="clock", is_error=True),
        Message.user("and quickly please"),
    ]


def test_openai_body_shape() -> None:
    req = ModelRequest(system="Be brief.", messages=conversation(), tools=[CLOCK], max_tokens=300, temperature=0.2)
    body = chat_completions_body(req, model="gpt-4o-mini", stream=True)
    assert body["model"] == "gpt-4o-mini"
    assert body["max_tokens"] == 300 and "max_completion_tokens" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[1]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png", "detail": "auto"}},
    ]
    assert msgs[3] == {"role": "user", "content": "time in Paris and Tokyo?"}
    assert msgs[4]["tool_calls"][1] == {
        "id": "call.2",
        "type": "function",
        "function": {"name": "clock", "arguments": '{"timezone": '},
    }
    assert msgs[5] == {"role": "tool", "tool_call_id": "call_1", "content": "10:00"}
    assert msgs[6]["tool_call_id"] == "call.2"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "clock", "description": "time", "parameters": CLOCK.parameters},
        }
    ]
    assert openai_protocol_problems(body) == []


def test_openai_assistant_without_text_has_null_content_and_reasoning_models_get_max_completion_tokens() -> None:
    req = ModelRequest(
        system="",
        messages=[
            Message.user("t?"),
            Message.assistant(tool_calls=[ToolCall(id="a", name="clock", arguments="{}")]),
            Message.tool_result("a", "now"),
        ],
        max_tokens=50,
    )
    body = chat_completions_body(req, model="o3-mini", stream=False)
    assert body["messages"][0]["role"] == "user"
    assert body["messages"][1]["content"] is None
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body and "stream" not in body
    assert uses_max_completion_tokens("gpt-5") and not uses_max_completion_tokens("gpt-4o")
    assert openai_protocol_problems(body) == []


def test_anthropic_body_shape() -> None:
    req = ModelRequest(system="Be brief.", messages=conversation(), tools=[CLOCK], max_tokens=300, temperature=1.5)
    body = messages_body(req, model="claude-x", stream=True)
    assert body["system"] == "Be brief."
    assert "temperature" not in body  # deprecated by the Messages API; the SDK takes none
    assert body["tools"] == [{"name": "clock", "description": "time", "input_schema": CLOCK.parameters}]
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"][1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://x.test/cat.png"},
    }
    tool_uses = [b for b in msgs[3]["content"] if b["type"] == "tool_use"]
    assert tool_uses[0] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "clock",
        "input": {"timezone": "Europe/Paris"},
    }
    assert tool_uses[1]["id"] == "call_2" and tool_uses[1]["input"] == {}
    results = msgs[4]["content"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "call_1", "content": "10:00"}
    assert results[1] == {
        "type": "tool_result",
        "tool_use_id": "call_2",
        "content": "invalid arguments: not JSON",
        "is_error": True,
    }
    assert results[2] == {"type": "text", "text": "and quickly please"}
    assert anthropic_protocol_problems(body) == []


def test_anthropic_merges_roles_puts_tool_results_first_and_starts_with_user() -> None:
    req = ModelRequest(
        system="S",
        messages=[
            Message.assistant("(summary follows)"),
            Message(role="system", content=(TextPart("Summary: they like tea."),)),
            Message.user("a"),
            Message.user("b"),
            Message.assistant("", tool_calls=[ToolCall(id="t1", name="clock", arguments="{}")]),
            Message.user("steered in"),
            Message.tool_result("t1", "noon"),
            Message.assistant("It is noon.  "),
        ],
        max_tokens=64,
    )
    body = messages_body(req, model="claude-x", stream=False)
    msgs = body["messages"]
    assert body["system"] == "S\n\nSummary: they like tea."
    assert msgs[0] == {"role": "user", "content": [{"type": "text", "text": CONTINUATION_PLACEHOLDER}]}
    assert msgs[2]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert [b["type"] for b in msgs[4]["content"]] == ["tool_result", "text"]
    assert msgs[-1]["content"] == [{"type": "text", "text": "It is noon."}]
    assert anthropic_protocol_problems(body) == []


def test_anthropic_data_url_image_becomes_base64() -> None:
    req = ModelRequest(
        system="",
        messages=[Message.user("", images=[ImagePart(url="data:image/jpeg;base64,QUJD")])],
        max_tokens=10,
    )
    body = messages_body(req, model="c", stream=False)
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}}
    ]
    assert "system" not in body


def test_validators_catch_protocol_breaks() -> None:
    orphan = chat_completions_body(
        ModelRequest(system="", messages=[Message.user("x"), Message.tool_result("nope", "r")], max_tokens=5),
        model="m",
        stream=False,
    )
    assert any("must be a response to a preceding message" in p for p in openai_protocol_problems(orphan))
    unanswered = chat_completions_body(
        ModelRequest(
            system="",
            messages=[
                Message.user("x"),
                Message.assistant(tool_calls=[ToolCall(id="c", name="clock", arguments="{}")]),
                Message.user("y"),
            ],
            max_tokens=5,
        ),
        model="m",
        stream=False,
    )
    assert any("did not have response messages: c" in p for p in openai_protocol_problems(unanswered))
    bad = {
        "model": "c",
        "max_tokens": 5,
        "messages": [
            {"role": "assistant", "content": "hi "},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "a.b", "name": "clock", "input": "x"}],
            },
        ],
    }
    problems = anthropic_protocol_problems(bad)
    assert any('first message must use the "user" role' in p for p in problems)
    assert any("alternate" in p for p in problems)
    assert any("pattern" in p for p in problems)
    assert any("valid dictionary" in p for p in problems)
    assert any("without `tool_result`" in p for p in problems)


def test_openai_tool_result_images_follow_the_round_in_a_user_message() -> None:
    png = ImagePart(url="data:image/png;base64,iVBORw0KGgo=")
    messages = [
        Message.user("charts?"),
        Message.assistant(
            tool_calls=[ToolCall(id="c1", name="chart", arguments="{}"), ToolCall(id="c2", name="note", arguments="{}")]
        ),
        Message(role="tool", content=(TextPart("weekly:"), png), tool_call_id="c1", name="chart"),
        Message.tool_result("c2", "no notes", name="note"),
    ]
    request = ModelRequest(system="", messages=messages, max_tokens=100)
    body = chat_completions_body(request, model="gpt-4o", stream=False)
    assert openai_protocol_problems(body) == []
    *_, chart, note, pictures = body["messages"]
    assert chart == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "weekly:\n[1 image(s) from this result follow in the next user message]",
    }
    assert note == {"role": "tool", "tool_call_id": "c2", "content": "no notes"}
    assert pictures == {
        "role": "user",
        "content": [
            {"type": "text", "text": "[images from tool chart (c1)]"},
            {"type": "image_url", "image_url": {"url": png.url, "detail": "auto"}},
        ],
    }


def test_the_openai_validator_refuses_images_inside_tool_messages() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "chart", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        ],
    }
    assert any("role 'tool' contains an image URL" in p for p in openai_protocol_problems(body))
