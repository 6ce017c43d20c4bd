"""Cohere specifics: its chat and tool format (tool_plan, tool_calls, tool messages), images,
the non-streamed path, and an ERROR finish reason."""

from __future__ import annotations

import json

import pytest

from botframework.config.schema import ModelConfig
from botframework.errors import ServerError
from botframework.messages import ImagePart, Message, ToolCall, ToolSpec
from botframework.models.base import ModelRequest
from providers.cohere.client import CohereClient
from tests.fakes import Reply, StreamError, ToolCallSpec
from tests.fakes.cohere_server import FakeCohereServer

CLOCK = ToolSpec(name="clock", description="time", parameters={"type": "object", "properties": {}})


def client(fake: FakeCohereServer) -> CohereClient:
    cfg = ModelConfig.model_validate(
        {"provider": "cohere", "model": "command-a-03-2025", "base_url": fake.base_url, "api_key": "cohere-test-key"}
    )
    assert cfg.tiktoken_model() is None
    return CohereClient(name="co", config=cfg)


async def sink(_: str) -> None:
    return None


async def test_the_chat_and_tool_format() -> None:
    async with FakeCohereServer() as fake:
        fake.push(
            Reply(text="I will check.", tool_calls=[ToolCallSpec(name="clock", arguments='{"tz": "UTC"}', id="tc1")])
        )
        c = client(fake)
        try:
            first = await c.complete(
                ModelRequest(
                    system="Be brief.",
                    messages=[Message.user("look", images=[ImagePart(url="https://x.test/a.png")])],
                    tools=[CLOCK],
                    max_tokens=64,
                    temperature=1.7,
                )
            )
            history = [
                Message.user("time?"),
                Message.assistant(first.text, tool_calls=first.tool_calls),
                Message.tool_result("tc1", "12:00", name="clock"),
            ]
            await c.complete(ModelRequest(system="", messages=history, tools=[CLOCK], max_tokens=64), on_text=sink)
        finally:
            await c.close()
    assert (first.text, first.finish_reason) == ("I will check.", "tool_calls")
    assert [(t.id, t.name, json.loads(t.arguments)) for t in first.tool_calls] == [("tc1", "clock", {"tz": "UTC"})]
    body = fake.requests[0].body
    assert body["temperature"] == 1.0 and body["stream"] is False and body["max_tokens"] == 64
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        },
    ]
    assert body["tools"] == [
        {"type": "function", "function": {"name": "clock", "description": "time", "parameters": CLOCK.parameters}}
    ]
    second = fake.requests[1].body["messages"]
    assert second[1] == {
        "role": "assistant",
        "tool_plan": "I will check.",
        "tool_calls": [{"id": "tc1", "type": "function", "function": {"name": "clock", "arguments": '{"tz": "UTC"}'}}],
    }
    assert second[2] == {"role": "tool", "tool_call_id": "tc1", "content": "12:00"}
    assert fake.protocol_errors == []


async def test_an_error_finish_reason_raises() -> None:
    async with FakeCohereServer() as fake:
        fake.push(StreamError(message="internal generation failure"))
        c = client(fake)
        try:
            with pytest.raises(ServerError, match="internal generation failure"):
                await c.complete(ModelRequest(system="", messages=[Message.user("x")], max_tokens=8), on_text=sink)
        finally:
            await c.close()


def test_a_call_without_text_has_no_tool_plan() -> None:
    from providers.cohere.wire import message_to_cohere

    wire = message_to_cohere(Message.assistant("", tool_calls=[ToolCall("a", "clock", "{}")]))
    assert "tool_plan" not in wire and "content" not in wire
