"""Slack Events API payload -> Turn. Pure functions, tested on recorded payloads.

Which events become a turn:

- ``app_mention``: a message that mentions the bot, in a channel or a thread.
- ``message`` in a DM (``channel_type: im``): every message; the DM is one conversation.
- ``message`` in a thread of a channel: only when the bot already takes part in that thread, which
  only the core knows, so the result says ``needs_thread_membership`` and the adapter asks
  ``runtime.has_conversation``. A channel message that mentions the bot is left to its
  ``app_mention`` twin: Slack sends both, with different event ids, for the same message.

Ignored: the bot's own messages, other bots, edits, deletions and every subtype except
``file_share`` and ``thread_broadcast``. Images shared with a message become media references
(:func:`botframework.media.media_ref` of their ``url_private``): only the bot's token can read them,
so the core asks this channel for the bytes when a vision model needs them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botframework.errors import PayloadError
from botframework.media import media_ref
from botframework.messages import ImagePart
from botframework.turn import ReplyTarget, Turn

__all__ = [
    "CHANNEL",
    "SlackEvent",
    "SlackTarget",
    "bot_user_from",
    "conversation_key",
    "images_of",
    "parse_event",
    "unescape",
]

CHANNEL = "slack"
_KEPT_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
_THREADED_CHANNEL_TYPES = frozenset({"channel", "group", "mpim"})


class SlackTarget(ReplyTarget):
    """Where a reply goes: the conversation and the thread (a DM's replies thread on the message)."""

    channel: str
    thread_ts: str | None = None


@dataclass(frozen=True, kw_only=True)
class SlackEvent:
    """A payload that should become a turn; ``needs_thread_membership`` asks the core first."""

    turn: Turn
    needs_thread_membership: bool = False


def unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<``, ``>`` in message text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def bot_user_from(body: Mapping[str, Any]) -> str | None:
    """The bot's user id as the envelope's ``authorizations`` state it (Slack includes one)."""
    for auth in body.get("authorizations") or ():
        if isinstance(auth, Mapping) and auth.get("is_bot") and auth.get("user_id"):
            return str(auth["user_id"])
    return None


def conversation_key(channel: str, *, thread_ts: str | None, ts: str, direct: bool) -> str:
    """``{channel}`` for a DM, ``{channel}:{thread root ts}`` for a channel thread."""
    return channel if direct else f"{channel}:{thread_ts or ts}"


def _mention_pattern(bot_user_id: str, *, spaced: bool = False) -> re.Pattern[str]:
    """``<@U123>`` or ``<@U123|name>``; ``spaced`` also takes the blanks around it."""
    blanks = "[ \t]*" if spaced else ""
    return re.compile(rf"{blanks}<@{re.escape(bot_user_id)}(?:\|[^>]*)?>{blanks}")


def images_of(event: Mapping[str, Any]) -> tuple[ImagePart, ...]:
    """The images among a message's ``files``, as references the Slack adapter can fetch."""
    images: list[ImagePart] = []
    for f in event.get("files") or ():
        if not isinstance(f, Mapping):
            continue
        mimetype, url = f.get("mimetype"), f.get("url_private")
        if isinstance(mimetype, str) and mimetype.startswith("image/") and isinstance(url, str) and url:
            images.append(ImagePart(url=media_ref(CHANNEL, url), media_type=mimetype))
    return tuple(images)


def _received_at(body: Mapping[str, Any]) -> datetime:
    event_time = body.get("event_time")
    if isinstance(event_time, int | float) and not isinstance(event_time, bool):
        return datetime.fromtimestamp(event_time, UTC)
    return datetime.now(UTC)


def parse_event(body: Mapping[str, Any], *, tenant: str, bot_user_id: str | None) -> SlackEvent | None:
    """The turn an ``event_callback`` payload asks for, or None to ignore it.

    ``bot_user_id`` may be unknown (before ``auth.test`` answered); the envelope's
    ``authorizations`` then tell who the bot is. Raises PayloadError for a payload without the
    fields every event has.
    """
    if body.get("type") != "event_callback":
        return None
    event = body.get("event")
    if not isinstance(event, Mapping):
        raise PayloadError(f"slack event_callback without an event object: keys {sorted(body)}")
    bot = bot_user_id or bot_user_from(body)
    kind = event.get("type")
    user = event.get("user")
    if kind not in ("app_mention", "message") or event.get("subtype") not in _KEPT_SUBTYPES:
        return None
    if not user or event.get("bot_id") or event.get("bot_profile") or user == bot:
        return None
    event_id, channel, ts = body.get("event_id"), event.get("channel"), event.get("ts")
    if not (isinstance(event_id, str) and isinstance(channel, str) and isinstance(ts, str)):
        raise PayloadError(
            f"slack {kind} event lacks event_id/channel/ts: event_id={event_id!r} channel={channel!r} ts={ts!r}"
        )
    thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
    raw_text = str(event.get("text") or "")
    mentioned = bot is not None and _mention_pattern(bot).search(raw_text) is not None

    direct = False
    needs_membership = False
    if kind == "message":
        channel_type = event.get("channel_type")
        if channel_type == "im":
            direct = True
        elif channel_type in _THREADED_CHANNEL_TYPES and thread_ts and not mentioned:
            needs_membership = True
        else:
            # Top-level channel chatter, or a mention that app_mention already delivers.
            return None

    text = _mention_pattern(bot, spaced=True).sub(" ", raw_text) if bot else raw_text
    text = unescape(text).strip()
    images = images_of(event)
    if not text and not images:
        return None
    turn = Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=event_id,
        conversation_key=conversation_key(channel, thread_ts=thread_ts, ts=ts, direct=direct),
        user_id=str(user),
        text=text,
        images=images,
        reply_target=SlackTarget(channel=channel, thread_ts=thread_ts or ts),
        received_at=_received_at(body),
    )
    return SlackEvent(turn=turn, needs_thread_membership=needs_membership)
