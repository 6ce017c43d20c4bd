"""WeCom callback XML -> Turn. Pure functions, tested on recorded payloads; WeChat reuses them.

WeCom (self-built app) and WeChat Official Accounts share the message XML: a flat ``<xml>`` of
``ToUserName``, ``FromUserName``, ``CreateTime``, ``MsgType`` and per-type fields. Both only deliver
what a user sends to the app or account, so every message is a one-to-one conversation keyed by
the sender.

Which payloads become a turn:

- ``text``: its ``Content``.
- ``voice`` with a ``Recognition`` (WeChat speech-to-text, when enabled): the recognised text.
- ``image``: the placeholder ``[image]`` plus the picture itself by its ``PicUrl`` (both vendors serve
  it from a public CDN, so a vision model fetches it; for a text-only model the budget engine strips
  the image and the placeholder remains).
- other media (``voice``, ``video``, ``shortvideo``, ``file``) and ``location``/``link``:
  a turn with a short bracketed placeholder (``[voice message]``, ``[location: Label]``...), so the
  user gets an answer (the model can say it only reads text) instead of silence.
- ``event`` (subscribe, enter_agent, menu clicks, ...): ignored; the callback is acked, no turn.

Dedupe key: ``MsgId``; a payload without one (events) is keyed ``FromUserName:CreateTime``.
XML is parsed with defusedxml: a DOCTYPE or entity declaration is rejected, never expanded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from pydantic import field_validator

from botframework.errors import PayloadError
from botframework.messages import ImagePart
from botframework.turn import ReplyTarget, Turn

__all__ = [
    "CHANNEL",
    "UserTarget",
    "event_id",
    "message_images",
    "message_text",
    "parse_message",
    "parse_xml",
    "to_turn",
]

CHANNEL = "wecom"
_MEDIA = {
    "image": "[image]",
    "voice": "[voice message]",
    "video": "[video]",
    "shortvideo": "[video]",
    "file": "[file]",
}
_REQUIRED = ("FromUserName", "CreateTime", "MsgType")


class UserTarget(ReplyTarget):
    """The one user (WeCom userid, WeChat openid) a reply goes to."""

    touser: str

    @field_validator("touser")
    @classmethod
    def _one_user(cls, value: str) -> str:
        # Only ever one user: a list ("a|b") or "@all" must never come from a reply target.
        if not value or "|" in value or value.startswith("@"):
            raise ValueError(f"touser must name exactly one user, got {value!r}")
        return value


def parse_xml(raw: bytes | str) -> dict[str, str]:
    """The children of a flat ``<xml>`` document as ``{tag: text}``; PayloadError if it is not one."""
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise PayloadError(f"not a well-formed XML message without DTD: {type(exc).__name__}: {exc}") from exc
    if root.tag != "xml":
        raise PayloadError(f"the XML root is <{root.tag}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def event_id(fields: Mapping[str, str]) -> str:
    """The redelivery-stable id: ``MsgId``, else ``FromUserName:CreateTime`` (events)."""
    msg_id = fields.get("MsgId", "")
    return msg_id if msg_id else f"{fields.get('FromUserName', '')}:{fields.get('CreateTime', '')}"


def message_text(fields: Mapping[str, str]) -> str | None:
    """What the user said, a placeholder for what the bot cannot read, or None to ignore the payload."""
    kind = fields.get("MsgType", "")
    if kind == "text":
        return fields.get("Content", "").strip() or None
    if kind == "voice" and fields.get("Recognition", "").strip():
        return fields["Recognition"].strip()
    if kind in _MEDIA:
        return _MEDIA[kind]
    if kind == "location":
        label = fields.get("Label", "").strip()
        return f"[location: {label}]" if label else "[location]"
    if kind == "link":
        parts = [fields.get(k, "").strip() for k in ("Title", "Url")]
        return "[link: " + " ".join(p for p in parts if p) + "]" if any(parts) else "[link]"
    return None  # events and types we do not know


def message_images(fields: Mapping[str, str]) -> tuple[ImagePart, ...]:
    """The picture of an ``image`` message, by its CDN ``PicUrl`` (JPEG there); () otherwise."""
    url = fields.get("PicUrl", "").strip()
    if fields.get("MsgType") != "image" or not url.startswith(("https://", "http://")):
        return ()
    return (ImagePart(url=url, media_type="image/jpeg"),)


def to_turn(fields: Mapping[str, str], *, tenant: str, channel: str) -> Turn | None:
    """The Turn a decrypted/verified message asks for (either vendor), or None to ignore it."""
    missing = [name for name in _REQUIRED if not fields.get(name)]
    if missing:
        raise PayloadError(f"{channel} message lacks {', '.join(missing)}: fields {sorted(fields)}")
    text = message_text(fields)
    if text is None:
        return None
    user = fields["FromUserName"]
    try:
        received_at = datetime.fromtimestamp(int(fields["CreateTime"]), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"{channel} CreateTime {fields['CreateTime']!r} is not a Unix timestamp") from exc
    return Turn(
        tenant=tenant,
        channel=channel,
        event_id=event_id(fields),
        conversation_key=user,
        user_id=user,
        text=text,
        images=message_images(fields),
        reply_target=UserTarget(touser=user),
        received_at=received_at,
    )


def parse_message(fields: Mapping[str, str], *, tenant: str) -> Turn | None:
    """A WeCom app message -> Turn (or None: an event, or nothing to answer)."""
    return to_turn(fields, tenant=tenant, channel=CHANNEL)
