"""Reading stored conversations without letting one bad row break them.

A transcript is read on every WebSocket connect (the ``history`` frame). If a single stored row
cannot be decoded (content that is not JSON, written by an old version, a manual fix, a bug), the
column type raises for the whole query, the connect fails, and the user is locked out of their own
conversation for good. :func:`safe_transcript` reads normally and, only when that fails on a row's
content, reads again row by row from the raw text, skipping (and logging) the rows it cannot use.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.inputs import clean_text
from storage.db import DRIVER_ERRORS
from storage.tables import INBOUND_EVENTS, MESSAGES
from storage.turns import recent_transcript

__all__ = ["safe_transcript"]

log = logging.getLogger("botframework.transcript")


async def safe_transcript(conn: AsyncConnection, *, conversation_id: int, limit: int) -> list[dict[str, Any]]:
    """``recent_transcript``, except that an undecodable row is skipped with a log line."""
    try:
        return await recent_transcript(conn, conversation_id=conversation_id, limit=limit)
    except DRIVER_ERRORS:
        raise
    except Exception as exc:
        log.warning(
            "transcript of conversation %s: a stored row cannot be decoded (%s); reading row by row",
            conversation_id,
            type(exc).__name__,
        )
    query = (
        select(
            MESSAGES.c.id,
            MESSAGES.c.role,
            cast(MESSAGES.c.content, Text).label("raw"),
            INBOUND_EVENTS.c.event_id,
        )
        .outerjoin(INBOUND_EVENTS, INBOUND_EVENTS.c.message_id == MESSAGES.c.id)
        .where(MESSAGES.c.conversation_id == conversation_id, MESSAGES.c.role.in_(("user", "assistant")))
        .order_by(MESSAGES.c.id.desc())
        .limit(limit)
    )
    out = []
    for row in reversed((await conn.execute(query)).all()):
        text = _text_of(row.raw)
        if text is None:
            log.warning(
                "transcript of conversation %s: skipping %s message %s: its content is not readable",
                conversation_id,
                row.role,
                row.id,
            )
            continue
        if row.role == "assistant" and not text:
            continue
        out.append({"role": row.role, "text": text, "event_id": row.event_id})
    return out


def _text_of(raw: Any) -> str | None:
    """The text parts of one stored content value, or None when it is not the stored shape."""
    if raw is None:
        return ""
    try:
        parts = json.loads(raw) if isinstance(raw, str | bytes) else raw
        if not isinstance(parts, list):
            return None
        return clean_text(
            "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type") == "text")
        )
    except (ValueError, TypeError, AttributeError):
        return None
