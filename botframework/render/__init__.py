"""Shared rendering for every channel: Markdown dialects, fence-aware chunking, message limits.

A channel declares its limit and its dialect; the core chunks each reply with
``render_chunks(reply.text, dialect, limit)`` so every rendered chunk fits one message.
"""

from botframework.render.chunking import Unit, measure, split, split_rendered
from botframework.render.limits import UNLIMITED, ChannelLimit, chunk_text, render_chunks
from botframework.render.markdown import (
    MarkdownRenderer,
    PlainRenderer,
    display_width,
    parse_markdown,
    to_plain,
    wrap_mark,
)

__all__ = [
    "UNLIMITED",
    "ChannelLimit",
    "MarkdownRenderer",
    "PlainRenderer",
    "Unit",
    "chunk_text",
    "display_width",
    "measure",
    "parse_markdown",
    "render_chunks",
    "split",
    "split_rendered",
    "to_plain",
    "wrap_mark",
]
