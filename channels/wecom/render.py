"""Reply text -> WeCom ``markdown`` (or plain ``text``) message contents, each within 2,048 UTF-8 bytes."""

from __future__ import annotations

from botframework.render import render_chunks_for, to_plain, to_wecom_markdown

__all__ = ["EMPTY_REPLY", "render_reply"]

EMPTY_REPLY = "(empty reply)"


def render_reply(markdown: str, *, plain: bool = False) -> list[str]:
    """The messages one reply becomes, in order; never empty (WeCom rejects empty content, 44004)."""
    return render_chunks_for("wecom", markdown, to_plain if plain else to_wecom_markdown) or [EMPTY_REPLY]
