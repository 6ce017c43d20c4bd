"""The Anthropic provider driving the real ``anthropic`` SDK over HTTP against the fake server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from botframework.errors import (
    ContentFilterError,
    ContextOverflowError,
    ErrorKind,
    IncompleteStreamError,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RateLimitedError,
)
from botframework.messages import Message, ToolCall, ToolSpec
from botframework.models.base import ModelRequest
from providers.anthropic.client import AnthropicClient, anthropic_base_url
from tests.fakes import Disconnect, Hang, Reply, StreamError, ToolCallSpec, Truncated
from tests.fakes.anthropic_server import (
    FakeAnthropicServer,
    anthropic_error,
    count_prompt_tokens,
    credit_balance_too_low,
    overloaded,
    prompt_too_long,
    rate_limited,
)
from tests.models.helpers import config, request

CLOCK = ToolSpec(name="clock", description="current time")


@pytest.fixture
async def client(fake_anthropic: FakeAnthropicServer) -> AsyncIterator[AnthropicClient]:
    c = AnthropicClient(
        name="claude",
        config=config("anthropic", base_url=fake_anthropic.base_url + "/v1", model="claude-test", timeout_s=5),
    )
    yield c
    await c.close()


class Collect:
    def __init__(self) -> None:
        self.chunks: list[str] = []

    async def __call__(self, text: str) -> None:
        self.chunks.append(text)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def test_base_url_with_or_without_v1() -> None:
    assert anthropic_base_url("https://api.anthropic.com/v1/") == "https://api.anthropic.com"
    assert anthropic_base_url("https://gw.example/anthropic") == "https://gw.example/anthropic"


async def test_streams_text_with_usage_including_cache_reads(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient
) -> None:
    fake_anthropic.push(Reply(text="Bonjour à tous.", chunks=3, input_tokens=120, output_tokens=5, cached_tokens=100))
    sink = Collect()
    response = await client.complete(request("hi"), on_text=sink)
    assert response.text == sink.text == "Bonjour à tous." and len(sink.chunks) == 3
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.cached_tokens) == (
        120,
        5,
        100,
    )
    assert response.model == "claude-test"
    [sent] = fake_anthropic.requests
    assert sent.path == "/v1/messages"
    assert "sk-test-key" in (
        sent.headers.get("x-api-key", ""),
        sent.headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert "anthropic-version" in sent.headers
    assert sent.body["system"] == "You are terse."
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert sent.body["stream"] is True and sent.body["max_tokens"] == 200


async def test_non_streaming_call(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    fake_anthropic.push(
        Reply(
            text="Sure.",
            tool_calls=[ToolCallSpec(name="clock", arguments='{"timezone": "UTC"}', id="toolu_1")],
        )
    )
    response = await client.complete(request(tools=[CLOCK]))
    assert "stream" not in fake_anthropic.requests[0].body
    assert response.text == "Sure."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("toolu_1", "clock", {"timezone": "UTC"})
    ]
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [True, False])
async def test_agent_temperature_is_not_sent(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient, stream: bool
) -> None:
    """An agent with ``temperature`` set used to crash the call (the SDK takes no temperature)."""

    async def sink(_: str) -> None:
        return None

    response = await client.complete(request(temperature=0.7), on_text=sink if stream else None)
    assert response.text == "ok"
    [sent] = fake_anthropic.requests
    assert "temperature" not in sent.body


async def test_accumulates_tool_use_blocks(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    fake_anthropic.push(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCallSpec(name="clock", arguments='{"timezone": "Europe/Paris"}', id="toolu_a"),
                ToolCallSpec(name="clock", arguments='{"timezone": "Asia/Tokyo"}', id="toolu_b"),
            ],
        )
    )
    sink = Collect()
    response = await client.complete(request(tools=[CLOCK]), on_text=sink)
    assert response.finish_reason == "tool_calls"
    assert [(c.id, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("toolu_a", {"timezone": "Europe/Paris"}),
        ("toolu_b", {"timezone": "Asia/Tokyo"}),
    ]
    assert sink.text == "Let me check."


async def test_malformed_tool_input_reaches_the_caller_intact(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient
) -> None:
    broken = '{"timezone": "Asia/Tok'
    fake_anthropic.push(Reply(tool_calls=[ToolCallSpec(name="clock", arguments=broken)], finish_reason="max_tokens"))
    response = await client.complete(request(tools=[CLOCK]), on_text=Collect())
    assert response.tool_calls[0].arguments == broken
    assert response.finish_reason == "length"


async def test_tool_round_trip_is_valid_protocol(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    """A follow-up request with the call and its (error) result passes the fake's protocol checks."""
    fake_anthropic.push(Reply(text="It is noon."))
    req = ModelRequest(
        system="s",
        tools=[CLOCK],
        max_tokens=50,
        messages=[
            Message.user("time?"),
            Message.assistant("", tool_calls=[ToolCall(id="call_x.1", name="clock", arguments="{broken")]),
            Message.tool_result("call_x.1", "invalid arguments", is_error=True),
        ],
    )
    response = await client.complete(req, on_text=Collect())
    assert response.text == "It is noon."
    assert fake_anthropic.protocol_errors == []
    blocks = fake_anthropic.requests[0].body["messages"][2]["content"]
    assert blocks == [
        {"type": "tool_result", "tool_use_id": "call_x_1", "content": "invalid arguments", "is_error": True}
    ]


