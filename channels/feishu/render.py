"""Reply text -> Feishu interactive cards (JSON 2.0) with one ``markdown`` element each.

Why a card and not ``text``/``post``: a text message shows Markdown as raw asterisks, and a post
needs the reply translated into Feishu's element tree; the card ``markdown`` element renders the
model's Markdown (headings, lists, links, fenced code with highlighting, tables) nearly as written.
The cost is the smaller size limit (30 KB per card instead of 150 KB), which the shared chunker
handles. Two things are changed on the way: ``<at ...>`` tags are neutralised so model output
cannot mention or broadcast (``<at id=all>``), and images become links (card images need an
uploaded ``image_key``, a URL would fail the whole card).

Every card declares ``config.update_multi: true`` (a shared card): Feishu only lets a card be edited
with PATCH when the card before and after the edit both declare it, which live updates rely on.
JSON 2.0 cards default to it, but the PATCH documentation asks for it explicitly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botframework.render import ChannelLimit, render_chunks

__all__ = ["CARD_LIMIT", "EMPTY_REPLY", "card", "card_markdown", "render_preview", "render_reply", "to_feishu_markdown"]

EMPTY_REPLY = "(empty reply)"
CARD_LIMIT = ChannelLimit(30 * 1024, "bytes")
"""A card (its whole request body) may take 30 KB; a text message 150 KB, but text shows raw Markdown."""
_UNFINISHED = "…"
_PREVIEW_HEAD = 2 * 30 * 1024
"""Characters of a reply that can reach its first card: every character costs at least one byte."""
_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})")
_AT_TAG = re.compile(r"<(?=\s*/?\s*at\b)", re.IGNORECASE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _outside_code(line: str) -> str:
    line = _AT_TAG.sub("&#60;", line)
    return _IMAGE.sub(lambda m: f"[{m.group(1) or m.group(2)}]({m.group(2)})", line)


def to_feishu_markdown(markdown: str) -> str:
    """Markdown as the card ``markdown`` element shows it; fenced code is left untouched."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                out.append(line)
            else:
                out.append(_outside_code(line))
        else:
            out.append(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
    return "\n".join(out)


def card(markdown: str) -> dict[str, Any]:
    """A JSON 2.0 card holding ``markdown`` (already in Feishu's dialect)."""
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "body": {"elements": [{"tag": "markdown", "content": markdown}]},
    }


def card_markdown(content: str) -> str:
    """The markdown text of a card built by :func:`card` (tests and fakes read replies with it)."""
    parsed = json.loads(content)
    return "".join(
        str(el.get("content", "")) for el in parsed.get("body", {}).get("elements", []) if el.get("tag") == "markdown"
    )


def _request_body(markdown: str) -> str:
    """The reply request body one chunk becomes: Feishu's 30 KB card limit counts the request body.

    ``ensure_ascii`` is the worst case (``\\uXXXX`` for every non-ASCII character), so a chunk that
    fits here fits however the SDK serialises it; the uuid is at its longest.
    """
    content = json.dumps(card(to_feishu_markdown(markdown)), ensure_ascii=False)
    return json.dumps({"content": content, "msg_type": "interactive", "reply_in_thread": False, "uuid": "u" * 50})


def render_reply(markdown: str) -> list[str]:
    """The card contents (JSON strings) one reply becomes, in order; never empty."""
    bodies = render_chunks(markdown, _request_body, CARD_LIMIT)
    contents = [str(json.loads(body)["content"]) for body in bodies]
    return contents or [json.dumps(card(EMPTY_REPLY), ensure_ascii=False)]


def render_preview(markdown: str) -> str:
    """What a live placeholder card shows while the reply is produced: its first card, marked unfinished.

    Only the head of the text can reach the first card, so only the head is rendered: an edit costs
    the same whether the answer so far is 1 KB or 100 KB.
    """
    head = markdown[:_PREVIEW_HEAD]
    if not head.strip():
        return json.dumps(card(_UNFINISHED), ensure_ascii=False)
    first = render_reply(head)
    if len(first) == 1 and len(head) == len(markdown):
        marked = render_reply(f"{head.rstrip()} {_UNFINISHED}")
        if len(marked) == 1:
            return marked[0]
    return first[0]
