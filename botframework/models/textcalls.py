"""Tool calls that weaker models write as text instead of using the API's tool-call field.

Recognized (only when tools were offered):

- ``<function_call>{"name": ..., "arguments": {...}}</function_call>`` (also ``<tool_call>``, the
  Hermes/Qwen spelling), several in a row, or one whose closing tag never came (stream ended);
- a markdown fence (```` ```json ````, ```` ```tool_call ```` or bare ```` ``` ````) holding such an
  object or a list of them, when every name is an offered tool;
- the whole reply being such a JSON object or list, when every name is an offered tool.

The JSON is read with :meth:`json.JSONDecoder.raw_decode`, so a ``</function_call>`` or a fence
inside a JSON string is data, never a delimiter, and the arguments are passed on as written: a
string stays byte-for-byte, an object is re-serialized. Text around the calls is kept.

:class:`TextCallFilter` applies the same rules to a stream: it passes text through as it comes,
withholds anything that may turn out to be a call, and at the end releases what was not one. So the
user never sees call markup, and the streamed text equals the final ``ModelResponse.text``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from botframework.messages import ToolCall
from botframework.models.base import TextCallback

__all__ = ["TextCallFilter", "TextCalls", "merge_text_calls", "parse_text_tool_calls"]

_OPEN = re.compile(r"<(function_call|tool_call|functioncall)>", re.IGNORECASE)
_OPENERS = ("<function_call>", "<tool_call>", "<functioncall>")
_FENCE = "```"
_JSON_FENCES = frozenset({"", "json", "json5", "tool_call", "tool_calls", "function_call", "tool_code"})
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class TextCalls:
    """What is left of the text once the calls are taken out, and the calls."""

    text: str
    calls: tuple[ToolCall, ...]


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _as_calls(value: Any, names: Collection[str] | None) -> list[ToolCall] | None:
    """ToolCalls if ``value`` is a call or a non-empty list of calls (names restricted when given)."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls: list[ToolCall] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name", item.get("tool"))
        if not isinstance(name, str) or not name.strip():
            return None
        if names is not None and name not in names:
            return None
        raw: Any = "{}"
        for key in _ARG_KEYS:
            if key in item:
                raw = item[key]
                break
        arguments = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        calls.append(ToolCall(id=_new_id(), name=name.strip(), arguments=arguments))
    return calls


