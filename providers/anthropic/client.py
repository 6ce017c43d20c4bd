"""Anthropic's Messages API through the official ``anthropic`` SDK.

The SDK's own retries are off (``max_retries=0``): the router owns retries and fallbacks.
Streaming reads the raw events (``message_start`` .. ``message_stop``), accumulating text and
``tool_use`` blocks (``input_json_delta`` fragments kept verbatim). A stream that never delivers a
``stop_reason``, or drops, raises; an ``error`` event mid-stream (e.g. ``overloaded_error``) is
classified like the same error on a fresh request.

``Usage.input_tokens`` is the whole prompt: ``input_tokens`` plus cache reads and cache writes
(Anthropic reports them apart), so it compares with the budget engine's estimate;
``cached_tokens`` is the cache-read part. ``base_url`` is the API root without ``/v1`` (the SDK
adds ``/v1/messages``); a trailing ``/v1`` is tolerated.

The body is built by :mod:`providers.anthropic.wire` (stored messages' blocks cached per client)
and handed to the SDK as finished JSON (``post(..., content=...)``): the SDK keeps transport,
auth, streaming, response types and errors without walking the messages again on every call.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import anthropic
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStreamEvent,
    TextBlock,
    TextDelta,
    ToolUseBlock,
)
from anthropic.types import Message as AnthropicMessage

from botframework.config.schema import ModelConfig
from botframework.messages import ToolCall
from botframework.models.base import ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.sdk_client import SdkClient
from botframework.models.streaming import ToolCallAccumulator, build_response
from botframework.models.textcalls import TextCallFilter
from providers.anthropic.config import AnthropicModelConfig
from providers.anthropic.errors import ANTHROPIC_ERRORS
from providers.anthropic.wire import CachedWire, messages_body

__all__ = ["AnthropicClient", "anthropic_base_url"]


def anthropic_base_url(url: str) -> str:
    """The SDK appends ``/v1/messages``: accept a configured URL with or without ``/v1``."""
    trimmed = url.rstrip("/")
    return trimmed[: -len("/v1")] if trimmed.endswith("/v1") else trimmed


def _prompt_tokens(usage: Any) -> int:
    return sum(
        int(getattr(usage, k, None) or 0)
        for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )


class AnthropicClient(SdkClient):
    config_model: ClassVar[type[ModelConfig]] = AnthropicModelConfig
    errors = ANTHROPIC_ERRORS

    def __init__(self, *, name: str, config: ModelConfig) -> None:
        super().__init__(name=name, config=config)
        self.sdk = self._sdk(config)
        self.wire = CachedWire()

    def _sdk(self, config: ModelConfig) -> anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock:
        kwargs: dict[str, Any] = {}
        if config.base_url:
            kwargs["base_url"] = anthropic_base_url(config.base_url)
        return anthropic.AsyncAnthropic(
            api_key=config.api_key.get_secret_value() if config.api_key is not None else "",
            max_retries=0,
            timeout=config.timeout_s,
            default_headers=config.headers or None,
            **kwargs,
        )

    def body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        return messages_body(request, model=self.config.model, stream=stream, wire=self.wire)

    async def _send(self, request: ModelRequest, *, stream: bool) -> Any:
        """POST the body, JSON already written, through the SDK (a Message, or a stream)."""
        return await self.sdk.post(
            "/v1/messages",
            cast_to=AnthropicMessage,
            content=self.wire.encode(self.body(request, stream=stream)),
            stream=stream,
            stream_cls=anthropic.AsyncStream[RawMessageStreamEvent],
        )

    async def _once(self, request: ModelRequest) -> ModelResponse:
        result: AnthropicMessage = await self._send(request, stream=False)
        texts: list[str] = []
        native: list[ToolCall] = []
        for block in result.content:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                native.append(
                    ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input, ensure_ascii=False))
                )
        usage = Usage(
            input_tokens=_prompt_tokens(result.usage),
            output_tokens=result.usage.output_tokens or 0,
            cached_tokens=result.usage.cache_read_input_tokens or 0,
        )
        return await build_response(
            model_name=self.name,
            raw_finish=result.stop_reason,
            text="".join(texts),
            native_calls=native,
            tools=request.tools,
            usage=usage,
            provider_model=result.model or self.config.model,
        )

    async def _stream(self, request: ModelRequest, on_text: TextCallback) -> ModelResponse:
        stream: anthropic.AsyncStream[RawMessageStreamEvent] = await self._send(request, stream=True)
        text = TextCallFilter(on_text, tool_names=[t.name for t in request.tools], active=bool(request.tools))
        calls = ToolCallAccumulator()
        tool_blocks: dict[int, int] = {}
        start_inputs: dict[int, str] = {}
        finish: str | None = None
        model = ""
        input_tokens = output_tokens = cached = 0
        async with stream:
            async for event in stream:
                if isinstance(event, RawMessageStartEvent):
                    model = event.message.model or model
                    input_tokens = _prompt_tokens(event.message.usage)
                    cached = event.message.usage.cache_read_input_tokens or 0
                    output_tokens = event.message.usage.output_tokens or 0
                    self.saw_usage(Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached))
                elif isinstance(event, RawContentBlockStartEvent):
                    block = event.content_block
                    if isinstance(block, ToolUseBlock):
                        key = tool_blocks.setdefault(event.index, len(tool_blocks))
                        calls.add(key, call_id=block.id, name=block.name)
                        if block.input:
                            start_inputs[key] = json.dumps(block.input, ensure_ascii=False)
                    elif isinstance(block, TextBlock) and block.text:
                        await text.feed(block.text)
                elif isinstance(event, RawContentBlockDeltaEvent):
                    delta = event.delta
                    if isinstance(delta, TextDelta):
                        await text.feed(delta.text)
                    elif isinstance(delta, InputJSONDelta) and event.index in tool_blocks:
                        key = tool_blocks[event.index]
                        calls.add(key, arguments=delta.partial_json)
                elif isinstance(event, RawMessageDeltaEvent):
                    if event.delta.stop_reason:
                        finish = event.delta.stop_reason
                    u = event.usage
                    output_tokens = u.output_tokens or output_tokens
                    if u.input_tokens is not None:
                        input_tokens = max(input_tokens, _prompt_tokens(u))
                    self.saw_usage(Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached))
        for key, arguments in start_inputs.items():
            calls.set_arguments_if_empty(key, arguments)
        return await build_response(
            model_name=self.name,
            raw_finish=finish,
            text=text,
            native_calls=calls.calls(),
            tools=request.tools,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached),
            provider_model=model or self.config.model,
        )

    async def close(self) -> None:
        await self.sdk.close()
