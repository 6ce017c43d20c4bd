"""Neutral ModelRequest -> the body of Cohere's ``POST /v2/chat``.

Shape: the system prompt first as a ``system`` message; user content a string, or ``text`` and
``image_url`` parts when it has images; an assistant message with tool calls carries its text as
``tool_plan`` (Cohere's place for what the model says before calling tools) and ``tool_calls`` in
the function format (arguments kept verbatim as a string); each tool result is a ``tool``
message with its ``tool_call_id`` (Cohere has no error flag: the text says what went wrong).
``temperature`` is capped at 1, the top of Cohere's range.

:class:`CachedWire` keeps each stored message's wire form, each tool and the system prompt
between calls; :func:`chat_body` without it builds everything anew.
"""

from __future__ import annotations

from typing import Any

from botframework.messages import ImagePart, Message, TextPart, ToolSpec
from botframework.models.base import ModelRequest
from botframework.models.wirecache import WireCache, message_fingerprint

__all__ = ["CachedWire", "Wire", "chat_body", "message_to_cohere", "tool_to_cohere"]


def _user_content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": part.url}})
    return parts


def message_to_cohere(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.text}
    if message.role == "assistant":
        if not message.tool_calls:
            return {"role": "assistant", "content": message.text}
        out: dict[str, Any] = {
            "role": "assistant",
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ],
        }
        if message.text:
            out["tool_plan"] = message.text
        return out
    if message.role == "system":
        return {"role": "system", "content": message.text}
    return {"role": "user", "content": _user_content(message)}


def tool_to_cohere(tool: ToolSpec) -> dict[str, Any]:
    schema = dict(tool.parameters) if tool.parameters else {}
    schema.setdefault("type", "object")
    return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": schema}}


class Wire:
    def message(self, message: Message) -> dict[str, Any]:
        return message_to_cohere(message)

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return tool_to_cohere(tool)

    def system(self, text: str) -> dict[str, Any]:
        return {"role": "system", "content": text}


class CachedWire(Wire):
    def __init__(self, cache: WireCache | None = None) -> None:
        self.cache = cache or WireCache()

    def message(self, message: Message) -> dict[str, Any]:
        if message.id is None:
            return message_to_cohere(message)
        return self.cache.get(("m", message.id), message_fingerprint(message), lambda: message_to_cohere(message))

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return self.cache.get(("t", id(tool)), tool, lambda: tool_to_cohere(tool))

    def system(self, text: str) -> dict[str, Any]:
        return self.cache.get(("s", text), text, lambda: Wire.system(self, text))


_FRESH = Wire()


def chat_body(request: ModelRequest, *, model: str, stream: bool, wire: Wire = _FRESH) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append(wire.system(request.system))
    messages.extend(wire.message(m) for m in request.messages)
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": request.max_tokens}
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
    if request.tools:
        body["tools"] = [wire.tool(t) for t in request.tools]
    body["stream"] = stream
    return body
