"""Google's Gemini API through the official ``google-genai`` SDK (``client.aio``).

The body is built by :mod:`providers.gemini.wire` from cached wire forms and handed to the SDK
through ``HttpOptions.extra_body``, which replaces the SDK's own ``contents`` (a one-part
placeholder it converts cheaply): the SDK does not validate and convert hundreds of messages into
its typed ``Content`` models on every call, and keeps transport, auth, streaming, response types
and errors. Its retries are off (``HttpRetryOptions(attempts=1)``, which also stops its hidden
retry of connection errors): the router owns retries and fallbacks.

Streaming reads each chunk's text parts (thought parts are skipped) and whole ``functionCall``
parts, keeping the ``thoughtSignature`` the model attached to a call so it goes back with that
call in the next request (newer models refuse a function call turn without it; kept in memory,
bounded). A stream that ends without a ``finishReason``, or drops, raises. A prompt blocked by
the safety system (``promptFeedback.blockReason``) and an answer stopped by it (``SAFETY``,
``RECITATION``...) with nothing to show are content-filter errors. Usage is ``usageMetadata``:
``promptTokenCount`` (cached part in ``cachedContentTokenCount``) and output = candidates +
thoughts, which Google bills as output.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import OrderedDict
from typing import Any, ClassVar

from botframework.config.schema import ModelConfig
from botframework.errors import ContentFilterError
from botframework.models.base import ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.sdk_client import SdkClient
from botframework.models.streaming import ToolCallAccumulator, build_response, new_call_id
from botframework.models.textcalls import TextCallFilter
from providers.gemini.config import GeminiModelConfig
from providers.gemini.errors import GEMINI_ERRORS
from providers.gemini.wire import CachedWire, generate_body

try:
    from google import genai
    from google.genai import types
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("provider gemini needs google-genai: pip install 'botframework[gemini]'") from exc

__all__ = ["GeminiClient"]

_MAX_SIGNATURES = 4096


def _finish(raw: Any) -> str | None:
    if raw is None:
        return None
    name = str(getattr(raw, "value", raw))
    return None if name in ("", "FINISH_REASON_UNSPECIFIED") else name


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(
        input_tokens=meta.prompt_token_count or 0,
        output_tokens=output,
        cached_tokens=meta.cached_content_token_count or 0,
    )


class _Signatures(OrderedDict[str, str]):
    def keep(self, call_id: str, signature: bytes | str | None) -> None:
        if not signature:
            return
        self[call_id] = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
        while len(self) > _MAX_SIGNATURES:
            self.popitem(last=False)


class GeminiClient(SdkClient):
    config_model: ClassVar[type[ModelConfig]] = GeminiModelConfig
    errors = GEMINI_ERRORS

    def __init__(self, *, name: str, config: ModelConfig) -> None:
        super().__init__(name=name, config=config)
        if not isinstance(config, GeminiModelConfig):
            raise TypeError(f"provider gemini needs GeminiModelConfig, got {type(config).__name__}")
        self.sdk = genai.Client(
            api_key=config.api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=config.base_url,
                api_version=config.api_version,
                headers=dict(config.headers) or None,
                timeout=int(config.timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        self.signatures = _Signatures()
        self.wire = CachedWire(self.signatures)

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return generate_body(request, wire=self.wire)

    def _config(self, request: ModelRequest) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(http_options=types.HttpOptions(extra_body=self.body(request)))

    def _calls(self, parts: Any, calls: ToolCallAccumulator) -> None:
        for part in parts or ():
            fc = part.function_call
            if fc is None:
                continue
            call_id = fc.id or new_call_id()
            self.signatures.keep(call_id, part.thought_signature)
            key = len(calls)
            calls.add(key, call_id=call_id, name=fc.name or "", arguments=json.dumps(fc.args or {}, ensure_ascii=False))

    @staticmethod
    def _blocked(response: Any, model: str) -> None:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None and not response.candidates:
            reason = str(getattr(feedback.block_reason, "value", feedback.block_reason))
            detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
            raise ContentFilterError(f"the provider's safety system blocked the prompt ({reason}){detail}", model=model)

    async def _once(self, request: ModelRequest) -> ModelResponse:
        result = await self.sdk.aio.models.generate_content(
            model=self.config.model, contents=".", config=self._config(request)
        )
        self._blocked(result, self.name)
        calls = ToolCallAccumulator()
        texts: list[str] = []
        finish: str | None = None
        if result.candidates:
            candidate = result.candidates[0]
            finish = _finish(candidate.finish_reason)
            parts = candidate.content.parts if candidate.content is not None else None
            texts = [p.text for p in parts or () if p.text and not p.thought]
            self._calls(parts, calls)
        return await build_response(
            model_name=self.name,
            raw_finish=finish,
            text="".join(texts),
            native_calls=calls.calls(),
            tools=request.tools,
            usage=_usage(result.usage_metadata),
            provider_model=result.model_version or self.config.model,
        )

    async def _stream(self, request: ModelRequest, on_text: TextCallback) -> ModelResponse:
        stream = await self.sdk.aio.models.generate_content_stream(
            model=self.config.model, contents=".", config=self._config(request)
        )
        text = TextCallFilter(on_text, tool_names=[t.name for t in request.tools], active=bool(request.tools))
        calls = ToolCallAccumulator()
        finish: str | None = None
        usage = Usage()
        model = ""
        async for chunk in stream:
            self._blocked(chunk, self.name)
            model = chunk.model_version or model
            if chunk.usage_metadata is not None:
                usage = _usage(chunk.usage_metadata)
                self.saw_usage(usage)
            for candidate in chunk.candidates or ():
                if (candidate.index or 0) != 0:
                    continue
                parts = candidate.content.parts if candidate.content is not None else None
                for part in parts or ():
                    if part.text and not part.thought:
                        await text.feed(part.text)
                self._calls(parts, calls)
                finish = _finish(candidate.finish_reason) or finish
        return await build_response(
            model_name=self.name,
            raw_finish=finish,
            text=text,
            native_calls=calls.calls(),
            tools=request.tools,
            usage=usage,
            provider_model=model or self.config.model,
        )

    async def close(self) -> None:
        await asyncio.shield(self.sdk.aio.aclose())
