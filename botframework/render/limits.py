"""The one table of per-channel message size limits, and chunking by it.

Figures come from the vendors' documentation (see shared/VENDOR-NOTES.md). Slack truncates text past
40,000 characters but recommends at most 4,000; we stay a little under that. Discord rejects content
over 2,000 characters. WeCom and WeChat measure UTF-8 bytes. Feishu text messages take 150 KB and
cards 30 KB. The WebSocket channel has no limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from botframework.render.chunking import Unit, split, split_rendered

__all__ = ["LIMITS", "ChannelLimit", "chunk_for", "limit_for", "render_chunks_for"]


@dataclass(frozen=True, slots=True)
class ChannelLimit:
    """How much text one message of a channel may carry. ``size`` None means unlimited."""

    size: int | None
    unit: Unit


LIMITS: Mapping[str, ChannelLimit] = MappingProxyType(
    {
        "slack": ChannelLimit(3_900, "chars"),
        "discord": ChannelLimit(2_000, "chars"),
        "wecom": ChannelLimit(2_048, "bytes"),
        "wechat": ChannelLimit(2_048, "bytes"),
        "feishu": ChannelLimit(150 * 1024, "bytes"),
        "feishu_card": ChannelLimit(30 * 1024, "bytes"),
        "websocket": ChannelLimit(None, "chars"),
    }
)


def limit_for(channel: str) -> ChannelLimit:
    """The limit of ``channel`` (a key of :data:`LIMITS`); KeyError names the known channels."""
    try:
        return LIMITS[channel]
    except KeyError:
        known = ", ".join(LIMITS)
        raise KeyError(f"no message limit known for channel {channel!r}; known: {known}") from None


def chunk_for(channel: str, text: str) -> list[str]:
    """``text`` split into chunks that each fit one message of ``channel``."""
    limit = limit_for(channel)
    if limit.size is None:
        return [text] if text.strip() else []
    return split(text, limit=limit.size, unit=limit.unit)


def render_chunks_for(channel: str, markdown: str, render: Callable[[str], str]) -> list[str]:
    """Markdown split for ``channel`` and rendered with ``render``; each rendered chunk fits."""
    limit = limit_for(channel)
    if limit.size is None:
        rendered = render(markdown)
        return [rendered] if rendered.strip() else []
    return split_rendered(markdown, render, limit=limit.size, unit=limit.unit)
