"""Client frames -> Turn. Pure functions: the adapter does the I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botframework.errors import PayloadError
from botframework.turn import ReplyTarget, Turn

__all__ = [
    "CHANNEL",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "CancelFrame",
    "MessageFrame",
    "WebSocketTarget",
    "event_id_for",
    "parse_frame",
    "to_turn",
]

CHANNEL = "websocket"
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 100_000


class WebSocketTarget(ReplyTarget):
    """The user whose sockets get the reply, and the client's id of the message it answers."""

    user: str
    id: str


@dataclass(frozen=True)
class MessageFrame:
    id: str
    text: str


@dataclass(frozen=True)
class CancelFrame:
    id: str


def _id(data: dict[str, Any]) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise PayloadError(f"'id' must be a non-empty string of at most {MAX_ID_CHARS} characters, got {value!r}")
    return value


def parse_frame(raw: str) -> MessageFrame | CancelFrame:
    """Parse one text frame. Raises PayloadError naming the problem."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"frame is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise PayloadError("frame must be a JSON object")
    kind = data.get("type")
    if kind == "message":
        frame_id = _id(data)
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PayloadError("'text' must be a non-empty string")
        if len(text) > MAX_TEXT_CHARS:
            raise PayloadError(f"'text' is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        return MessageFrame(id=frame_id, text=text)
    if kind == "cancel":
        return CancelFrame(id=_id(data))
    raise PayloadError(f"unknown frame type {kind!r}; expected 'message' or 'cancel'")


def event_id_for(user: str, frame_id: str) -> str:
    """Client ids are only unique per user; the dedupe key must not collide across users."""
    return f"{user}\x1f{frame_id}"


def to_turn(*, tenant: str, user: str, frame: MessageFrame) -> Turn:
    return Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=event_id_for(user, frame.id),
        conversation_key=user,
        user_id=user,
        text=frame.text,
        reply_target=WebSocketTarget(user=user, id=frame.id),
    )
