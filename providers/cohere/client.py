"""Cohere's Chat API v2 through the official ``cohere`` SDK (``AsyncClientV2``).

The body is built by :mod:`providers.cohere.wire` from cached wire forms and handed to the SDK as
``request_options.additional_body_parameters`` (with ``messages=[]`` for the typed parameter), so
the SDK does not convert every message through its typed request models on each call; it keeps
transport, auth, streaming, response types and errors. Its retries are off
(``max_retries: 0``): the router owns retries and fallbacks.

Streaming reads Cohere's events: ``content-delta`` text, ``tool-plan-delta`` (what the model says
before calling tools, streamed as text), ``tool-call-start``/``-delta`` (arguments accumulated
verbatim), and ``message-end`` with the finish reason and usage (``tokens``, the whole prompt,
else ``billed_units``). ``ERROR`` and ``TIMEOUT`` finish reasons raise; a stream without a
``message-end`` finish reason, or one that drops, raises.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from botframework.config.schema import ModelConfig
from botframework.errors import ModelTimeoutError, ServerError
from botframework.messages import ToolCall
from botframework.models.base import ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.sdk_client import SdkClient
from botframework.models.streaming import ToolCallAccumulator, build_response
from botframework.models.textcalls import TextCallFilter
from providers.cohere.config import CohereModelConfig
from providers.cohere.errors import COHERE_ERRORS
from providers.cohere.wire import CachedWire, chat_body

try:
    import cohere
    from cohere import TextAssistantMessageResponseContentItem
    from cohere.core.request_options import RequestOptions
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("provider cohere needs the cohere package: pip install 'botframework[cohere]'") from exc

__all__ = ["CohereClient"]


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    counted = raw.tokens if raw.tokens is not None and raw.tokens.input_tokens is not None else raw.billed_units
    if counted is None:
        return Usage()
    return Usage(
        input_tokens=int(counted.input_tokens or 0),
        output_tokens=int(counted.output_tokens or 0),
        cached_tokens=int(raw.cached_tokens or 0),
    )


class CohereClient(SdkClient):
    config_model: ClassVar[type[ModelConfig]] = CohereModelConfig
    errors = COHERE_ERRORS

    def __init__(self, *, name: str, config: ModelConfig) -> None:
        super().__init__(name=name, config=config)
        if not isinstance(config, CohereModelConfig):
            raise TypeError(f"provider cohere needs CohereModelConfig, got {type(config).__name__}")
        kwargs: dict[str, Any] = {}
        if config.base_url:
            kwargs["base_url"] = config.base_url
        self.http = httpx.AsyncClient(timeout=config.timeout_s)
        """Ours to close: the SDK's client has no close of its own."""
        self.sdk = cohere.AsyncClientV2(
            api_key=config.api_key.get_secret_value(), timeout=config.timeout_s, httpx_client=self.http, **kwargs
        )
        self.wire = CachedWire()

    def _options(self, request: ModelRequest, *, stream: bool) -> RequestOptions:
        body = chat_body(request, model=self.config.model, stream=stream, wire=self.wire)
        del body["model"]
        options: RequestOptions = {"additional_body_parameters": body, "max_retries": 0}
        if self.config.headers:
            options["additional_headers"] = dict(self.config.headers)
        return options

    def _finished(self, reason: str | None, error: str | None) -> str | None:
        if reason == "ERROR":
            raise ServerError(f"the model stopped with an error: {error or 'no detail'}", model=self.name)
        if reason == "TIMEOUT":
            raise ModelTimeoutError("the provider timed the generation out", model=self.name)
        return reason

    async def _once(self, request: ModelRequest) -> ModelResponse:
        result = await self.sdk.chat(
            model=self.config.model, messages=[], request_options=self._options(request, stream=False)
        )
        message = result.message
        text = "".join(c.text for c in message.content or () if isinstance(c, TextAssistantMessageResponseContentItem))
        if not text and message.tool_plan:
            text = message.tool_plan
        native = tuple(
            ToolCall(id=c.id, name=c.function.name or "", arguments=c.function.arguments or "{}")
            for c in message.tool_calls or ()
            if c.function is not None
        )
        return await build_response(
            model_name=self.name,
            raw_finish=self._finished(str(result.finish_reason), None),
            text=text,
            native_calls=native,
            tools=request.tools,
            usage=_usage(result.usage),
            provider_model=self.config.model,
        )

    async def _stream(self, request: ModelRequest, on_text: TextCallback) -> ModelResponse:
        text = TextCallFilter(on_text, tool_names=[t.name for t in request.tools], active=bool(request.tools))
        calls = ToolCallAccumulator()
        finish: str | None = None
        usage = Usage()
        stream = self.sdk.chat_stream(
            model=self.config.model, messages=[], request_options=self._options(request, stream=True)
        )
        async for event in stream:
            kind = event.type
            delta: Any = getattr(event, "delta", None)
            message: Any = getattr(delta, "message", None)
            if kind == "content-delta" and message is not None and message.content is not None:
                if message.content.text:
                    await text.feed(message.content.text)
            elif kind == "tool-plan-delta" and message is not None and message.tool_plan:
                await text.feed(message.tool_plan)
            elif kind in ("tool-call-start", "tool-call-delta") and message is not None and message.tool_calls:
                call = message.tool_calls
                key = getattr(event, "index", None) or 0
                fn = call.function
                calls.add(
                    key,
                    call_id=getattr(call, "id", None),
                    name=getattr(fn, "name", None),
                    arguments=fn.arguments if fn is not None else None,
                )
            elif kind == "message-end" and delta is not None:
                finish = self._finished(delta.finish_reason, delta.error)
                usage = _usage(delta.usage)
                self.saw_usage(usage)
        return await build_response(
            model_name=self.name,
            raw_finish=finish,
            text=text,
            native_calls=calls.calls(),
            tools=request.tools,
            usage=usage,
            provider_model=self.config.model,
        )

    async def close(self) -> None:
        await self.http.aclose()
