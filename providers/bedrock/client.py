"""Anthropic models on Amazon Bedrock through ``anthropic.AsyncAnthropicBedrock``.

Why this SDK rather than boto3's ``bedrock-runtime`` in a thread: it is async end to end (no
thread held for the whole of every streamed answer, and the call deadline cancels it cleanly),
it signs with SigV4 through botocore (so the standard AWS credential chain and profiles work),
it decodes Bedrock's binary event stream into the same Messages events as the Anthropic API, and
it raises the same exception types. So this provider is the Anthropic provider with another
endpoint: one body builder, one stream reader, one exception table plus Bedrock's exception names.
The price: only Anthropic models (Bedrock's Converse API would reach others, with another wire).

Requests go to ``POST /model/<model>/invoke`` or ``/invoke-with-response-stream``; the body is
the Messages body without ``model`` and ``stream`` and with ``anthropic_version``, written once
from cached wire forms and handed to the SDK as finished JSON, which it signs and sends.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anthropic
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from pydantic import SecretStr

from botframework.config.schema import ModelConfig
from botframework.models.base import ModelRequest
from providers.anthropic.client import AnthropicClient
from providers.bedrock.config import BedrockModelConfig
from providers.bedrock.errors import BEDROCK_ERRORS
from providers.bedrock.wire import invoke_body, invoke_path

__all__ = ["BedrockClient"]


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class BedrockClient(AnthropicClient):
    config_model: ClassVar[type[ModelConfig]] = BedrockModelConfig
    errors = BEDROCK_ERRORS

    def _sdk(self, config: ModelConfig) -> anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock:
        if not isinstance(config, BedrockModelConfig):
            raise TypeError(f"provider bedrock needs BedrockModelConfig, got {type(config).__name__}")
        return anthropic.AsyncAnthropicBedrock(
            aws_region=config.region,
            aws_access_key=_secret(config.aws_access_key_id),
            aws_secret_key=_secret(config.aws_secret_access_key),
            aws_session_token=_secret(config.aws_session_token),
            aws_profile=config.aws_profile,
            api_key=_secret(config.api_key),
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
            default_headers=config.headers or None,
        )

    def body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        return invoke_body(request, wire=self.wire)

    async def _send(self, request: ModelRequest, *, stream: bool) -> Any:
        return await self.sdk.post(
            invoke_path(self.config.model, stream=stream),
            cast_to=AnthropicMessage,
            content=self.wire.encode(self.body(request, stream=stream)),
            stream=stream,
            stream_cls=anthropic.AsyncStream[RawMessageStreamEvent],
        )
