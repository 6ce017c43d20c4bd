"""Options of the Discord channel: ``tenants.*.channels.discord``."""

from __future__ import annotations

from pydantic import Field

from botframework.config.types import HttpUrl, Secret, StrictModel, StrId

__all__ = ["DiscordChannelConfig"]


class DiscordChannelConfig(StrictModel):
    """Discord bot through the gateway (no route)."""

    bot_token: Secret
    """Bot token from the Developer Portal (enable the Message Content intent there)."""
    allowed_channels: list[StrId] = Field(default_factory=list)
    """Guild channel ids where the bot answers plain mentions; empty means every channel. DMs always."""
    api_base_url: HttpUrl | None = None
    """REST base (``https://discord.com/api/v10``); override for tests or proxies."""