def _decode_at(text: str, start: int) -> tuple[Any, int] | None:
    """Decode one JSON value starting at the first non-space at or after ``start``."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] not in "{[":
        return None
    try:
        return _DECODER.raw_decode(text, i)
    except ValueError:
        return None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


@dataclass(frozen=True, slots=True)
class _Fence:
    """A fenced block starting at ``start``; ``end`` is past its closing fence (None: not closed yet)."""

    start: int
    end: int | None
    calls: list[ToolCall] | None
    complete_info: bool


def _read_fence(text: str, start: int, names: Collection[str]) -> _Fence:
    line_end = text.find("\n", start + len(_FENCE))
    if line_end < 0:
        return _Fence(start, None, None, complete_info=False)
    info = text[start + len(_FENCE) : line_end].strip().lower()
    body_start = line_end + 1
    search_from = body_start
    if info in _JSON_FENCES:
        decoded = _decode_at(text, body_start)
        if decoded is not None:
            value, value_end = decoded
            after = _skip_space(text, value_end)
            if text.startswith(_FENCE, after):
                return _Fence(start, after + len(_FENCE), _as_calls(value, names), complete_info=True)
            if after >= len(text):
                return _Fence(start, None, _as_calls(value, names), complete_info=True)
            search_from = value_end
    close = text.find(_FENCE, search_from)
    return _Fence(start, close + len(_FENCE) if close >= 0 else None, None, complete_info=True)


def _next_marker(text: str, i: int) -> tuple[Literal["tag", "fence"], int] | None:
    tag = _OPEN.search(text, i)
    fence = text.find(_FENCE, i)
    if tag is None and fence < 0:
        return None
    if tag is not None and (fence < 0 or tag.start() < fence):
        return "tag", tag.start()
    return "fence", fence


def _bare_calls(text: str, names: Collection[str]) -> list[ToolCall] | None:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    decoded = _decode_at(stripped, 0)
    if decoded is None or decoded[1] != len(stripped):
        return None
    return _as_calls(decoded[0], names)


def _extract(text: str, names: Collection[str], *, allow_bare: bool) -> TextCalls | None:
    if allow_bare:
        bare = _bare_calls(text, names)
        if bare:
            return TextCalls(text="", calls=tuple(bare))
    pieces: list[str] = []
    calls: list[ToolCall] = []
    i = 0
    while i < len(text):
        marker = _next_marker(text, i)
        if marker is None:
            pieces.append(text[i:])
            break
        what, j = marker
        if what == "fence":
            fence = _read_fence(text, j, names)
            if fence.calls:
                pieces.append(text[i:j])
                calls.extend(fence.calls)
                i = fence.end if fence.end is not None else len(text)
                continue
            end = fence.end if fence.end is not None else len(text)
            pieces.append(text[i:end])
            i = end
            continue
        m = _OPEN.match(text, j)
        assert m is not None
        decoded = _decode_at(text, m.end())
        found = _as_calls(decoded[0], None) if decoded is not None else None
        if decoded is None or not found:
            pieces.append(text[i : m.end()])
            i = m.end()
            continue
        pieces.append(text[i:j])
        calls.extend(found)
        k = _skip_space(text, decoded[1])
        closer = f"</{m.group(1)}>"
        i = k + len(closer) if text[k : k + len(closer)].lower() == closer.lower() else decoded[1]
    if not calls:
        return None
    rest = "\n\n".join(p.strip() for p in pieces if p.strip())
    return TextCalls(text=rest, calls=tuple(calls))


def parse_text_tool_calls(text: str, tool_names: Collection[str]) -> TextCalls | None:
    """The calls written as text in ``text``, or None when there are none (the text stays as is)."""
    if not tool_names or not text:
        return None
    return _extract(text, frozenset(tool_names), allow_bare=True)


def _partial_suffix(text: str, start: int) -> int:
    """Index from which the end of ``text`` may be the beginning of a tag or a fence."""
    cut = len(text)
    lt = text.rfind("<", max(start, len(text) - 16))
    if lt >= 0:
        tail = text[lt:].lower()
        if any(o.startswith(tail) for o in _OPENERS):
            cut = lt
    ticks = len(text) - len(text.rstrip("`"))
    if 0 < ticks < len(_FENCE):
        cut = min(cut, len(text) - ticks)
    return max(cut, start)


class TextCallFilter:
    """Streams text through ``on_text`` while withholding what may be a tool call written as text.

    ``active=False`` (no tools offered) passes every chunk straight through.
    """

    def __init__(self, on_text: TextCallback | None, *, tool_names: Collection[str], active: bool = True) -> None:
        self._on_text = on_text
        self._names = frozenset(tool_names)
        self._active = active and bool(self._names)
        self._text = ""
        self._pos = 0
        self._mode: Literal["text", "plain_fence", "held"] = "text"

    @property
    def text(self) -> str:
        """Everything received so far, unfiltered."""
        return self._text

    async def feed(self, chunk: str) -> None:
        if not chunk:
            return
        self._text += chunk
        if not self._active:
            await self._emit_to(len(self._text))
            return
        await self._advance()

    async def _emit_to(self, end: int) -> None:
        if end > self._pos:
            piece = self._text[self._pos : end]
            self._pos = end
            if self._on_text is not None:
                await self._on_text(piece)

    async def _advance(self) -> None:
        text = self._text
        while self._mode != "held":
            if self._mode == "plain_fence":
                close = text.find(_FENCE, self._pos)
                if close < 0:
                    await self._emit_to(_partial_suffix(text, self._pos))
                    return
                await self._emit_to(close + len(_FENCE))
                self._mode = "text"
                continue
            if not text[: self._pos].strip():
                rest = text[self._pos :].lstrip()
                if rest[:1] in ("{", "["):
                    self._mode = "held"
                    return
                if not rest:
                    return
            marker = _next_marker(text, self._pos)
            if marker is None:
                await self._emit_to(_partial_suffix(text, self._pos))
                return
            what, j = marker
            if what == "tag":
                await self._emit_to(j)
                self._mode = "held"
                return
            fence = _read_fence(text, j, self._names)
            if not fence.complete_info:
                await self._emit_to(j)
                return
            if fence.calls:
                await self._emit_to(j)
                self._mode = "held"
                return
            if text[j + len(_FENCE) : text.find("\n", j)].strip().lower() not in _JSON_FENCES:
                await self._emit_to(text.find("\n", j) + 1)
                self._mode = "plain_fence"
                continue
            if fence.end is None:
                await self._emit_to(j)
                return
            await self._emit_to(fence.end)

    async def finish(self, *, parse: bool = True) -> TextCalls:
        """Release what was withheld. With ``parse``, calls in the withheld text are taken out.

        Returns the final text (exactly what was streamed in total) and the calls found.
        """
        head = self._text[: self._pos]
        tail = self._text[self._pos :]
        found = None
        if self._active and parse and tail:
            found = _extract(tail, self._names, allow_bare=not head.strip())
        if found is None:
            await self._emit_to(len(self._text))
            return TextCalls(text=self._text, calls=())
        self._pos = len(self._text)
        if found.text and self._on_text is not None:
            await self._on_text(found.text)
        return TextCalls(text=head + found.text, calls=found.calls)


def merge_text_calls(text: str, native: Sequence[ToolCall], tool_names: Collection[str]) -> TextCalls:
    """Non-streaming counterpart of :class:`TextCallFilter`: native calls win; else parse the text."""
    if native or not tool_names:
        return TextCalls(text=text, calls=tuple(native))
    found = parse_text_tool_calls(text, tool_names)
    return found if found is not None else TextCalls(text=text, calls=())
