"""Discord's message dialect and limit.

Discord's Markdown is close to CommonMark, so the source passes through line for line; only what
Discord cannot show changes (tables become code blocks, setext and h4-h6 headings are rewritten).
Content is limited to 2,000 characters (discord.py does not split: HTTP 400, code 50035). Mentions
in the text never ping anyone: only the replied-to user may be pinged.
"""

from __future__ import annotations

import discord

from botframework.render import ChannelLimit, MarkdownRenderer, parse_markdown
from botframework.render.chunking import normalize_newlines

__all__ = ["FOLLOW_UP_MENTIONS", "LIMIT", "REPLY_MENTIONS", "to_discord"]

LIMIT = ChannelLimit(2_000, "chars")

REPLY_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)
"""The first chunk may ping the person it replies to, and nobody the model names."""
FOLLOW_UP_MENTIONS = discord.AllowedMentions.none()
"""Later chunks ping nobody."""


def _container_prefix(line: str) -> str:
    """Leading blockquote markers and indentation of a source line."""
    end = 0
    while end < len(line) and line[end] in "> \t":
        end += 1
    return line[:end]


def to_discord(markdown: str) -> str:
    """Discord Markdown: the source line for line, with tables and unsupported headings rewritten."""
    source = normalize_newlines(markdown)
    lines = source.split("\n")
    edits: list[tuple[int, int, list[str]]] = []
    for node in parse_markdown(source).walk():
        if node.is_root or node.map is None:
            continue
        first, last = node.map
        prefix = _container_prefix(lines[first])
        if node.type == "table" and "|" in lines[first]:
            block = ["```", *MarkdownRenderer.table_text(MarkdownRenderer().table_rows(node)).split("\n"), "```"]
            edits.append((first, last, [prefix + line for line in block]))
        elif node.type == "heading" and node.children:
            level = int(node.tag[1])
            atx = lines[first][len(prefix) :].startswith("#")
            if level <= 3 and atx:
                continue
            content = node.children[0].content.replace("\n", " ")
            replacement = "#" * level + " " + content if level <= 3 else f"**{content}**"
            edits.append((first, last, [prefix + replacement]))
    for first, last, new_lines in sorted(edits, reverse=True):
        lines[first:last] = new_lines
    return "\n".join(lines).strip("\n")
