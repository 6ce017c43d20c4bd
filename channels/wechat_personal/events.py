"""iLink ``getupdates`` messages -> Turn. Pure functions, tested on recorded payloads.

A message (``WeixinMessage``) has ``message_id`` (``client_id`` and ``seq`` as fallbacks),
``from_user_id`` (``...@im.wechat``), ``message_type`` (1 from a user, 2 from a bot: ours),
``context_token`` (echoed in every reply to that user) and ``item_list``:

- type 1 text (``text_item.text``; ``ref_msg`` when the user quotes an earlier message),
- type 2 image (encrypted on the CDN; ``image_item.aeskey`` in hex or ``media.aes_key`` in base64),
- type 3 voice (``voice_item.text`` is WeChat's transcript when it made one),
- type 4 file (``file_item.file_name``), type 5 video.

Which messages become a turn: a user's message with something in it, in a direct chat (iLink bots
are direct chats only: a message with a ``group_id`` is ignored), not one still being generated.
Text and transcripts are the turn's text; a picture is ``[image]`` plus the picture itself as a
media reference the adapter downloads and decrypts when a vision model needs it; files, videos and
voice without a transcript become a short placeholder so the user gets an answer.

Dedupe key: ``message_id``, because iLink replays messages seconds to minutes later.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from botframework.errors import MediaError, PayloadError
from botframework.media import media_ref
from botframework.messages import ImagePart
from botframework.turn import ReplyTarget, Turn
from channels.wechat_personal.crypto import media_key

__all__ = [
    "CHANNEL",
    "ILinkTarget",
    "MediaRef",
    "event_id",
    "message_images",
    "message_text",
    "parse_message",
]

CHANNEL = "wechat_personal"
USER_MESSAGE = 1
GENERATING = 1
TEXT, IMAGE, VOICE, FILE, VIDEO = 1, 2, 3, 4, 5


class ILinkTarget(ReplyTarget):
    """The user a reply goes to and the ``context_token`` of their message."""

    to_user_id: str
    context_token: str = ""


class MediaRef(BaseModel):
    """Where an encrypted picture is and its key: what an image's media reference encodes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    full_url: str = ""
    query: str = ""
    """``encrypt_query_param``: the CDN download parameter when there is no ``full_url``."""
    key_hex: str

    def encode(self) -> str:
        raw = json.dumps(self.model_dump(exclude_defaults=True), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, ref: str) -> MediaRef:
        try:
            raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
            return cls.model_validate(json.loads(raw))
        except (binascii.Error, ValueError) as exc:
            raise MediaError(f"{CHANNEL} media reference is not one this channel made ({exc})") from exc


def event_id(message: Mapping[str, Any]) -> str:
    """``message_id``, else ``client_id``, else ``seq``; PayloadError when none is there."""
    for key in ("message_id", "client_id", "seq"):
        value = message.get(key)
        if value not in (None, "", 0):
            return str(value) if key == "message_id" else f"{key}:{value}"
    raise PayloadError(f"{CHANNEL} message has no message_id, client_id or seq: keys {sorted(message)}")


def _items(message: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    items = message.get("item_list") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise PayloadError(f"{CHANNEL} message item_list is not a list of objects")
    return items


def _sub(item: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = item.get(name)
    return value if isinstance(value, Mapping) else {}


def _item_text(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind == TEXT:
        return str(_sub(item, "text_item").get("text") or "").strip()
    if kind == VOICE:
        return str(_sub(item, "voice_item").get("text") or "").strip() or "[voice message]"
    if kind == IMAGE:
        return "[image]"
    if kind == FILE:
        name = str(_sub(item, "file_item").get("file_name") or "").strip()
        return f"[file: {name}]" if name else "[file]"
    if kind == VIDEO:
        return "[video]"
    return ""


def _quote(item: Mapping[str, Any]) -> str:
    ref = _sub(item, "ref_msg")
    if not ref:
        return ""
    parts = [str(ref.get("title") or "").strip()]
    quoted = ref.get("message_item")
    if isinstance(quoted, Mapping):
        parts.append(_item_text(quoted))
    parts = [p for p in parts if p]
    return f"[quote: {' | '.join(parts)}]\n" if parts else ""


def message_text(message: Mapping[str, Any]) -> str:
    """What the user said (text, quotes, transcripts) and placeholders for what cannot be read."""
    texts = [(_quote(item) if item.get("type") == TEXT else "") + _item_text(item) for item in _items(message)]
    return "\n".join(t for t in texts if t.strip())


def _image(item: Mapping[str, Any]) -> ImagePart | None:
    image = _sub(item, "image_item")
    media = _sub(image, "media")
    full_url = str(media.get("full_url") or "")
    query = str(media.get("encrypt_query_param") or "")
    if not (full_url or query):
        return None
    try:
        key = media_key(hex_key=str(image.get("aeskey") or "") or None, base64_key=str(media.get("aes_key") or ""))
    except MediaError:
        return None  # the text keeps "[image]"; a picture we cannot decrypt is not sent to the model
    ref = MediaRef(full_url=full_url, query=query, key_hex=key.hex())
    return ImagePart(url=media_ref(CHANNEL, ref.encode()))


def message_images(message: Mapping[str, Any]) -> tuple[ImagePart, ...]:
    """The pictures of a message, as media references (decrypted by the adapter when a model needs them)."""
    images = (_image(item) for item in _items(message) if item.get("type") == IMAGE)
    return tuple(image for image in images if image is not None)


def parse_message(message: Mapping[str, Any], *, tenant: str) -> Turn | None:
    """A ``getupdates`` message -> Turn, or None when it is not a user's direct message to answer."""
    if not isinstance(message, Mapping):
        raise PayloadError(f"{CHANNEL} message is {type(message).__name__}, not an object")
    if message.get("message_type", USER_MESSAGE) != USER_MESSAGE:
        return None  # the bot's own messages come back through getupdates too
    if message.get("message_state") == GENERATING or message.get("group_id"):
        return None
    user = str(message.get("from_user_id") or "")
    if not user:
        raise PayloadError(f"{CHANNEL} message {event_id(message)} has no from_user_id")
    text = message_text(message)
    if not text:
        return None
    try:
        created_ms = int(message.get("create_time_ms") or 0)
        received_at = datetime.fromtimestamp(created_ms / 1000, UTC) if created_ms else datetime.now(UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"{CHANNEL} create_time_ms {message.get('create_time_ms')!r} is not a time") from exc
    return Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=event_id(message),
        conversation_key=user,
        user_id=user,
        text=text,
        images=message_images(message),
        reply_target=ILinkTarget(to_user_id=user, context_token=str(message.get("context_token") or "")),
        received_at=received_at,
    )
