"""WeCom AI bot callbacks -> Turn. Pure functions, tested on recorded payloads.

``aibot_msg_callback`` bodies: ``msgid`` (dedupe key: WeCom may deliver one twice), ``aibotid``,
``chattype`` (``single``, or ``group`` with ``chatid``: the bot only receives group messages that
@mention it), ``from.userid`` and ``msgtype``:

- ``text`` (``text.content``; in a group it starts with the bot's @mention, which is removed),
- ``image`` (``image.url``, encrypted, valid five minutes, with its own ``aeskey``),
- ``mixed`` (``mixed.msg_item``: text and image items in order),
- ``voice`` (``voice.content`` is WeCom's transcript), ``file`` and ``video`` (placeholders),
- ``quote``: the message the user quoted, put before the text.

Pictures become media references (URL and key) the adapter downloads and decrypts when a vision
model needs them. ``aibot_event_callback`` bodies are events (:func:`event_type`): no turn.

The conversation is the group (``group:<chatid>``) or the user (``user:<userid>``). The reply
target keeps the callback's ``req_id`` (a streamed reply answers on it) and the chat to send to.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from botframework.errors import MediaError, PayloadError
from botframework.media import media_ref
from botframework.messages import ImagePart
from botframework.turn import ReplyTarget, Turn

__all__ = ["CHANNEL", "BotTarget", "MediaRef", "event_type", "parse_message"]

CHANNEL = "wecom_bot"
_LEADING_MENTION = re.compile(r"^\s*@\S+\s*")


class BotTarget(ReplyTarget):
    """Where the answer to one callback goes."""

    req_id: str
    """The callback's ``req_id``: a streamed reply (``aibot_respond_msg``) answers on it."""
    chat_id: str
    """The group's chatid, or the user's userid in a single chat (``aibot_send_msg``'s chatid)."""
    chat_type: str = "single"
    user_id: str = ""
    received_ms: int = 0
    """When the message arrived (ms): a stream must finish within 6 minutes of it."""


class MediaRef(BaseModel):
    """An encrypted picture: its URL and key, as an image's media reference encodes them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    aeskey: str

    def encode(self) -> str:
        raw = json.dumps(self.model_dump(), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, ref: str) -> MediaRef:
        try:
            return cls.model_validate(json.loads(base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))))
        except (binascii.Error, ValueError) as exc:
            raise MediaError(f"{CHANNEL} media reference is not one this channel made ({exc})") from exc


def event_type(body: Mapping[str, Any]) -> str:
    """``enter_chat``, ``disconnected_event``... of an ``aibot_event_callback`` body ("" if none)."""
    event = body.get("event")
    return str(event.get("eventtype") or "") if isinstance(event, Mapping) else ""


def _sub(value: Any, name: str) -> Mapping[str, Any]:
    found = value.get(name) if isinstance(value, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _image(item: Mapping[str, Any]) -> ImagePart | None:
    url, aeskey = str(item.get("url") or ""), str(item.get("aeskey") or "")
    if not url.startswith("https://") or not aeskey:
        return None
    return ImagePart(url=media_ref(CHANNEL, MediaRef(url=url, aeskey=aeskey).encode()))


def _content(body: Mapping[str, Any]) -> tuple[list[str], list[ImagePart]]:
    kind = str(body.get("msgtype") or "")
    texts: list[str] = []
    images: list[ImagePart] = []
    if kind == "text":
        texts.append(str(_sub(body, "text").get("content") or ""))
    elif kind == "voice":
        texts.append(str(_sub(body, "voice").get("content") or "").strip() or "[voice message]")
    elif kind == "image":
        texts.append("[image]")
        image = _image(_sub(body, "image"))
        images += [image] if image else []
    elif kind == "mixed":
        items = _sub(body, "mixed").get("msg_item") or []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            if item.get("msgtype") == "text":
                texts.append(str(_sub(item, "text").get("content") or ""))
            elif item.get("msgtype") == "image":
                texts.append("[image]")
                image = _image(_sub(item, "image"))
                images += [image] if image else []
    elif kind == "file":
        texts.append("[file]")
    elif kind == "video":
        texts.append("[video]")
    return texts, images


def _quote(body: Mapping[str, Any]) -> str:
    quote = _sub(body, "quote")
    if not quote:
        return ""
    texts, _ = _content(quote)
    quoted = " ".join(t.strip() for t in texts if t.strip())
    return f"[quote: {quoted}]\n" if quoted else ""


def parse_message(body: Mapping[str, Any], *, tenant: str, req_id: str, received_ms: int) -> Turn | None:
    """An ``aibot_msg_callback`` body -> Turn, or None when there is nothing to answer."""
    if not isinstance(body, Mapping):
        raise PayloadError(f"{CHANNEL} callback body is {type(body).__name__}, not an object")
    msgid = str(body.get("msgid") or "")
    user = str(_sub(body, "from").get("userid") or "")
    if not msgid or not user:
        raise PayloadError(f"{CHANNEL} callback lacks msgid or from.userid: keys {sorted(body)}")
    group = body.get("chattype") == "group"
    chat_id = str(body.get("chatid") or "") if group else user
    if group and not chat_id:
        raise PayloadError(f"{CHANNEL} group message {msgid} has no chatid")
    texts, images = _content(body)
    if group and texts:
        texts[0] = _LEADING_MENTION.sub("", texts[0], count=1)
    text = "\n".join(t.strip() for t in texts if t.strip())
    if not text:
        return None
    try:
        created = int(body.get("create_time") or 0)
        received_at = (
            datetime.fromtimestamp(created, UTC) if created else datetime.fromtimestamp(received_ms / 1000, UTC)
        )
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"{CHANNEL} create_time {body.get('create_time')!r} is not a time") from exc
    return Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=msgid,
        conversation_key=f"group:{chat_id}" if group else f"user:{user}",
        user_id=user,
        text=_quote(body) + text,
        images=tuple(images),
        reply_target=BotTarget(
            req_id=req_id,
            chat_id=chat_id,
            chat_type="group" if group else "single",
            user_id=user,
            received_ms=received_ms,
        ),
        received_at=received_at,
    )
