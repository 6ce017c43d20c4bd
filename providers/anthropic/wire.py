"""Neutral ModelRequest -> the JSON body of Anthropic's ``POST /v1/messages``.

Shape: the system prompt (and any ``system`` messages, e.g. a summary) in the ``system``
parameter; messages strictly alternate user/assistant and start with a user message: consecutive
same-role messages are merged into one, tool results become ``tool_result`` blocks (with
``is_error``) of a user message, placed before any text of that message as the API requires, and
assistant tool calls become ``tool_use`` blocks. Empty text blocks are dropped (the API refuses
them); if history starts with an assistant message a short user placeholder is put first.

A tool call whose stored arguments are not a JSON object (the model wrote malformed JSON; the
tool loop answered it with an error result) is sent with ``input: {}``: the API only accepts an
object there, and the error result beside it tells the model what went wrong.

:class:`CachedWire` keeps each stored message's blocks, each tool and the system prompt between
calls (:class:`~botframework.models.wirecache.WireCache`) and writes the body's JSON from them;
the merging below copies what it changes, so cached blocks are never altered.

``agent.temperature`` is not sent: the Messages API deprecated its sampling parameters (current
models refuse them with a 400, and the SDK no longer takes them); every model uses its default.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botframework.messages import ImagePart, Message, TextPart, ToolSpec
from botframework.models.base import ModelRequest
from botframework.models.wirecache import WireCache, message_fingerprint

__all__ = ["CONTINUATION_PLACEHOLDER", "CachedWire", "Wire", "message_blocks", "messages_body", "tool_to_anthropic"]

CONTINUATION_PLACEHOLDER = "(earlier conversation omitted)"

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def _tool_id(raw: str | None) -> str:
    """Anthropic ids must match ``^[a-zA-Z0-9_-]+$``; other providers' ids may not."""
    return _BAD_ID_CHARS.sub("_", raw or "") or "toolu_missing"


def _image_block(part: ImagePart) -> dict[str, Any]:
    m = _DATA_URL.match(part.url)
    if m is not None:
        return {"type": "image", "source": {"type": "base64", "media_type": m["media"], "data": m["data"]}}
    return {"type": "image", "source": {"type": "url", "url": part.url}}


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part))
    return blocks


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def message_blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    """``(role, content blocks)`` of one neutral message (``system`` messages are not handled here)."""
    if message.role == "tool":
        blocks = _content_blocks(message)
        has_images = any(b["type"] == "image" for b in blocks)
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": _tool_id(message.tool_call_id),
            "content": blocks if has_images else message.text,
        }
        if message.is_error:
            result["is_error"] = True
        return "user", [result]
    if message.role == "assistant":
        blocks = [b for b in _content_blocks(message) if b["type"] == "text"]
        blocks.extend(
            {"type": "tool_use", "id": _tool_id(c.id), "name": c.name, "input": _tool_input(c.arguments)}
            for c in message.tool_calls
        )
        return "assistant", blocks
    return "user", _content_blocks(message)


def tool_to_anthropic(tool: ToolSpec) -> dict[str, Any]:
    schema = dict(tool.parameters) if tool.parameters else {}
    schema.setdefault("type", "object")
    return {"name": tool.name, "description": tool.description, "input_schema": schema}


class Wire:
    """The wire forms of a body's pieces, built anew each time."""

    def turn(self, message: Message) -> dict[str, Any]:
        """The message alone as a turn, ``{"role", "content": blocks}`` (may be shared: copy to change)."""
        role, blocks = message_blocks(message)
        return {"role": role, "content": blocks}

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return tool_to_anthropic(tool)


class CachedWire(Wire):
    """Wire forms kept between calls: stored messages' turns by id, and tools (see the module)."""

    def __init__(self, cache: WireCache | None = None) -> None:
        self.cache = cache or WireCache()

    def turn(self, message: Message) -> dict[str, Any]:
        if message.id is None:
            return super().turn(message)
        return self.cache.get(
            ("m", message.id), message_fingerprint(message), lambda: super(CachedWire, self).turn(message)
        )

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return self.cache.get(("t", id(tool)), tool, lambda: tool_to_anthropic(tool))

    def encode(self, body: dict[str, Any]) -> bytes:
        """The JSON of a body built with this wire: body -> messages -> cached turns (or merged ones)."""
        return self.cache.encode(body, depth=3)


_FRESH = Wire()


def messages_body(request: ModelRequest, *, model: str, stream: bool, wire: Wire = _FRESH) -> dict[str, Any]:
    """The exact JSON body the Anthropic provider sends for ``request``. Pure: no I/O."""
    system_parts = [request.system] if request.system else []
    turns: list[dict[str, Any]] = []
    merged: set[int] = set()
    """ids of the turns built here (two or more messages merged), which may be changed in place."""
    for message in request.messages:
        if message.role == "system":
            if message.text:
                system_parts.append(message.text)
            continue
        turn = wire.turn(message)
        if not turn["content"]:
            continue
        if turns and turns[-1]["role"] == turn["role"]:
            last = turns[-1]
            if id(last) not in merged:
                last = turns[-1] = {"role": last["role"], "content": list(last["content"])}
                merged.add(id(last))
            last["content"].extend(turn["content"])
        else:
            turns.append(turn)
    for turn in turns:
        if turn["role"] == "user" and id(turn) in merged:  # one message's blocks are already in order
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": CONTINUATION_PLACEHOLDER}]})
    last = turns[-1]
    if last["role"] == "assistant":
        # The API refuses a final assistant turn (a prefill) that ends with whitespace.
        content = list(last["content"])
        if content and content[-1]["type"] == "text":
            content[-1] = {**content[-1], "text": content[-1]["text"].rstrip()}
            if not content[-1]["text"]:
                content.pop()
        if content:
            turns[-1] = {"role": "assistant", "content": content}
        else:
            turns.pop()
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "messages": turns}
    if system_parts:
        body["system"] = "\n\n".join(system_parts)
    if request.tools:
        body["tools"] = [wire.tool(t) for t in request.tools]
    if stream:
        body["stream"] = True
    return body
