"""The neutral conversation model every part of the core speaks.

Providers translate these to their own wire shape at the last moment; storage persists them as
JSON. Dataclasses with slots rather than pydantic models: a turn may replay thousands of them and
the budget engine's per-turn cost is measured in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "ContentPart",
    "ImagePart",
    "Message",
    "Role",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "parts_from_json",
    "parts_to_json",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL (``https:`` or ``data:``). Counted at a fixed cost by the budget engine."""

    url: str
    media_type: str = "image/png"
    detail: Literal["auto", "low", "high"] = "auto"


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call as the model produced it. ``arguments`` is the raw JSON text, kept verbatim."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as offered to the model: a name, a description and a JSON schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(slots=True)
class Message:
    """One message of a conversation.

    ``tool_calls`` only on assistant messages; ``tool_call_id`` (and ``is_error``) only on tool
    results. ``id``, ``turn_id``, ``token_count`` and ``offset`` are set once stored; ``offset`` is
    the sum of the token counts of every earlier message of the conversation, which lets the
    history loader find a window-sized suffix with one index range scan.
    """

    role: Role
    content: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False
    id: int | None = None
    turn_id: str | None = None
    turn_start: bool = False
    token_count: int | None = None
    offset: int | None = None
    model: str | None = None

    @classmethod
    def user(cls, text: str, *, images: Iterable[ImagePart] = (), name: str | None = None) -> Message:
        return cls(role="user", content=(TextPart(text), *images), name=name)

    @classmethod
    def assistant(cls, text: str = "", *, tool_calls: Sequence[ToolCall] = ()) -> Message:
        content: tuple[ContentPart, ...] = (TextPart(text),) if text else ()
        return cls(role="assistant", content=content, tool_calls=tuple(tool_calls))

    @classmethod
    def tool_result(cls, tool_call_id: str, text: str, *, name: str | None = None, is_error: bool = False) -> Message:
        return cls(role="tool", content=(TextPart(text),), tool_call_id=tool_call_id, name=name, is_error=is_error)

    @property
    def text(self) -> str:
        """All text parts joined; images are left out."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.content if isinstance(p, ImagePart))

    def without_images(self, note: str = "[image omitted]") -> Message:
        """A copy with images replaced by a short note, for models that take no images."""
        if not self.images:
            return self
        parts: list[ContentPart] = [p for p in self.content if isinstance(p, TextPart)]
        parts.append(TextPart(note))
        return replace(self, content=tuple(parts))


def parts_to_json(parts: Sequence[ContentPart]) -> list[dict[str, Any]]:
    """Storage form of content parts."""
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        else:
            out.append({"type": "image", "url": p.url, "media_type": p.media_type, "detail": p.detail})
    return out


def parts_from_json(data: Any) -> tuple[ContentPart, ...]:
    """Inverse of :func:`parts_to_json`; a bare string is one text part."""
    if data is None:
        return ()
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return (TextPart(data),)
        if isinstance(data, str):
            return (TextPart(data),)
    parts: list[ContentPart] = []
    for item in data:
        if item.get("type") == "image":
            parts.append(
                ImagePart(
                    url=item["url"],
                    media_type=item.get("media_type", "image/png"),
                    detail=item.get("detail", "auto"),
                )
            )
        else:
            parts.append(TextPart(item.get("text", "")))
    return tuple(parts)
