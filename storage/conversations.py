"""Conversations and their messages: create, append (with token offsets), re-assign turns.

Appends keep ``messages.offset`` and ``conversations.total_tokens`` in step inside one
transaction: the conversation row is bumped first (``UPDATE ... RETURNING``), which also locks it
on PostgreSQL, so concurrent appends to one conversation get disjoint offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.messages import Message, ToolCall, parts_from_json, parts_to_json
from storage.tables import CONVERSATIONS, MESSAGES

__all__ = [
    "append_messages",
    "find_conversation",
    "get_or_create_conversation",
    "message_from_row",
    "turn_messages",
]

conversations = CONVERSATIONS
messages = MESSAGES


def _now() -> datetime:
    return datetime.now(UTC)


# Hot statements are built once: building and cache-keying a Core statement per call costs more
# CPU than SQLite spends running it.
_BUMP = (
    update(conversations)
    .where(conversations.c.id == bindparam("b_id"))
    .values(
        total_tokens=conversations.c.total_tokens + bindparam("b_total", type_=conversations.c.total_tokens.type),
        message_count=conversations.c.message_count + bindparam("b_count", type_=conversations.c.message_count.type),
        updated_at=bindparam("b_now", type_=conversations.c.updated_at.type),
    )
    .returning(conversations.c.total_tokens)
)
_INSERT_MESSAGES = messages.insert().returning(messages.c.id, sort_by_parameter_order=True)
_FIND = select(conversations.c.id).where(
    conversations.c.tenant == bindparam("b_tenant"),
    conversations.c.channel == bindparam("b_channel"),
    conversations.c.key == bindparam("b_key"),
)


async def find_conversation(conn: AsyncConnection, *, tenant: str, channel: str, key: str) -> int | None:
    """The id of the conversation (tenant, channel, key), or None."""
    found = (await conn.execute(_FIND, {"b_tenant": tenant, "b_channel": channel, "b_key": key})).scalar_one_or_none()
    return int(found) if found is not None else None


async def get_or_create_conversation(conn: AsyncConnection, *, tenant: str, channel: str, key: str) -> int:
    """The id of the conversation (tenant, channel, key), created if new. Safe under races."""
    found = await find_conversation(conn, tenant=tenant, channel=channel, key=key)
    if found is not None:
        return found
    now = _now()
    values = dict(
        tenant=tenant, channel=channel, key=key, total_tokens=0, message_count=0, created_at=now, updated_at=now
    )
    insert: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(conversations)
    await conn.execute(insert.values(**values).on_conflict_do_nothing())
    created = await find_conversation(conn, tenant=tenant, channel=channel, key=key)
    assert created is not None
    return created


def _row_values(message: Message) -> dict[str, Any]:
    return dict(
        role=message.role,
        content=parts_to_json(message.content),
        tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls] or None,
        tool_call_id=message.tool_call_id,
        name=message.name,
        is_error=message.is_error,
        model=message.model,
    )


async def append_messages(
    conn: AsyncConnection,
    *,
    conversation_id: int,
    turn_id: str,
    items: Sequence[tuple[Message, int]],
    turn_start: bool = False,
) -> list[Message]:
    """Append ``(message, token_count)`` pairs in order; the first gets ``turn_start`` if asked.

    Returns the messages with ``id``, ``turn_id``, ``token_count`` and ``offset`` filled in.
    """
    if not items:
        return []
    total = sum(count for _, count in items)
    now = _now()
    bumped = await conn.execute(_BUMP, {"b_id": conversation_id, "b_total": total, "b_count": len(items), "b_now": now})
    end = bumped.scalar_one_or_none()
    if end is None:
        raise LookupError(f"conversation {conversation_id} does not exist")
    offset = int(end) - total
    rows = []
    for i, (message, count) in enumerate(items):
        rows.append(
            dict(
                conversation_id=conversation_id,
                turn_id=turn_id,
                turn_start=turn_start and i == 0,
                token_count=count,
                offset=offset,
                created_at=now,
                **_row_values(message),
            )
        )
        offset += count
    ids = (await conn.execute(_INSERT_MESSAGES, rows)).scalars().all()
    return [
        replace(
            m,
            id=int(i),
            turn_id=turn_id,
            turn_start=bool(r["turn_start"]),
            token_count=c,
            offset=int(r["offset"]),
        )
        for (m, c), i, r in zip(items, ids, rows, strict=True)
    ]


def message_from_row(row: Any) -> Message:
    """Build a :class:`Message` from a ``messages`` row (any select including its columns)."""
    calls = tuple(ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"]) for c in (row.tool_calls or ()))
    return Message(
        role=row.role,
        content=parts_from_json(row.content),
        tool_calls=calls,
        tool_call_id=row.tool_call_id,
        name=row.name,
        is_error=bool(row.is_error),
        id=int(row.id),
        turn_id=row.turn_id,
        turn_start=bool(row.turn_start),
        token_count=int(row.token_count),
        offset=int(row.offset),
        model=row.model,
    )


async def turn_messages(conn: AsyncConnection, *, turn_id: str) -> list[Message]:
    """Every stored message of one turn, in order."""
    rows = (await conn.execute(select(messages).where(messages.c.turn_id == turn_id).order_by(messages.c.id))).all()
    return [message_from_row(r) for r in rows]
