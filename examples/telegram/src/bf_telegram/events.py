"""Telegram ``Update`` -> Turn. Pure functions, tested on recorded payloads.

Which updates become a turn (only ``message`` updates; edits, channel posts, callbacks, membership
changes and service messages without text are ignored):

- every text message in a private chat with the bot;
- in a group or supergroup, a message addressed to the bot: it mentions ``@<bot username>`` (or the
  bot by a text mention), replies to one of the bot's messages, or starts with a command that is not
  addressed to another bot (``/ask`` or ``/ask@<bot username>``);
- never a message sent by a bot (the bot's own, other bots, anonymous group admins).

``event_id`` is the ``update_id``: Telegram sends the same id when it redelivers an update, by
webhook or by ``getUpdates``. A private chat is one conversation, a group too, and each topic of a
forum supergroup is one. The bot's mention is removed from the text; a command keeps its name
(``/ask@bot more`` -> ``/ask more``). Entity offsets count UTF-16 code units, as Telegram does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botframework.errors import PayloadError
from botframework.turn import ReplyTarget, Turn

__all__ = ["CHANNEL", "BotIdentity", "TelegramTarget", "conversation_key", "parse_update"]

CHANNEL = "telegram"
_GROUPS = frozenset({"group", "supergroup"})


class TelegramTarget(ReplyTarget):
    """Where a reply goes: the chat, the message it answers and, in a forum, the topic."""

    chat_id: int
    message_id: int
    message_thread_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class BotIdentity:
    """Who the bot is: its user id (from the token) and its username (from ``getMe``; None until known)."""

    id: int
    username: str | None = None


def conversation_key(chat_id: int, *, topic: int | None = None) -> str:
    """``{chat_id}``, or ``{chat_id}:{topic}`` for a topic of a forum supergroup."""
    return str(chat_id) if topic is None else f"{chat_id}:{topic}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _utf16_span(text: str, offset: int, length: int) -> tuple[int, int]:
    """The ``str`` indices of the entity at UTF-16 ``offset``/``length`` (astral characters count 2)."""
    units = 0
    start = end = len(text)
    for index, char in enumerate(text):
        if units == offset:
            start = index
        if units == offset + length:
            end = index
            break
        units += 2 if ord(char) > 0xFFFF else 1
    return min(start, end), end


@dataclass(frozen=True, slots=True)
class _Entity:
    kind: str
    start: int
    end: int
    user_id: int | None


def _entities(text: str, raw: Any) -> list[_Entity]:
    out: list[_Entity] = []
    for entity in raw if isinstance(raw, Sequence) else ():
        if not isinstance(entity, Mapping):
            continue
        offset, length = _int(entity.get("offset")), _int(entity.get("length"))
        if offset is None or length is None or offset < 0 or length <= 0:
            continue
        start, end = _utf16_span(text, offset, length)
        user = entity.get("user")
        user_id = _int(user.get("id")) if isinstance(user, Mapping) else None
        out.append(_Entity(kind=str(entity.get("type", "")), start=start, end=end, user_id=user_id))
    return out


def _addressing(text: str, entities: list[_Entity], bot: BotIdentity) -> tuple[list[tuple[int, int]], bool]:
    """The spans naming the bot (to strip from the text) and whether the message is addressed to it:
    it mentions the bot, or starts with a command for it (``/cmd`` or ``/cmd@bot``, not ``/cmd@other``)."""
    username = (bot.username or "").lower()
    spans: list[tuple[int, int]] = []
    addressed = False
    for entity in entities:
        value = text[entity.start : entity.end]
        if (entity.kind == "mention" and username and value[1:].lower() == username) or (
            entity.kind == "text_mention" and entity.user_id == bot.id
        ):
            spans.append((entity.start, entity.end))
            addressed = True
        elif entity.kind == "bot_command" and entity.start == 0:
            name, at, target = value.partition("@")
            if not at:
                addressed = True
            elif username and target.lower() == username:
                spans.append((entity.start + len(name), entity.end))
                addressed = True
    return spans, addressed


def _strip(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without ``spans``; the blank before or after each one goes with it."""
    for start, end in sorted(spans, reverse=True):
        left, right = text[:start], text[end:]
        if left.endswith(" ") and right.startswith(" "):
            right = right[1:]
        text = left + right
    return text.strip()


def parse_update(update: Mapping[str, Any], *, tenant: str, bot: BotIdentity) -> Turn | None:
    """The turn a Telegram ``Update`` asks for, or None to ignore it.

    Raises PayloadError for an update without an ``update_id``, or a message without the ids every
    message has (``message_id``, ``chat.id``).
    """
    update_id = _int(update.get("update_id"))
    if update_id is None:
        raise PayloadError(f"telegram update without an integer update_id: keys {sorted(update)}")
    message = update.get("message")
    if not isinstance(message, Mapping):
        return None  # edited_message, channel_post, callback_query, my_chat_member...
    chat = message.get("chat")
    message_id = _int(message.get("message_id"))
    chat_id = _int(chat.get("id")) if isinstance(chat, Mapping) else None
    if message_id is None or chat_id is None or not isinstance(chat, Mapping):
        raise PayloadError(f"telegram update {update_id}: message lacks message_id or chat.id")
    sender = message.get("from")
    text = message.get("text")
    if not isinstance(sender, Mapping) or sender.get("is_bot") is not False or not isinstance(text, str):
        return None
    user_id = _int(sender.get("id"))
    if user_id is None:
        raise PayloadError(f"telegram update {update_id}: message sender has no id")

    chat_type = chat.get("type")
    topic = _int(message.get("message_thread_id")) if message.get("is_topic_message") else None
    spans, addressed = _addressing(text, _entities(text, message.get("entities")), bot)
    if chat_type in _GROUPS:
        replied = message.get("reply_to_message")
        replied_from = replied.get("from") if isinstance(replied, Mapping) else None
        replies_to_bot = (
            isinstance(replied, Mapping)
            and isinstance(replied_from, Mapping)
            and _int(replied_from.get("id")) == bot.id
            and _int(replied.get("message_id")) != topic  # a topic's messages "reply" to its creation
        )
        if not (addressed or replies_to_bot):
            return None
    elif chat_type != "private":
        return None

    text = _strip(text, spans)
    if not text:
        return None
    date = _int(message.get("date"))
    return Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=str(update_id),
        conversation_key=conversation_key(chat_id, topic=topic),
        user_id=str(user_id),
        text=text,
        reply_target=TelegramTarget(chat_id=chat_id, message_id=message_id, message_thread_id=topic),
        received_at=datetime.fromtimestamp(date, UTC) if date is not None else datetime.now(UTC),
    )
