"""Reply text -> Discord message contents: Discord Markdown, split at 2,000 characters, fences kept."""

from __future__ import annotations

import discord

from botframework.render import render_chunks_for, to_discord

__all__ = ["EMPTY_REPLY", "FOLLOW_UP_MENTIONS", "REPLY_MENTIONS", "render_reply"]

EMPTY_REPLY = "(empty reply)"

REPLY_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
"""The first chunk may ping the person it replies to, and nobody the model names."""
FOLLOW_UP_MENTIONS = discord.AllowedMentions.none()
"""Later chunks ping nobody."""


def render_reply(markdown: str) -> list[str]:
    """The messages one reply becomes, in order; never empty (Discord rejects an empty message)."""
    return render_chunks_for("discord", markdown, to_discord) or [EMPTY_REPLY]
