"""Any OpenAI-compatible Chat Completions endpoint, through the official ``openai`` SDK.

Covers OpenAI, Azure OpenAI (via its v1-compatible base URL), DeepSeek, Qwen, Moonshot, vLLM,
Ollama and llama.cpp servers. The SDK's own retries are off (``max_retries=0``): the router owns
retries and fallbacks. Streaming asks for usage (``stream_options.include_usage``); tool-call
fragments are accumulated by index; a stream that ends without a finish reason, or drops, raises.

The body is built by :mod:`providers.openai.wire` (stored messages' wire forms cached per client)
and handed to the SDK as finished JSON (``post(..., content=...)``): the SDK keeps transport,
auth, streaming, response types and errors, but does not walk the messages through its typed
request transform on every call, which cost most of a long conversation's CPU per turn.
"""

from __future__ import annotations

from typing import Any, ClassVar

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from botframework.config.schema import ModelConfig
from botframework.errors import ServerError
from botframework.messages import ToolCall
from botframework.models.base import ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.sdk_client import SdkClient
from botframework.models.streaming import ToolCallAccumulator, build_response, new_call_id
from botframework.models.textcalls import TextCallFilter
from providers.openai.config import OpenAIModelConfig
from providers.openai.errors import OPENAI_ERRORS
from providers.openai.wire import CachedWire, chat_completions_body

__all__ = ["OpenAIClient"]


def _usage(raw: CompletionUsage | None) -> Usage:
    if raw is None:
        return Usage()
    details = raw.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage(input_tokens=raw.prompt_tokens or 0, output_tokens=raw.completion_tokens or 0, cached_tokens=cached)


class OpenAIClient(SdkClient):
    config_model: ClassVar[type[ModelConfig]] = OpenAIModelConfig
    errors = OPENAI_ERRORS

    def __init__(self, *, name: str, config: ModelConfig) -> None:
        super().__init__(name=name, config=config)
        self.sdk = self._sdk(config)
        self.wire = CachedWire()

    def _sdk(self, config: ModelConfig) -> openai.AsyncOpenAI:
        kwargs: dict[str, Any] = {}
        if config.base_url:
            kwargs["base_url"] = config.base_url
        return openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value() if config.api_key is not None else "",
            max_retries=0,
            timeout=config.timeout_s,
            default_headers=config.headers or None,
            **kwargs,
        )

    def body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        return chat_completions_body(request, model=self.config.model, stream=stream, wire=self.wire)

    async def _send(self, request: ModelRequest, *, stream: bool) -> Any:
        """POST the body, JSON already written, through the SDK (a ChatCompletion, or a stream)."""
        return await self.sdk.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            content=self.wire.encode(self.body(request, stream=stream)),
            options={"security": {"bearer_auth": True}},
            stream=stream,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )

    async def _once(self, request: ModelRequest) -> ModelResponse:
        result: ChatCompletion = await self._send(request, stream=False)
        if not result.choices:
            raise ServerError("the response has no choices", model=self.name)
        choice = result.choices[0]
        message = choice.message
        native: tuple[ToolCall, ...] = ()
        for c in message.tool_calls or ():
            fn = getattr(c, "function", None)  # compatible servers may omit ``type``; custom tools have none
            if fn is not None:
                native += (ToolCall(id=c.id or new_call_id(), name=fn.name, arguments=fn.arguments or "{}"),)
        if not native and message.function_call is not None:
            fc = message.function_call
            native = (ToolCall(id=new_call_id(), name=fc.name, arguments=fc.arguments or "{}"),)
        return await build_response(
            model_name=self.name,
            raw_finish=choice.finish_reason,
            text=message.content or "",
            native_calls=native,
            tools=request.tools,
            usage=_usage(result.usage),
            provider_model=result.model or self.config.model,
            refusal=message.refusal,
        )

    async def _stream(self, request: ModelRequest, on_text: TextCallback) -> ModelResponse:
        stream: openai.AsyncStream[ChatCompletionChunk] = await self._send(request, stream=True)
        text = TextCallFilter(on_text, tool_names=[t.name for t in request.tools], active=bool(request.tools))
        calls = ToolCallAccumulator()
        finish: str | None = None
        usage: CompletionUsage | None = None
        model = ""
        refusal: list[str] = []
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                    self.saw_usage(_usage(usage))
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    if delta is not None:
                        if delta.content:
                            await text.feed(delta.content)
                        if delta.refusal:
                            refusal.append(delta.refusal)
                        for tc in delta.tool_calls or ():
                            key = calls.key_for(tc.index, tc.id)
                            fn = tc.function
                            calls.add(
                                key,
                                call_id=tc.id,
                                name=fn.name if fn else None,
                                arguments=fn.arguments if fn else None,
                            )
                        if delta.function_call is not None:
                            calls.add(0, name=delta.function_call.name, arguments=delta.function_call.arguments)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        return await build_response(
            model_name=self.name,
            raw_finish=finish,
            text=text,
            native_calls=calls.calls(),
            tools=request.tools,
            usage=_usage(usage),
            provider_model=model or self.config.model,
            refusal="".join(refusal) or None,
        )

    async def close(self) -> None:
        await self.sdk.close()
