"""Window-bounded reads of a conversation's messages, for the context budget engine.

Every query here reads a range of the ``(conversation_id, offset)`` index whose size depends on
the model's window (or on the running turn), never on how long the conversation is, nor on how
many other conversations wrote in between:

- :func:`load_turn_tail` reads from the first message of the running turn to the end: the turn
  itself, messages steered into it, the tails of earlier turns that were still being written when
  it started, and later queued turns (the caller tells them apart).
- :func:`load_history_window` finds the first turn start at or after a token offset and reads
  from there up to the running turn, in one statement; :func:`load_history_keys` is the same
  without the content, for a caller that caches decoded messages (:func:`load_messages_by_id`).
- :func:`load_offset_range` reads a token-offset slice (the input of a summary).

``offset`` grows with ``id`` inside a conversation (appends bump ``conversations.total_tokens``
under a row lock), so a slice by offset is also a slice by id. The WHERE clauses bound rows by
offset, not by an id range: given an id range PostgreSQL tends to walk the primary key and filter
out every other conversation's rows written in between.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, Text, bindparam, select, true, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.messages import ContentPart, Message, TextPart, ToolCall, parts_from_json
from storage.tables import Conversation, MessageRow

__all__ = [
    "RowKey",
    "load_history_keys",
    "load_history_window",
    "load_messages_by_id",
    "load_offset_range",
    "load_turn_tail",
    "row_to_message",
]

log = logging.getLogger("storage.history")

messages = MessageRow.__table__
conversations = Conversation.__table__

_COLUMNS = (
    messages.c.id,
    messages.c.turn_id,
    messages.c.turn_start,
    messages.c.role,
    type_coerce(messages.c.content, Text).label("content"),
    type_coerce(messages.c.tool_calls, Text).label("tool_calls"),
    messages.c.tool_call_id,
    messages.c.name,
    messages.c.is_error,
    messages.c.token_count,
    messages.c.offset,
    messages.c.model,
)
"""The JSON columns come back as text and are decoded here: the budget engine reads a window of
rows before every model call, and SQLAlchemy's generic JSON processing was most of that cost."""

_TEXT_ONLY = re.compile(r'^\[\{"type": ?"text", ?"text": ?(".*")\}\]$', re.DOTALL)


def _json(value: Any) -> Any:
    if value is None or value == "null":
        return None
    return json.loads(value) if isinstance(value, str) else value


def _parts(value: Any) -> tuple[ContentPart, ...]:
    if isinstance(value, str):
        single = _TEXT_ONLY.match(value)
        if single is not None:
            try:
                return (TextPart(json.loads(single.group(1))),)
            except ValueError:
                pass
    return parts_from_json(_json(value))


def row_to_message(row: Any) -> Message:
    """``storage.conversations.message_from_row`` for rows selected with this module's columns."""
    (
        id_,
        turn_id,
        turn_start,
        role,
        content,
        tool_calls,
        tool_call_id,
        name,
        is_error,
        token_count,
        offset,
        model,
    ) = row
    calls = _json(tool_calls)
    return Message(
        role=role,
        content=_parts(content),
        tool_calls=tuple(ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"]) for c in calls)
        if calls
        else (),
        tool_call_id=tool_call_id,
        name=name,
        is_error=bool(is_error),
        id=int(id_),
        turn_id=turn_id,
        turn_start=bool(turn_start),
        token_count=int(token_count),
        offset=int(offset),
        model=model,
    )


async def _fetch(conn: AsyncConnection, query: Select[Any], params: dict[str, Any] | None = None) -> list[Message]:
    """The rows as messages; a row no version of this code wrote is skipped with a log line, so one
    bad row cannot fail every later turn of its conversation."""
    out = []
    for row in await conn.execute(query, params):
        try:
            out.append(row_to_message(row))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("history: skipping unreadable message %s (%s)", row[0], type(exc).__name__)
    return out


def _order() -> tuple[Any, Any]:
    # Offsets grow with ids inside a conversation, so (offset, id) order is id order.
    return messages.c.offset, messages.c.id


async def load_turn_tail(conn: AsyncConnection, *, conversation_id: int, turn_id: str) -> list[Message]:
    """Every message from the first message of ``turn_id`` on, in id order ([] if the turn has none)."""
    # Only the turn_id index can serve this: with conversation_id in the WHERE clause SQLite may
    # walk the conversation from its start to find the turn's smallest offset.
    own = await conn.execute(_TURN_OFFSETS, {"b_turn": turn_id})
    offsets = [int(o) for c, o in own if c == conversation_id]
    if not offsets:
        return []
    rows = await _fetch(conn, _TAIL, {"b_conversation": conversation_id, "b_from": min(offsets)})
    start = next((i for i, m in enumerate(rows) if m.turn_id == turn_id), len(rows))
    return rows[start:]  # zero-token rows of earlier turns can share the first offset


def _tail_query(conversation_id: int, from_offset: int) -> Select[Any]:
    """Rows at or after ``from_offset``, closed above by the conversation's total.

    The upper bound is always true (no message starts past the total). It closes the range so
    PostgreSQL does not estimate ``offset >= x`` from the table-wide histogram: for a conversation
    whose offsets sit mid-table that guess is thousands of rows and buys a parallel bitmap scan,
    ~5 ms per turn for a handful of rows.
    """
    total = select(conversations.c.total_tokens).where(conversations.c.id == conversation_id).scalar_subquery()
    return (
        select(*_COLUMNS)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.offset >= from_offset,
            messages.c.offset <= total,
        )
        .order_by(*_order())
    )


