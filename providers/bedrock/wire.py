"""The InvokeModel request for an Anthropic model on Bedrock: Anthropic's Messages body (built by
:mod:`providers.anthropic.wire`, cached wire forms included) without ``model`` and ``stream``,
which go in the path, and with Bedrock's ``anthropic_version``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from botframework.models.base import ModelRequest
from providers.anthropic.wire import Wire, messages_body

__all__ = ["BEDROCK_ANTHROPIC_VERSION", "invoke_body", "invoke_path"]

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"


def invoke_path(model: str, *, stream: bool) -> str:
    operation = "invoke-with-response-stream" if stream else "invoke"
    return f"/model/{quote(model, safe=':')}/{operation}"


def invoke_body(request: ModelRequest, *, wire: Wire) -> dict[str, Any]:
    body = messages_body(request, model="", stream=False, wire=wire)
    del body["model"]
    return {"anthropic_version": BEDROCK_ANTHROPIC_VERSION, **body}
