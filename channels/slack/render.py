"""Reply text -> Slack message texts: mrkdwn, chunked under Slack's limit without breaking fences."""

from __future__ import annotations

from botframework.render import LIMITS, render_chunks_for, to_slack

__all__ = ["EMPTY_REPLY", "render_preview", "render_reply"]

EMPTY_REPLY = "(empty reply)"
_UNFINISHED = "…"
_LIMIT = LIMITS["slack"].size or 3_900


def render_reply(markdown: str) -> list[str]:
    """The messages one reply becomes, in order; never empty (Slack rejects an empty text)."""
    return render_chunks_for("slack", markdown, to_slack) or [EMPTY_REPLY]


def render_preview(markdown: str) -> str:
    """What a live placeholder shows while the reply is produced: its first chunk, marked unfinished.

    Only the head of the text can reach the first chunk, so only the head is rendered: an edit
    costs the same whether the answer so far is 1 KB or 100 KB.
    """
    head = markdown[: 2 * _LIMIT]
    chunks = render_chunks_for("slack", head, to_slack)
    if not chunks:
        return _UNFINISHED
    first = chunks[0]
    if len(chunks) > 1 or len(head) < len(markdown) or len(first) + 2 > _LIMIT:
        return first
    return f"{first} {_UNFINISHED}"
