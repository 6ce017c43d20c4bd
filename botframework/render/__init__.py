"""Shared rendering for every channel: Markdown dialects, fence-aware chunking, one table of limits.

A channel's ``render.py`` combines these: ``render_chunks_for("slack", reply.text, to_slack)``.
"""

from botframework.render.chunking import Unit, measure, split, split_rendered
from botframework.render.limits import LIMITS, ChannelLimit, chunk_for, limit_for, render_chunks_for
from botframework.render.markdown import escape_slack, to_discord, to_plain, to_slack, to_wecom_markdown

__all__ = [
    "LIMITS",
    "ChannelLimit",
    "Unit",
    "chunk_for",
    "escape_slack",
    "limit_for",
    "measure",
    "render_chunks_for",
    "split",
    "split_rendered",
    "to_discord",
    "to_plain",
    "to_slack",
    "to_wecom_markdown",
]
