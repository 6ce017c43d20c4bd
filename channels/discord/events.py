"""Discord message -> Turn. Pure functions, tested on recorded gateway payloads.

A message becomes a turn when it is addressed to the bot: every DM, and in guilds a message that
mentions the bot (or replies to one of its messages) in an allowed channel (a thread counts as its
parent for the allowlist). The bot's own messages, other bots, webhooks and system messages (joins,
pins, thread starters...) are ignored.

:class:`DiscordMessage` is the small, neutral view these rules need. It is built from a gateway
``MESSAGE_CREATE`` payload (:meth:`DiscordMessage.from_payload`, what the fixtures hold) or from the
``discord.Message`` discord.py hands the adapter (:meth:`DiscordMessage.from_discord`), so both go
through the same decisions.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import discord
from pydantic import field_validator

from botframework.errors import PayloadError
from botframework.messages import ImagePart
from botframework.turn import ReplyTarget, Turn

__all__ = [
    "CHANNEL",
    "DiscordAttachment",
    "DiscordMessage",
    "DiscordTarget",
    "addressed_to_bot",
    "channel_allowed",
    "conversation_key",
    "parse_message",
    "to_turn",
]

CHANNEL = "discord"
_CONVERSATIONAL_TYPES = frozenset({0, 19})  # MessageType.default, MessageType.reply


class DiscordTarget(ReplyTarget):
    """The channel (DM, guild channel or thread) and the user's message the reply answers."""

    channel_id: str
    message_id: str
    """Snowflakes are stored as strings: JSON readers that use doubles would round them."""

    @field_validator("channel_id", "message_id")
    @classmethod
    def _snowflake(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError(f"a discord id is a decimal snowflake, got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class DiscordAttachment:
    url: str
    content_type: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class DiscordMessage:
    id: str
    channel_id: str
    guild_id: str | None
    author_id: str
    author_is_bot: bool
    webhook_id: str | None
    type: int
    content: str
    mention_ids: frozenset[str]
    attachments: tuple[DiscordAttachment, ...] = ()
    created_at: datetime | None = None
    replied_to_author_id: str | None = None
    """Author of the message this one replies to, when Discord resolved it."""

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> DiscordMessage:
        """From a gateway ``MESSAGE_CREATE`` ``d`` object."""
        try:
            author = data["author"]
            created = data.get("timestamp")
            referenced = data.get("referenced_message") or {}
            replied_to = (referenced.get("author") or {}).get("id")
            return cls(
                id=str(data["id"]),
                channel_id=str(data["channel_id"]),
                guild_id=str(data["guild_id"]) if data.get("guild_id") else None,
                author_id=str(author["id"]),
                author_is_bot=bool(author.get("bot", False)),
                webhook_id=str(data["webhook_id"]) if data.get("webhook_id") else None,
                type=int(data.get("type", 0)),
                content=str(data.get("content") or ""),
                mention_ids=frozenset(str(m["id"]) for m in data.get("mentions") or ()),
                attachments=tuple(
                    DiscordAttachment(url=str(a["url"]), content_type=a.get("content_type"))
                    for a in data.get("attachments") or ()
                ),
                created_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
                replied_to_author_id=str(replied_to) if replied_to else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"discord MESSAGE_CREATE payload not understood: {exc!r}") from exc

    @classmethod
    def from_discord(cls, message: discord.Message) -> DiscordMessage:
        """From the object discord.py dispatches to ``on_message``."""
        guild_id = message.guild.id if message.guild is not None else getattr(message.channel, "guild_id", None)
        resolved = message.reference.resolved if message.reference is not None else None
        replied_to = resolved.author.id if isinstance(resolved, discord.Message) else None
        return cls(
            id=str(message.id),
            channel_id=str(message.channel.id),
            guild_id=str(guild_id) if guild_id is not None else None,
            author_id=str(message.author.id),
            author_is_bot=message.author.bot,
            webhook_id=str(message.webhook_id) if message.webhook_id else None,
            type=message.type.value,
            content=message.content,
            mention_ids=frozenset(str(u.id) for u in message.mentions),
            attachments=tuple(DiscordAttachment(url=a.url, content_type=a.content_type) for a in message.attachments),
            created_at=message.created_at,
            replied_to_author_id=str(replied_to) if replied_to is not None else None,
        )


def addressed_to_bot(message: DiscordMessage, *, bot_user_id: str | None) -> bool:
    """A human's message in a DM, or one that mentions or replies to the bot in a guild."""
    if bot_user_id is None or message.author_id == bot_user_id:
        return False
    if message.author_is_bot or message.webhook_id is not None or message.type not in _CONVERSATIONAL_TYPES:
        return False
    return message.is_dm or bot_user_id in message.mention_ids or message.replied_to_author_id == bot_user_id


def channel_allowed(message: DiscordMessage, *, allowed_channels: Collection[str], parent_id: str | None) -> bool:
    """DMs always; guild channels when the allowlist is empty or holds the channel or its parent."""
    if message.is_dm or not allowed_channels:
        return True
    return message.channel_id in allowed_channels or (parent_id is not None and parent_id in allowed_channels)


def conversation_key(message: DiscordMessage) -> str:
    """``dm:{channel_id}`` for a DM, else the channel id (a thread is a channel of its own)."""
    return f"dm:{message.channel_id}" if message.is_dm else message.channel_id


def _strip_mention(content: str, bot_user_id: str) -> str:
    return re.sub(rf"[ \t]*<@!?{re.escape(bot_user_id)}>[ \t]*", " ", content).strip()


def to_turn(message: DiscordMessage, *, tenant: str, bot_user_id: str) -> Turn | None:
    """The Turn for an addressed message; None when nothing is left to answer (a bare mention)."""
    text = _strip_mention(message.content, bot_user_id)
    images = tuple(
        ImagePart(url=a.url, media_type=a.content_type.split(";")[0])
        for a in message.attachments
        if a.content_type and a.content_type.startswith("image/")
    )
    if not text and not images:
        return None
    return Turn(
        tenant=tenant,
        channel=CHANNEL,
        event_id=message.id,
        conversation_key=conversation_key(message),
        user_id=message.author_id,
        text=text,
        images=images,
        reply_target=DiscordTarget(channel_id=message.channel_id, message_id=message.id),
        received_at=message.created_at or datetime.now(UTC),
    )


def parse_message(
    message: DiscordMessage,
    *,
    tenant: str,
    bot_user_id: str | None,
    allowed_channels: Collection[str] = (),
    parent_id: str | None = None,
) -> Turn | None:
    """All the rules at once (the adapter runs them in steps, to look a thread's parent up lazily)."""
    if bot_user_id is None or not addressed_to_bot(message, bot_user_id=bot_user_id):
        return None
    if not channel_allowed(message, allowed_channels=allowed_channels, parent_id=parent_id):
        return None
    return to_turn(message, tenant=tenant, bot_user_id=bot_user_id)
