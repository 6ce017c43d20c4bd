"""Client frames -> Turn. Pure functions: the adapter does the I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botframework.errors import PayloadError
from botframework.inputs import check_identifier, load_json_object
from botframework.turn import ReplyTarget, Turn

__all__ = [
    "CHANNEL",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_USER_CHARS",
    "AckFrame",
    "CancelFrame",
    "MessageFrame",
    "WebSocketTarget",
    "client_id",
    "event_id_for",
    "parse_acks",
    "parse_frame",
    "to_turn",
]

CHANNEL = "websocket"
MAX_ID_CHARS = 128
MAX_USER_CHARS = 120
"""With the id, an event id stays within the 255 characters the database keeps."""
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


@dataclass(frozen=True)
class AckFrame:
    """The client has the final frame (``done`` or ``error``) answering its message ``reply_to``."""

    reply_to: str


MAX_ACKS = 100
"""Ids one ``?ack=`` may carry: the replies a reconnecting client got last."""


def _id(data: dict[str, Any]) -> str:
    value = data.get("id")
    if not isinstance(value, str):
        raise PayloadError(f"'id' must be a non-empty string of at most {MAX_ID_CHARS} characters, got {value!r}")
    return check_identifier(value, what="'id'", max_chars=MAX_ID_CHARS)


def parse_frame(raw: str) -> MessageFrame | CancelFrame | AckFrame:
    """Parse one text frame. Raises PayloadError naming the problem."""
    data = load_json_object(raw, what="frame")
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
    if kind == "ack":
        reply_to = data.get("reply_to")
        if not isinstance(reply_to, str):
            raise PayloadError(f"'reply_to' must be the id of a message, got {reply_to!r}")
        return AckFrame(reply_to=check_identifier(reply_to, what="'reply_to'", max_chars=MAX_ID_CHARS))
    raise PayloadError(f"unknown frame type {kind!r}; expected 'message', 'cancel' or 'ack'")


def parse_acks(value: str) -> list[str]:
    """``?ack=c1,c2``: the client's ids whose replies it already has; malformed ids are ignored."""
    out: list[str] = []
    for item in value.split(",")[:MAX_ACKS]:
        try:
            out.append(check_identifier(item, what="'ack'", max_chars=MAX_ID_CHARS))
        except PayloadError:
            continue
    return out


def event_id_for(user: str, frame_id: str) -> str:
    """Client ids are only unique per user; the dedupe key must not collide across users.

    The user's length comes first, so no (user, id) pair can spell another pair's key, whatever
    characters either holds."""
    return f"{len(user)}:{user}:{frame_id}"


_LEGACY_SEPARATOR = "\x1f"
"""Event ids stored by earlier versions were ``user + "\x1f" + id``."""


def client_id(event_id: str | None, user: str) -> str | None:
    """The client's id of a message from its stored event id, if ``user`` sent it."""
    if not event_id:
        return None
    for prefix in (event_id_for(user, ""), user + _LEGACY_SEPARATOR):
        if event_id.startswith(prefix):
            return event_id[len(prefix) :]
    return None


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
