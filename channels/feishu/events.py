"""Feishu/Lark event subscription v2 payload -> Turn. Pure functions, tested on recorded payloads.

Which ``im.message.receive_v1`` events become a turn:

- p2p chats (``chat_type: p2p``): every user message; the chat is one conversation.
- group chats: only messages that mention the bot (``message.mentions``). The conversation is the
  chat, or the thread inside it when the message is in a thread or replies to a message
  (``chat_id:root_id``), so a thread keeps its own history.

Message types: ``text``, ``post`` (rich text, flattened to plain text; code blocks stay fenced) and
``image``. Pictures (an ``image`` message, a post's ``img`` elements) are only served to the bot's
own token, so the turn carries a reference, ``media:feishu:{message_id}/{image_key}``, that the
adapter's ``fetch_media`` downloads when the model needs it; an image message's text is ``[image]``.
The ``@_user_N`` placeholders are resolved through ``mentions``: the bot's own is removed, other
people become ``@Name``. Ignored: senders that are not users (the bot itself, other apps), other
message types (files, stickers, cards, system messages) and every other event type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import model_validator

from botframework.errors import PayloadError
from botframework.media import media_ref
from botframework.messages import ImagePart
from botframework.turn import ReplyTarget, Turn

__all__ = [
    "CHANNEL",
    "IMAGE_TEXT",
    "MESSAGE_RECEIVE",
    "FeishuTarget",
    "conversation_key",
    "event_type",
    "image_ref",
    "parse_event",
    "post_images",
    "post_to_text",
]

CHANNEL = "feishu"


class FeishuTarget(ReplyTarget):
    """The user's message to reply to (in its thread when it was in one), and its chat as a fallback."""

    message_id: str = ""
    chat_id: str = ""
    reply_in_thread: bool = False

    @model_validator(mode="after")
    def _somewhere(self) -> FeishuTarget:
        if not (self.message_id or self.chat_id):
            raise ValueError("a feishu reply target needs a message_id or a chat_id")
        return self


MESSAGE_RECEIVE = "im.message.receive_v1"
IMAGE_TEXT = "[image]"
_PLACEHOLDER = re.compile(r"[ \t]*(@_user_\d+|@_all)[ \t]*")


def image_ref(message_id: str, image_key: str) -> str:
    """The media reference of a picture in a message: the resource API needs both ids."""
    return f"{message_id}/{image_key}"


def event_type(payload: Mapping[str, Any]) -> str | None:
    """``header.event_type`` of a v2 event (None for anything else)."""
    header = payload.get("header")
    if payload.get("schema") != "2.0" or not isinstance(header, Mapping):
        return None
    kind = header.get("event_type")
    return kind if isinstance(kind, str) else None


def conversation_key(*, chat_id: str, direct: bool, root_id: str | None) -> str:
    """``{chat_id}`` for a p2p chat or a group's main stream, ``{chat_id}:{root_id}`` for a group thread."""
    return chat_id if direct or not root_id else f"{chat_id}:{root_id}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _received_at(header: Mapping[str, Any]) -> datetime:
    raw = header.get("create_time")
    try:
        stamp = int(str(raw))
    except ValueError:
        return datetime.now(UTC)
    # Feishu states milliseconds; be lenient with microseconds and seconds.
    seconds = stamp / 1_000_000 if stamp > 10**14 else stamp / 1000 if stamp > 10**11 else float(stamp)
    return datetime.fromtimestamp(seconds, UTC)


def _mention_names(mentions: Sequence[Any], bot_open_id: str | None) -> tuple[dict[str, str], bool]:
    """Placeholder -> replacement text, and whether the bot is among the mentioned.

    With ``bot_open_id`` unknown, a mention whose ``mentioned_type`` is ``bot`` counts as ours.
    """
    names: dict[str, str] = {"@_all": "@all"}
    mentioned = False
    for mention in mentions:
        if not isinstance(mention, Mapping) or not _str(mention.get("key")):
            continue
        ids = _mapping(mention.get("id"))
        if bot_open_id is not None:
            is_bot = ids.get("open_id") == bot_open_id
        else:
            is_bot = mention.get("mentioned_type") == "bot"
        mentioned = mentioned or is_bot
        names[str(mention["key"])] = "" if is_bot else f"@{mention.get('name') or 'someone'}"
    return names, mentioned