async def test_refusal_with_nothing_to_show_is_a_content_filter_error(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient
) -> None:
    fake_anthropic.push(Reply(text="", finish_reason="refusal"))
    with pytest.raises(ContentFilterError):
        await client.complete(request(), on_text=Collect())


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        (overloaded(), ErrorKind.OVERLOADED),
        (rate_limited(2), ErrorKind.RATE_LIMITED),
        (prompt_too_long(), ErrorKind.CONTEXT_OVERFLOW),
        (credit_balance_too_low(), ErrorKind.BILLING),
        (anthropic_error(401, "authentication_error", "invalid x-api-key"), ErrorKind.AUTH),
        (anthropic_error(403, "permission_error", "no access"), ErrorKind.AUTH),
        (anthropic_error(404, "not_found_error", "model: claude-test"), ErrorKind.MODEL_NOT_FOUND),
        (
            anthropic_error(400, "invalid_request_error", "messages.0.content: Field required"),
            ErrorKind.BAD_REQUEST,
        ),
        (anthropic_error(500, "api_error", "Internal server error"), ErrorKind.SERVER_ERROR),
        (
            anthropic_error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
            ErrorKind.CONTEXT_OVERFLOW,
        ),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_error_kinds(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient, step: object, kind: ErrorKind, stream: bool
) -> None:
    fake_anthropic.push(step)  # type: ignore[arg-type]
    with pytest.raises(ModelError) as caught:
        await client.complete(request(), on_text=Collect() if stream else None)
    assert caught.value.kind is kind
    assert caught.value.model == "claude"
    assert len(fake_anthropic.requests) == 1, "the SDK must not retry on its own"


async def test_prompt_too_long_numbers(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    fake_anthropic.push(prompt_too_long(250000, 200000))
    with pytest.raises(ContextOverflowError) as caught:
        await client.complete(request(), on_text=Collect())
    assert (caught.value.limit, caught.value.requested) == (200000, 250000)


async def test_rate_limit_retry_after(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    fake_anthropic.push(rate_limited(4))
    with pytest.raises(RateLimitedError) as caught:
        await client.complete(request(), on_text=Collect())
    assert caught.value.retry_after == 4.0


async def test_overloaded_error_event_inside_the_stream(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient
) -> None:
    fake_anthropic.push(StreamError(error_type="overloaded_error", message="Overloaded", after_chunks=1))
    sink = Collect()
    with pytest.raises(ModelError) as caught:
        await client.complete(request(), on_text=sink)
    assert caught.value.kind is ErrorKind.OVERLOADED
    assert sink.text


async def test_mid_stream_disconnect(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    fake_anthropic.push(Disconnect(after_chunks=2))
    with pytest.raises(ModelConnectionError):
        await client.complete(request(), on_text=Collect())


async def test_stream_without_stop_reason_is_incomplete(
    fake_anthropic: FakeAnthropicServer, client: AnthropicClient
) -> None:
    fake_anthropic.push(Truncated(text="I was saying"))
    with pytest.raises(IncompleteStreamError):
        await client.complete(request(), on_text=Collect())


async def test_hang_times_out(fake_anthropic: FakeAnthropicServer) -> None:
    c = AnthropicClient(name="slow", config=config("anthropic", base_url=fake_anthropic.base_url, timeout_s=0.3))
    fake_anthropic.push(Hang(after_chunks=1))
    try:
        with pytest.raises(ModelTimeoutError):
            await c.complete(request(), on_text=Collect())
    finally:
        await c.close()


async def test_context_window_overflow_bodies(fake_anthropic: FakeAnthropicServer, client: AnthropicClient) -> None:
    fake_anthropic.context_window = 400
    big = ModelRequest(system="s", messages=[Message.user("word " * 500)], max_tokens=100)
    with pytest.raises(ContextOverflowError) as caught:
        await client.complete(big, on_text=Collect())
    prompt = count_prompt_tokens(fake_anthropic.requests[0].body)
    assert (caught.value.limit, caught.value.requested) == (400, prompt)
    medium = ModelRequest(system="s", messages=[Message.user("word " * 300)], max_tokens=200)
    with pytest.raises(ContextOverflowError) as caught:
        await client.complete(medium)
    prompt = count_prompt_tokens(fake_anthropic.requests[1].body)
    assert prompt <= 400 < prompt + 200
    assert (caught.value.limit, caught.value.requested) == (400, prompt + 200)
