"""Gemini specifics: the request shape (system instruction, alternation, function responses,
images), thought signatures sent back, safety blocks, and the non-streamed path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from botframework.config.schema import ModelConfig
from botframework.errors import ContentFilterError
from botframework.messages import ImagePart, Message, ToolCall, ToolSpec
from botframework.models.base import ModelRequest
from providers.gemini.client import GeminiClient
from tests.fakes import Fail, Reply, ToolCallSpec
from tests.fakes.gemini_server import SIGNATURE, FakeGeminiServer

CLOCK = ToolSpec(name="clock", description="time", parameters={"type": "object", "properties": {}})
PNG = "data:image/png;base64,iVBORw0KGgo="


def client(fake: FakeGeminiServer) -> GeminiClient:
    cfg = ModelConfig.model_validate(
        {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": fake.base_url, "api_key": "gemini-test-key"}
    )
    assert isinstance(cfg.tiktoken_model(), type(None))
    return GeminiClient(name="gm", config=cfg)


async def sink(_: str) -> None:
    return None


async def test_request_shape_and_thought_signatures_round_trip() -> None:
    async with FakeGeminiServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="clock", arguments='{"tz": "UTC"}')]),
            Reply(text="It is noon."),
        )
        c = client(fake)
        try:
            history = [
                Message(role="system", content=Message.user("Summary: cats.").content),
                Message.user(
                    "look", images=[ImagePart(url=PNG), ImagePart(url="https://x.test/a.jpg", media_type="image/jpeg")]
                ),
                Message.user("and the time?"),
            ]
            first = await c.complete(
                ModelRequest(system="Be brief.", messages=history, tools=[CLOCK], max_tokens=64, temperature=0.3),
                on_text=sink,
            )
            [call] = first.tool_calls
            assert (call.name, json.loads(call.arguments), first.finish_reason) == (
                "clock",
                {"tz": "UTC"},
                "tool_calls",
            )
            history += [
                Message.assistant("", tool_calls=[call]),
                Message.tool_result(call.id, "12:00", name="clock"),
            ]
            second = await c.complete(ModelRequest(system="Be brief.", messages=history, tools=[CLOCK], max_tokens=64))
        finally:
            await c.close()
    assert second.text == "It is noon."
    body = fake.requests[0].body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nSummary: cats."}]}
    assert body["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.3}
    assert body["tools"] == [
        {"functionDeclarations": [{"name": "clock", "description": "time", "parametersJsonSchema": CLOCK.parameters}]}
    ]
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "look"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}},
                {"text": "and the time?"},
            ],
        }
    ]
    contents = fake.requests[1].body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "clock", "args": {"tz": "UTC"}}, "thoughtSignature": SIGNATURE}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "clock", "response": {"result": "12:00"}}}],
    }
    assert fake.protocol_errors == [] and fake.requests[1].path.endswith(":generateContent")


async def test_an_error_result_and_a_call_from_another_model() -> None:
    """A call made by another model has no signature and its arguments may be malformed."""
    async with FakeGeminiServer() as fake:
        c = client(fake)
        try:
            calls = [ToolCall(id="call_x", name="clock", arguments='{"tz": ')]
            history = [
                Message.assistant("Earlier answer."),
                Message.user("time?"),
                Message.assistant("", tool_calls=calls),
                Message.tool_result("call_x", "invalid arguments", is_error=True),
            ]
            await c.complete(ModelRequest(system="", messages=history, tools=[CLOCK], max_tokens=32), on_text=sink)
        finally:
            await c.close()
    contents = fake.requests[0].body["contents"]
    assert contents[0] == {"role": "user", "parts": [{"text": "(earlier conversation omitted)"}]}
    assert contents[3]["parts"] == [{"functionCall": {"name": "clock", "args": {}}}]
    assert contents[4]["parts"] == [{"functionResponse": {"name": "clock", "response": {"error": "invalid arguments"}}}]
    assert fake.protocol_errors == []


@pytest.mark.parametrize("stream", [True, False])
async def test_safety_blocks_are_content_filter_errors(stream: bool) -> None:
    async with FakeGeminiServer() as fake:
        blocked: Any = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}}

        c = client(fake)
        try:
            fake.push(Reply(text="", finish_reason="SAFETY"))
            with pytest.raises(ContentFilterError):
                await c.complete(
                    ModelRequest(system="", messages=[Message.user("x")], max_tokens=8),
                    on_text=sink if stream else None,
                )
            fake.push(Fail(status=200, body=blocked))
            with pytest.raises(ContentFilterError, match="blocked the prompt"):
                await c.complete(ModelRequest(system="", messages=[Message.user("x")], max_tokens=8))
        finally:
            await c.close()
