"""Reply text -> WeChat customer-service text messages: plain text (no Markdown), ≤ 2,048 UTF-8 bytes."""

from __future__ import annotations

from botframework.render import render_chunks_for, to_plain

__all__ = ["EMPTY_REPLY", "render_reply"]

EMPTY_REPLY = "(empty reply)"


def render_reply(markdown: str) -> list[str]:
    """The messages one reply becomes, in order; never empty."""
    return render_chunks_for("wechat", markdown, to_plain) or [EMPTY_REPLY]
