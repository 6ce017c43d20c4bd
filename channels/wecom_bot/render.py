"""WeCom AI bot messages: Markdown as the model wrote it, at most 20,480 UTF-8 bytes per message.

The AI bot shows Markdown in streamed replies and ``markdown`` messages. Model text cannot mention
anyone: ``<@userid>`` mention markup is defused.
"""

from __future__ import annotations

from botframework.render import ChannelLimit

__all__ = ["LIMIT", "to_bot_markdown"]

LIMIT = ChannelLimit(20_480, "bytes")


def to_bot_markdown(markdown: str) -> str:
    return markdown.replace("<@", "<\u200b@")
