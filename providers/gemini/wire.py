"""Neutral ModelRequest -> the body of Gemini's ``generateContent`` (``contents``,
``systemInstruction``, ``tools``, ``generationConfig``), in the API's own JSON field names.

Shape: the system prompt and any ``system`` messages in ``systemInstruction``; ``contents``
alternate ``user``/``model`` (consecutive same-role messages are merged, a leading model turn gets
a short user placeholder first); assistant tool calls are ``functionCall`` parts (arguments as an
object; malformed ones as ``{}``, the error result beside them says why), carrying the
``thoughtSignature`` the model gave them when it is known; each tool result is a
``functionResponse`` part in a user turn, by the tool's name, ``{"result": text}`` or
``{"error": text}``, placed before any text of that turn. Images: ``data:`` URLs inline
(``inlineData``), others by URI (``fileData``). Tools are ``functionDeclarations`` with their JSON
schema as ``parametersJsonSchema``.

:class:`CachedWire` keeps each stored message's turn between calls (the merging copies what it
changes); :func:`generate_body` without it builds everything anew.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from botframework.messages import ImagePart, Message, TextPart, ToolSpec
from botframework.models.base import ModelRequest
from botframework.models.wirecache import WireCache, message_fingerprint

__all__ = ["CONTINUATION_PLACEHOLDER", "CachedWire", "Wire", "generate_body", "message_turn", "tool_to_gemini"]

CONTINUATION_PLACEHOLDER = "(earlier conversation omitted)"

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


def _image(part: ImagePart) -> dict[str, Any]:
    m = _DATA_URL.match(part.url)
    if m is not None:
        return {"inlineData": {"mimeType": m["media"], "data": m["data"]}}
    return {"fileData": {"mimeType": part.media_type, "fileUri": part.url}}


def _parts(message: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                out.append({"text": part.text})
        elif isinstance(part, ImagePart):
            out.append(_image(part))
    return out


def _args(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def message_turn(message: Message, *, tool_names: Mapping[str, str], signatures: Mapping[str, str]) -> dict[str, Any]:
    """One neutral message as ``{"role", "parts"}`` (``system`` messages are not handled here)."""
    if message.role == "tool":
        name = message.name or tool_names.get(message.tool_call_id or "", "tool")
        key = "error" if message.is_error else "result"
        response = {"functionResponse": {"name": name, "response": {key: message.text}}}
        return {"role": "user", "parts": [response, *(p for p in _parts(message) if "text" not in p)]}
    if message.role == "assistant":
        parts = [p for p in _parts(message) if "text" in p]
        for call in message.tool_calls:
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": _args(call.arguments)}}
            signature = signatures.get(call.id)
            if signature:
                part["thoughtSignature"] = signature
            parts.append(part)
        return {"role": "model", "parts": parts}
    return {"role": "user", "parts": _parts(message)}


def tool_to_gemini(tool: ToolSpec) -> dict[str, Any]:
    schema = dict(tool.parameters) if tool.parameters else {}
    schema.setdefault("type", "object")
    return {"name": tool.name, "description": tool.description, "parametersJsonSchema": schema}


class Wire:
    """The wire forms of a body's pieces, built anew each time. ``signatures``: the thought
    signatures the model attached to its function calls, by call id."""

    def __init__(self, signatures: Mapping[str, str] | None = None) -> None:
        self.signatures: Mapping[str, str] = signatures if signatures is not None else {}

    def turn(self, message: Message, tool_names: Mapping[str, str]) -> dict[str, Any]:
        return message_turn(message, tool_names=tool_names, signatures=self.signatures)

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return tool_to_gemini(tool)


class CachedWire(Wire):
    def __init__(self, signatures: Mapping[str, str] | None = None, cache: WireCache | None = None) -> None:
        super().__init__(signatures)
        self.cache = cache or WireCache()

    def turn(self, message: Message, tool_names: Mapping[str, str]) -> dict[str, Any]:
        if message.id is None:
            return super().turn(message, tool_names)
        return self.cache.get(
            ("m", message.id), message_fingerprint(message), lambda: super(CachedWire, self).turn(message, tool_names)
        )

    def tool(self, tool: ToolSpec) -> dict[str, Any]:
        return self.cache.get(("t", id(tool)), tool, lambda: tool_to_gemini(tool))


_FRESH = Wire()


def generate_body(request: ModelRequest, *, wire: Wire = _FRESH) -> dict[str, Any]:
    """The JSON body (without the model, which is in the path) for ``request``. Pure: no I/O."""
    system = [request.system] if request.system else []
    tool_names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    contents: list[dict[str, Any]] = []
    merged: set[int] = set()
    for message in request.messages:
        if message.role == "system":
            if message.text:
                system.append(message.text)
            continue
        turn = wire.turn(message, tool_names)
        if not turn["parts"]:
            continue
        if contents and contents[-1]["role"] == turn["role"]:
            last = contents[-1]
            if id(last) not in merged:
                last = contents[-1] = {"role": last["role"], "parts": list(last["parts"])}
                merged.add(id(last))
            last["parts"].extend(turn["parts"])
        else:
            contents.append(turn)
    for content in contents:
        if content["role"] == "user" and id(content) in merged:
            content["parts"].sort(key=lambda p: "functionResponse" not in p)
    if not contents or contents[0]["role"] != "user":
        contents.insert(0, {"role": "user", "parts": [{"text": CONTINUATION_PLACEHOLDER}]})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [wire.tool(t) for t in request.tools]}]
    config: dict[str, Any] = {"maxOutputTokens": request.max_tokens}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    body["generationConfig"] = config
    return body
