"""Wire forms that do not change between calls of a conversation, built and serialized once.

A conversation's calls resend the same stored messages, the same system prompt and the same tool
schemas, each time with one or two messages more. A provider keeps one :class:`WireCache` per
client (shared by every conversation it serves) and asks it for each piece's wire form: a stored
message by its id, a tool schema by the :class:`~botframework.messages.ToolSpec` object, the system
prompt by its text. The cache also keeps each form's JSON text, so :meth:`WireCache.encode` writes a
whole request body by joining pieces it already has instead of walking hundreds of messages again;
the body it produces parses to exactly the dict the provider built.

Entries are checked on every use against what the wire form was built from (a message's role,
parts, calls, tool id, name and error flag), so a message the budget engine or a hook changed
(images stripped, tool calls flattened, media resolved) is built anew, never served stale.
Bounded by entries and by JSON size, least recently used out: per client, 20,000 entries (chat-sized
messages: about 16 MB) or 8M characters of JSON (about 10 MB of text, twice that once the wire forms
are the only holders of their strings), whichever comes first. Wire forms are shared between calls:
a body builder must copy, never mutate, what it gets from the cache.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from botframework.messages import Message

__all__ = ["WireCache", "dumps", "message_fingerprint"]

W = TypeVar("W")


_string: Callable[[str], str] = json.encoder.encode_basestring
"""A JSON string literal, non-ASCII kept (the C accelerator when available)."""


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what the SDKs send), no NaN."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def message_fingerprint(message: Message) -> tuple[Any, ...]:
    """Everything a message's wire form is built from; parts and calls are immutable."""
    return (
        message.role,
        message.content,
        message.tool_calls,
        message.tool_call_id,
        message.name,
        message.is_error,
    )


@dataclass(slots=True)
class _Entry:
    fingerprint: Any
    wire: Any
    pieces: tuple[int, ...]
    size: int


class WireCache:
    """Wire forms and their JSON text by key, least recently used out."""

    def __init__(self, *, max_entries: int = 20_000, max_chars: int = 8_000_000) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._json: dict[int, tuple[object, str]] = {}
        self._chars = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        key: Hashable,
        fingerprint: object,
        build: Callable[[], W],
        pieces: Callable[[W], Iterable[object]] = lambda wire: (wire,),
    ) -> W:
        """The wire form stored under ``key`` if it was built from an equal ``fingerprint``, else
        ``build()`` (stored). ``pieces`` names the JSON values inside it to keep serialized."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry.fingerprint is fingerprint or entry.fingerprint == fingerprint:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.wire  # type: ignore[no-any-return]
            self._drop(key)
        self.misses += 1
        wire = build()
        ids: list[int] = []
        size = 0
        for piece in pieces(wire):
            text = dumps(piece)
            self._json[id(piece)] = (piece, text)
            ids.append(id(piece))
            size += len(text)
        if size > self.max_chars // 4:  # one huge form (inline images) would flush everything else
            for i in ids:
                del self._json[i]
            return wire
        self._entries[key] = _Entry(fingerprint, wire, tuple(ids), size)
        self._chars += size
        while len(self._entries) > self.max_entries or self._chars > self.max_chars:
            self._drop(next(iter(self._entries)))
        return wire

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._chars -= entry.size
        for i in entry.pieces:
            self._json.pop(i, None)

    def encode(self, body: Any, *, depth: int) -> bytes:
        """``body`` as JSON bytes, reusing the text of every cached piece found within ``depth``
        levels of dicts and lists (others are serialized here). Equal to ``dumps(body)`` parsed."""
        return self._encode(body, depth).encode()

    def _encode(self, value: Any, depth: int) -> str:
        if type(value) is str:
            return _string(value)
        known = self._json.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        if depth > 0:
            if type(value) is dict:
                return "{" + ",".join(f"{_string(k)}:{self._encode(v, depth - 1)}" for k, v in value.items()) + "}"
            if type(value) is list:
                return "[" + ",".join([self._encode(v, depth - 1) for v in value]) + "]"
        return dumps(value)
