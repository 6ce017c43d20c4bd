"""Neutral ModelRequest -> the JSON body of ``POST /v1/chat/completions`` (OpenAI and compatibles).

Shape: the system prompt first as a ``system`` message; user content as a plain string, or as
parts (``text`` and ``image_url``) when it has images; assistant messages with ``tool_calls``
(``content`` null when there is no text); each tool result as a ``tool`` message with its
``tool_call_id``. OpenAI has no error flag on tool results, so ``is_error`` is not sent: the
result text itself must say what went wrong.

Tool messages take text only. Images a tool returned follow the tool results of their round in one
``user`` message (labelled with the tool and call id), so every call is still answered by its own
``tool`` message, in order, and the model sees the pictures before it answers.

:class:`CachedWire` builds each stored message's, tool's and system prompt's wire form once per
client (:class:`~botframework.models.wirecache.WireCache`) and writes the body's JSON from the
pieces; :func:`chat_completions_body` without it builds everything anew (same result).
"""

from __future__ import annotations

import re
from typing import Any

from botframework.messages import ImagePart, Message, TextPart, ToolSpec
from botframework.models.base import ModelRequest
from botframework.models.wirecache import WireCache, message_fingerprint

__all__ = [
    "CachedWire",
    "Wire",
    "chat_completions_body",
    "message_to_openai",
    "system_to_openai",
    "tool_to_openai",
    "uses_max_completion_tokens",
]

_REASONING_MODEL = re.compile(r"^(?:.*/)?(o\d|gpt-5)", re.IGNORECASE)


def uses_max_completion_tokens(model: str) -> bool:
    """OpenAI's reasoning families reject ``max_tokens``; most compatible servers only know it."""
    return bool(_REASONING_MODEL.match(model))


def _user_content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}})
    return parts


def message_to_openai(message: Message) -> dict[str, Any]:
    """One neutral message as an OpenAI chat message."""
    if message.role == "tool":
        text = message.text
        if message.images:
            text += f"\n[{len(message.images)} image(s) from this result follow in the next user message]"
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": text}
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.text or None}
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        elif out["content"] is None:
            out["content"] = ""
        return out
    if message.role == "system":
        return {"role": "system", "content": message.text}
    user: dict[str, Any] = {"role": "user", "content": _user_content(message)}
    if message.name:
        user["name"] = _safe_name(message.name)
    return user


def _safe_name(name: str) -> str:
    """OpenAI allows ``^[a-zA-Z0-9_-]{1,64}$`` in ``name``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return cleaned or "user"


def tool_to_openai(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def system_to_openai(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


class Wire:
    """The wire forms of a body's pieces, built anew each time."""

    def message(self, message: Message) -> dict[str, Any]:
        return message_to_openai(message)

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return tool_to_openai(tool)

    def system(self, text: str) -> dict[str, Any]:
        return system_to_openai(text)


class CachedWire(Wire):
    """Wire forms kept between calls: stored messages by id, tools, system prompts (see the module)."""

    def __init__(self, cache: WireCache | None = None) -> None:
        self.cache = cache or WireCache()

    def message(self, message: Message) -> dict[str, Any]:
        if message.id is None:
            return message_to_openai(message)
        return self.cache.get(("m", message.id), message_fingerprint(message), lambda: message_to_openai(message))

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return self.cache.get(("t", id(tool)), tool, lambda: tool_to_openai(tool))

    def system(self, text: str) -> dict[str, Any]:
        return self.cache.get(("s", text), text, lambda: system_to_openai(text))

    def encode(self, body: dict[str, Any]) -> bytes:
        """The JSON of a body built with this wire: body -> messages/tools -> cached pieces."""
        return self.cache.encode(body, depth=2)


_FRESH = Wire()


def chat_completions_body(request: ModelRequest, *, model: str, stream: bool, wire: Wire = _FRESH) -> dict[str, Any]:
    """The exact JSON body the OpenAI provider sends for ``request``. Pure: no I/O."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append(wire.system(request.system))
    carried: list[dict[str, Any]] = []
    for m in request.messages:
        if carried and m.role != "tool":
            messages.append({"role": "user", "content": carried})
            carried = []
        messages.append(wire.message(m))
        if m.role == "tool" and m.images:
            carried.append({"type": "text", "text": f"[images from tool {m.name or 'result'} ({m.tool_call_id})]"})
            carried.extend({"type": "image_url", "image_url": {"url": p.url, "detail": p.detail}} for p in m.images)
    if carried:
        messages.append({"role": "user", "content": carried})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if uses_max_completion_tokens(model):
        body["max_completion_tokens"] = request.max_tokens
    else:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [wire.tool(t) for t in request.tools]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
