"""How much text one message of a channel may carry, and chunking a reply by it.

Each channel declares its own limit (``ChannelAdapter.message_limit``): the size one message may
have and whether the vendor counts characters or UTF-8 bytes. The core chunks every reply by it,
so a channel never sends a message its vendor would truncate or refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from botframework.render.chunking import Unit, split, split_rendered

__all__ = ["UNLIMITED", "ChannelLimit", "chunk_text", "render_chunks"]


@dataclass(frozen=True, slots=True)
class ChannelLimit:
    """How much text one message of a channel may carry. ``size`` None means unlimited."""

    size: int | None
    unit: Unit = "chars"

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 16:
            raise ValueError(f"a message limit of {self.size} {self.unit} cannot hold a reply; use at least 16")


UNLIMITED = ChannelLimit(None)
"""A channel whose messages have no size limit (a WebSocket frame)."""


def chunk_text(text: str, limit: ChannelLimit) -> list[str]:
    """``text`` split into chunks that each fit one message; no chunk for blank text."""
    if limit.size is None:
        return [text] if text.strip() else []
    return split(text, limit=limit.size, unit=limit.unit)


def render_chunks(markdown: str, render: Callable[[str], str], limit: ChannelLimit) -> list[str]:
    """Markdown split so that each piece, rendered with ``render``, fits one message; rendered pieces."""
    if limit.size is None:
        rendered = render(markdown)
        return [rendered] if rendered.strip() else []
    return split_rendered(markdown, render, limit=limit.size, unit=limit.unit)
