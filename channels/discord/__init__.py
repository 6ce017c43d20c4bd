"""Discord channel: a discord.py gateway client in the server's event loop."""

from channels.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
