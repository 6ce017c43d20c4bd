"""The OpenAI provider driving the real ``openai`` SDK over HTTP against the fake server."""

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
from botframework.messages import Message, ToolSpec
from botframework.models.base import ModelRequest
from providers.openai.client import OpenAIClient
from tests.fakes import Disconnect, Hang, Reply, StreamError, ToolCallSpec, Truncated
from tests.fakes.openai_server import (
    FakeOpenAIServer,
    context_length_exceeded,
    count_prompt_tokens,
    insufficient_quota,
    openai_error,
    rate_limited,
    server_error,
)
from tests.models.helpers import config, request

CLOCK = ToolSpec(name="clock", description="current time")


@pytest.fixture
async def client(fake_openai: FakeOpenAIServer) -> AsyncIterator[OpenAIClient]:
    c = OpenAIClient(
        name="main",
        config=config(base_url=fake_openai.base_url, model="gpt-test", timeout_s=5, headers={"X-Gateway": "g1"}),
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


async def test_streams_text_and_reports_usage(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(Reply(text="Hello there, friend.", chunks=4, input_tokens=42, output_tokens=6, cached_tokens=32))
    sink = Collect()
    response = await client.complete(request("hi"), on_text=sink)
    assert response.text == "Hello there, friend."
    assert len(sink.chunks) == 4 and sink.text == response.text
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.cached_tokens) == (
        42,
        6,
        32,
    )
    assert response.model == "gpt-test"
    [sent] = fake_openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert sent.headers["x-gateway"] == "g1"
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent.body["max_tokens"] == 200


async def test_usage_defaults_to_the_servers_count(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(Reply(text="ok"))
    response = await client.complete(request("count me"), on_text=Collect())
    assert response.usage.input_tokens == count_prompt_tokens(fake_openai.requests[0].body) > 10


async def test_non_streaming_call(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(Reply(text="plain", tool_calls=[ToolCallSpec(name="clock", arguments="{}", id="c9")]))
    response = await client.complete(request(tools=[CLOCK]))
    assert "stream" not in fake_openai.requests[0].body
    assert response.text == "plain"
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [("c9", "clock", "{}")]
    assert response.finish_reason == "tool_calls"


async def test_accumulates_streamed_tool_calls(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(
        Reply(
            text="Checking both.",
            tool_calls=[
                ToolCallSpec(name="clock", arguments='{"timezone": "Europe/Paris"}', id="call_a"),
                ToolCallSpec(name="clock", arguments='{"timezone": "Asia/Tokyo"}', id="call_b"),
            ],
        )
    )
    sink = Collect()
    response = await client.complete(request(tools=[CLOCK]), on_text=sink)
    assert response.finish_reason == "tool_calls"
    assert [(c.id, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("call_a", {"timezone": "Europe/Paris"}),
        ("call_b", {"timezone": "Asia/Tokyo"}),
    ]
    assert sink.text == response.text == "Checking both."
    assert fake_openai.requests[0].body["tools"][0]["function"]["name"] == "clock"


async def test_malformed_arguments_reach_the_caller_intact(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    broken = '{"timezone": "Europe/Par'
    fake_openai.push(Reply(tool_calls=[ToolCallSpec(name="clock", arguments=broken)]))
    response = await client.complete(request(tools=[CLOCK]), on_text=Collect())
    assert response.tool_calls[0].arguments == broken
    assert response.tool_calls[0].id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("function_call", "tool_calls"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
    ],
)
async def test_finish_reason_aliases(
    fake_openai: FakeOpenAIServer, client: OpenAIClient, raw: str, expected: str
) -> None:
    calls = [ToolCallSpec(name="clock")] if expected == "tool_calls" else []
    fake_openai.push(Reply(text="partial" if not calls else "", tool_calls=calls, finish_reason=raw))
    response = await client.complete(request(tools=[CLOCK]), on_text=Collect())
    assert response.finish_reason == expected


async def test_content_filter_with_nothing_to_show_raises(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(Reply(text="", finish_reason="content_filter"))
    with pytest.raises(ContentFilterError):
        await client.complete(request(), on_text=Collect())


async def test_text_tool_call_becomes_a_real_call_and_is_not_streamed(
    fake_openai: FakeOpenAIServer, client: OpenAIClient
) -> None:
    fake_openai.push(
        Reply(
            text='One moment. <function_call>{"name": "clock", "arguments": {"timezone": "UTC"}}</function_call>',
            chunks=7,
            finish_reason="stop",
        )
    )
    sink = Collect()
    response = await client.complete(request(tools=[CLOCK]), on_text=sink)
    assert [c.name for c in response.tool_calls] == ["clock"]
    assert json.loads(response.tool_calls[0].arguments) == {"timezone": "UTC"}
    assert response.finish_reason == "tool_calls"
    assert "function_call" not in sink.text
    assert sink.text == response.text == "One moment. "


async def test_text_that_looks_like_a_call_stays_text_without_tools(
    fake_openai: FakeOpenAIServer, client: OpenAIClient
) -> None:
    text = '<function_call>{"name": "clock"}</function_call>'
    fake_openai.push(Reply(text=text))
    response = await client.complete(request(), on_text=Collect())
    assert response.text == text and response.tool_calls == ()


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        (rate_limited(3), ErrorKind.RATE_LIMITED),
        (insufficient_quota(), ErrorKind.BILLING),
        (
            openai_error(401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key"),
            ErrorKind.AUTH,
        ),
        (
            openai_error(403, "Country not supported", code="unsupported_country_region_territory"),
            ErrorKind.AUTH,
        ),
        (
            openai_error(404, "The model `gpt-test` does not exist", code="model_not_found"),
            ErrorKind.MODEL_NOT_FOUND,
        ),
        (context_length_exceeded(), ErrorKind.CONTEXT_OVERFLOW),
        (openai_error(400, "Invalid value for 'temperature'"), ErrorKind.BAD_REQUEST),
        (openai_error(400, "filtered", code="content_filter"), ErrorKind.CONTENT_FILTER),
        (server_error(500), ErrorKind.SERVER_ERROR),
        (server_error(503), ErrorKind.OVERLOADED),
        (server_error(529), ErrorKind.OVERLOADED),
        (server_error(504), ErrorKind.TIMEOUT),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_error_kinds(
    fake_openai: FakeOpenAIServer, client: OpenAIClient, step: object, kind: ErrorKind, stream: bool
) -> None:
    fake_openai.push(step)  # type: ignore[arg-type]
    with pytest.raises(ModelError) as caught:
        await client.complete(request(), on_text=Collect() if stream else None)
    assert caught.value.kind is kind
    assert caught.value.model == "main"
    assert len(fake_openai.requests) == 1, "the SDK must not retry on its own"


async def test_rate_limit_carries_retry_after(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(rate_limited(retry_after=None, retry_after_ms=1500))
    with pytest.raises(RateLimitedError) as caught:
        await client.complete(request(), on_text=Collect())
    assert caught.value.retry_after == 1.5


async def test_mid_stream_disconnect_is_a_connection_error(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(Disconnect(text="It was the best of times", after_chunks=2))
    sink = Collect()
    with pytest.raises(ModelConnectionError):
        await client.complete(request(), on_text=sink)
    assert sink.text, "text had been streamed before the drop"


async def test_stream_without_finish_reason_is_incomplete(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(Truncated(text="A short answer that stops"))
    sink = Collect()
    with pytest.raises(IncompleteStreamError) as caught:
        await client.complete(request(), on_text=sink)
    assert "without a finish reason" in str(caught.value)
    assert sink.text == "A short answer that stops"


async def test_error_inside_the_stream(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.push(StreamError(error_type="server_error", message="The server had an error"))
    with pytest.raises(ModelError) as caught:
        await client.complete(request(), on_text=Collect())
    assert caught.value.kind is ErrorKind.SERVER_ERROR


@pytest.mark.parametrize("stream", [True, False])
async def test_hang_times_out_within_timeout_s(fake_openai: FakeOpenAIServer, stream: bool) -> None:
    c = OpenAIClient(name="slow", config=config(base_url=fake_openai.base_url, timeout_s=0.3))
    fake_openai.push(Hang(after_chunks=1))
    try:
        with pytest.raises(ModelTimeoutError):
            await c.complete(request(), on_text=Collect() if stream else None)
    finally:
        await c.close()


async def test_real_overflow_body_from_context_window(fake_openai: FakeOpenAIServer, client: OpenAIClient) -> None:
    fake_openai.context_window = 300
    with pytest.raises(ContextOverflowError) as caught:
        await client.complete(
            ModelRequest(system="s", messages=[Message.user("word " * 200)], max_tokens=100),
            on_text=Collect(),
        )
    prompt = count_prompt_tokens(fake_openai.requests[0].body)
    assert (caught.value.limit, caught.value.requested) == (300, prompt + 100)
    fake_openai.push(Reply(text="fits"))
    ok = await client.complete(ModelRequest(system="s", messages=[Message.user("short")], max_tokens=100))
    assert ok.text == "fits"


async def test_connection_refused_is_a_connection_error() -> None:
    async with FakeOpenAIServer() as server:
        url = server.base_url
    c = OpenAIClient(name="gone", config=config(base_url=url, timeout_s=2))
    try:
        with pytest.raises(ModelConnectionError):
            await c.complete(request(), on_text=Collect())
    finally:
        await c.close()