_TURN_OFFSETS = select(messages.c.conversation_id, messages.c.offset).where(messages.c.turn_id == bindparam("b_turn"))
_TAIL = _tail_query(bindparam("b_conversation"), bindparam("b_from"))  # type: ignore[arg-type]
"""The statements of :func:`load_turn_tail`, built once (it runs before every model call)."""


def _window(conversation_id: int, min_offset: int, max_offset: int, before_id: int) -> tuple[Any, ...]:
    """From the first turn start at or after ``min_offset`` (by offset, then id) up to ``before_id``."""
    cut = (
        select(messages.c.offset)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.offset >= min_offset,
            messages.c.offset <= max_offset,
            messages.c.turn_start == true(),
            messages.c.id < before_id,
        )
        .order_by(*_order())
        .limit(1)
        .scalar_subquery()
    )
    return (
        messages.c.conversation_id == conversation_id,
        messages.c.offset >= cut,
        messages.c.offset <= max_offset,
        messages.c.id < before_id,
    )


_WINDOW_WHERE = _window(
    bindparam("b_conversation"),  # type: ignore[arg-type]
    bindparam("b_min"),  # type: ignore[arg-type]
    bindparam("b_max"),  # type: ignore[arg-type]
    bindparam("b_before"),  # type: ignore[arg-type]
)
_WINDOW = select(*_COLUMNS).where(*_WINDOW_WHERE).order_by(*_order())
_WINDOW_KEYS = (
    select(messages.c.id, messages.c.turn_id, messages.c.turn_start, messages.c.token_count, messages.c.offset)
    .where(*_WINDOW_WHERE)
    .order_by(*_order())
)
"""The window statements, built once: the budget engine runs one before every model call."""


async def load_history_window(
    conn: AsyncConnection, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
) -> list[Message]:
    """Messages from the first turn start with ``min_offset <= offset <= max_offset`` and
    ``id < before_id``, up to (excluding) ``before_id``, in id order.

    The first message returned is always a turn start; [] when no turn starts in that range.
    """
    params = {"b_conversation": conversation_id, "b_min": min_offset, "b_max": max_offset, "b_before": before_id}
    messages_ = await _fetch(conn, _WINDOW, params)
    start = next((i for i, m in enumerate(messages_) if m.turn_start), len(messages_))
    return messages_[start:]


RowKey = tuple[int, str, bool, int, int]
"""(id, turn_id, turn_start, token_count, offset): what identifies a stored row's current state."""


async def load_history_keys(
    conn: AsyncConnection, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
) -> list[RowKey]:
    """:func:`load_history_window` without the content: for callers that cache decoded messages."""
    params = {"b_conversation": conversation_id, "b_min": min_offset, "b_max": max_offset, "b_before": before_id}
    result = await conn.execute(_WINDOW_KEYS, params)
    keys = [(int(i), t, bool(s), int(c), int(o)) for i, t, s, c, o in result]
    start = next((k for k, key in enumerate(keys) if key[2]), len(keys))
    return keys[start:]


async def load_messages_by_id(conn: AsyncConnection, *, conversation_id: int, ids: Sequence[int]) -> list[Message]:
    """The messages with these ids (any order in, id order out); one range scan when they are dense."""
    if not ids:
        return []
    wanted = sorted(set(ids))
    lo, hi = wanted[0], wanted[-1]
    base = select(*_COLUMNS).where(messages.c.conversation_id == conversation_id)
    if hi - lo + 1 <= 2 * len(wanted):
        found = await _fetch(conn, base.where(messages.c.id >= lo, messages.c.id <= hi).order_by(messages.c.id))
        keep = set(wanted)
        return [m for m in found if m.id in keep]
    out: list[Message] = []
    for k in range(0, len(wanted), 500):
        out += await _fetch(conn, base.where(messages.c.id.in_(wanted[k : k + 500])).order_by(messages.c.id))
    return out


async def load_offset_range(
    conn: AsyncConnection, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
) -> list[Message]:
    """Messages with ``min_offset <= offset < max_offset`` and ``id < before_id``, in id order."""
    query = (
        select(*_COLUMNS)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.offset >= min_offset,
            messages.c.offset < max_offset,
            messages.c.id < before_id,
        )
        .order_by(messages.c.offset, messages.c.id)
    )
    return await _fetch(conn, query)