def _resolve(text: str, names: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        replacement = names.get(match.group(1), match.group(1))
        return match.group(0).replace(match.group(1), replacement) if replacement else " "

    return _PLACEHOLDER.sub(one, text)


def _post_body(content: Mapping[str, Any]) -> Mapping[str, Any]:
    """A post's ``{title, content}``; events carry it bare, the send API wraps it in a locale."""
    if isinstance(content.get("content"), list):
        return content
    for value in content.values():
        if isinstance(value, Mapping) and isinstance(value.get("content"), list):
            return value
    raise PayloadError(f"feishu post content has no paragraphs: keys {sorted(content)}")


def _element_text(element: Mapping[str, Any], names: Mapping[str, str]) -> str:
    tag = element.get("tag")
    text = str(element.get("text") or "")
    if tag in ("text", "md"):
        return text
    if tag == "a":
        href = str(element.get("href") or "")
        return f"{text} ({href})" if text and href and text != href else text or href
    if tag == "at":
        key = str(element.get("user_id") or "")
        if key in names:
            return names[key]
        return f"@{element.get('user_name') or key}" if key else ""
    if tag == "code_block":
        language = str(element.get("language") or "").lower()
        return f"\n```{language}\n{text.rstrip()}\n```\n"
    if tag == "img":
        return "[image]"
    if tag == "media":
        return "[video]"
    if tag == "emotion":
        return f":{element.get('emoji_type') or 'emoji'}:"
    if tag == "hr":
        return "\n---\n"
    return text


def post_to_text(content: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """Rich text (``post``) as plain text: the title, then one line per paragraph."""
    body = _post_body(content)
    lines: list[str] = []
    title = str(body.get("title") or "").strip()
    if title:
        lines.append(title)
    for paragraph in body.get("content") or ():
        if not isinstance(paragraph, list):
            continue
        elements = [el for el in paragraph if isinstance(el, Mapping)]
        line = "".join(_element_text(el, names) for el in elements)
        if elements and elements[0].get("tag") == "at" and not _element_text(elements[0], names):
            line = line.lstrip()  # the bot's mention opened the paragraph: drop the space that followed it
        lines.append(line)
    return "\n".join(lines)


def post_images(content: Mapping[str, Any]) -> list[str]:
    """The ``image_key`` of every ``img`` element of a post, in order, each once."""
    keys: list[str] = []
    for paragraph in _post_body(content).get("content") or ():
        if not isinstance(paragraph, list):
            continue
        for element in paragraph:
            if not isinstance(element, Mapping) or element.get("tag") != "img":
                continue
            key = _str(element.get("image_key"))
            if key is not None and key not in keys:
                keys.append(key)
    return keys


def _message_body(message: Mapping[str, Any], names: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """The text of a message and the image keys it carries; None for message types we ignore."""
    kind = message.get("message_type")
    if kind not in ("text", "post", "image"):
        return None
    raw = message.get("content")
    try:
        content = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"feishu {kind} message {message.get('message_id')!r} has non-JSON content") from exc
    if not isinstance(content, Mapping):
        raise PayloadError(f"feishu {kind} message {message.get('message_id')!r} has content {raw!r}")
    if kind == "text":
        return _resolve(str(content.get("text") or ""), names), []
    if kind == "image":
        key = _str(content.get("image_key"))
        if key is None:
            raise PayloadError(f"feishu image message {message.get('message_id')!r} has no image_key: {raw!r}")
        return IMAGE_TEXT, [key]
    # A post's text elements carry placeholders too (an @ typed as text); resolve them as well.
    return _resolve(post_to_text(content, names), names), post_images(content)


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line if line.strip() else "" for line in lines)).strip()


def parse_event(payload: Mapping[str, Any], *, tenant: str, bot_open_id: str | None) -> Turn | None:
    """The turn a verified, decrypted v2 event asks for, or None to ignore it.

    Raises PayloadError for an ``im.message.receive_v1`` without the fields every message has.
    """
    if event_type(payload) != MESSAGE_RECEIVE:
        return None
    header = payload["header"]
    event = payload.get("event")
    if not isinstance(event, Mapping):
        raise PayloadError(f"feishu {MESSAGE_RECEIVE} without an event object: keys {sorted(payload)}")
    sender = _mapping(event.get("sender"))
    if sender.get("sender_type") != "user":
        return None
    message = event.get("message")
    if not isinstance(message, Mapping):
        raise PayloadError(f"feishu {MESSAGE_RECEIVE} without a message: keys {sorted(event)}")
    event_id, message_id, chat_id = header.get("event_id"), message.get("message_id"), message.get("chat_id")
    sender_ids = _mapping(sender.get("sender_id"))
    user = _str(sender_ids.get("open_id")) or _str(sender_ids.get("user_id")) or _str(sender_ids.get("union_id"))
    if not (_str(event_id) and _str(message_id) and _str(chat_id) and user):
        raise PayloadError(
            f"feishu {MESSAGE_RECEIVE} lacks event_id/message_id/chat_id/sender: "
            f"event_id={event_id!r} message_id={message_id!r} chat_id={chat_id!r} sender={user!r}"
        )
    raw_mentions = message.get("mentions")
    mentions: Sequence[Any] = raw_mentions if isinstance(raw_mentions, list) else []
    names, mentioned = _mention_names(mentions, bot_open_id)
    direct = message.get("chat_type") == "p2p"
    if not direct and not mentioned:
        return None
    body = _message_body(message, names)
    if body is None:
        return None
    text, image_keys = _clean(body[0]), body[1]
    if not text and not image_keys:
        return None
    root_id = _str(message.get("root_id")) or _str(message.get("thread_id"))
    return Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=str(event_id),
        conversation_key=conversation_key(chat_id=str(chat_id), direct=direct, root_id=root_id),
        user_id=user,
        text=text or IMAGE_TEXT,
        images=tuple(ImagePart(url=media_ref(CHANNEL, image_ref(str(message_id), key))) for key in image_keys),
        reply_target=FeishuTarget(
            message_id=str(message_id), chat_id=str(chat_id), reply_in_thread=root_id is not None
        ),
        received_at=_received_at(header),
    )
