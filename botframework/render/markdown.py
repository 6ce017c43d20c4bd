"""Markdown (what models write) -> a channel's dialect, from markdown-it-py's token stream.

Working on parsed tokens rather than regexes over raw text is what keeps code spans, fences and
escapes intact: ``**`` inside a code block stays literal, ``\\*`` stays a star, ``&amp;`` is one
``&``. Raw HTML is not interpreted (models do not mean it): it is shown as text.

:class:`MarkdownRenderer` walks the syntax tree; a channel's dialect subclasses it and overrides the
leaf formatting (``strong``, ``link``, ``code_block``...). :func:`to_plain` is the dialect with no
markup at all (links as ``text (url)``), for channels that show plain text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from botframework.render.chunking import normalize_newlines

__all__ = [
    "MarkdownRenderer",
    "PlainRenderer",
    "display_width",
    "parse_markdown",
    "to_plain",
    "wrap_mark",
]

_PARSER = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def parse_markdown(markdown: str) -> SyntaxTreeNode:
    """The syntax tree of ``markdown`` (CommonMark plus tables and strikethrough, no raw HTML)."""
    return SyntaxTreeNode(_PARSER.parse(normalize_newlines(markdown)))


def display_width(text: str) -> int:
    """Display width in a monospace font (CJK wide characters take two columns)."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0], *((rest + line) if line else line for line in lines[1:])])


class MarkdownRenderer:
    """Walks the syntax tree; dialects override the leaf formatting (the ``dialect hooks`` below)."""

    bullets: Sequence[str] = ("•", "◦", "▪")
    quote_prefix = "> "
    rule = "───"

    def render(self, markdown: str) -> str:
        return self.blocks(parse_markdown(markdown).children, tight=False, depth=0).strip("\n")

    # blocks

    def blocks(self, nodes: Sequence[SyntaxTreeNode], *, tight: bool, depth: int) -> str:
        parts = [self.block(node, depth=depth) for node in nodes]
        return ("\n" if tight else "\n\n").join(p for p in parts if p)

    def block(self, node: SyntaxTreeNode, *, depth: int) -> str:
        kind = node.type
        if kind == "paragraph":
            return self.inline(node.children[0]) if node.children else ""
        if kind == "heading":
            return self.heading(self.inline(node.children[0]), int(node.tag[1]))
        if kind in ("bullet_list", "ordered_list"):
            return self.list_block(node, depth=depth)
        if kind == "blockquote":
            return self.blockquote(self.blocks(node.children, tight=False, depth=depth))
        if kind in ("fence", "code_block"):
            return self.code_block(node.content, node.info.strip())
        if kind == "hr":
            return self.rule
        if kind == "table":
            return self.table(self.table_rows(node))
        return self.text(node.content.rstrip("\n"))

    def list_block(self, node: SyntaxTreeNode, *, depth: int) -> str:
        items = node.children
        tight = all(p.hidden for item in items for p in item.children if p.type == "paragraph")
        start = int(str(node.attrs.get("start", 1))) if node.type == "ordered_list" else 1
        rendered = []
        for number, item in enumerate(items, start=start):
            marker = f"{number}." if node.type == "ordered_list" else self.bullets[depth % len(self.bullets)]
            body = self.blocks(item.children, tight=tight, depth=depth + 1)
            rendered.append(_indent(body, marker + " ", " " * (len(marker) + 1)))
        return ("\n" if tight else "\n\n").join(rendered)

    def table_rows(self, node: SyntaxTreeNode) -> list[list[str]]:
        plain = PlainRenderer()
        rows: list[list[str]] = []
        for section in node.children:
            for row in section.children:
                rows.append([plain.inline(c.children[0]) if c.children else "" for c in row.children])
        return rows

    @staticmethod
    def table_text(rows: list[list[str]]) -> str:
        """Rows aligned in columns, header underlined, for a monospace code block."""
        if not rows:
            return ""
        columns = max(len(r) for r in rows)
        rows = [[cell.replace("\n", " ") for cell in r] + [""] * (columns - len(r)) for r in rows]
        widths = [max(display_width(r[i]) for r in rows) for i in range(columns)]

        def line(cells: list[str]) -> str:
            return " | ".join(c + " " * (w - display_width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()

        rule = "-+-".join("-" * w for w in widths)
        return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])

    # inline

    def inline(self, node: SyntaxTreeNode) -> str:
        return "".join(self.inline_node(child) for child in node.children)

    def inline_node(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind == "text":
            return self.text(node.content)
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "strong":
            return self.strong(self.inline(node))
        if kind == "em":
            return self.em(self.inline(node))
        if kind == "s":
            return self.strike(self.inline(node))
        if kind == "code_inline":
            return self.code_inline(node.content)
        if kind == "link":
            return self.link(str(node.attrs.get("href", "")), self.inline(node), autolink=node.info == "auto")
        if kind == "image":
            return self.image(str(node.attrs.get("src", "")), PlainRenderer().inline(node))
        return self.text(node.content) + self.inline(node)

    # dialect hooks

    def text(self, text: str) -> str:
        return text

    def heading(self, text: str, level: int) -> str:
        return text

    def strong(self, text: str) -> str:
        return text

    def em(self, text: str) -> str:
        return text

    def strike(self, text: str) -> str:
        return text

    def code_inline(self, code: str) -> str:
        return code

    def code_block(self, code: str, info: str) -> str:
        return code.rstrip("\n")

    def link(self, href: str, text: str, *, autolink: bool) -> str:
        if autolink or not text or text == href:
            return href
        return f"{text} ({href})"

    def image(self, src: str, alt: str) -> str:
        return self.link(src, alt, autolink=False)

    def table(self, rows: list[list[str]]) -> str:
        return "\n".join(" | ".join(cell.replace("\n", " ") for cell in row) for row in rows)

    def blockquote(self, text: str) -> str:
        """A rendered block quoted; ``quote_prefix`` before every line by default."""
        bare = self.quote_prefix.rstrip()
        return "\n".join(self.quote_prefix + line if line else bare for line in text.split("\n"))


class PlainRenderer(MarkdownRenderer):
    """No markup: what a channel that shows plain text gets."""

    bullets = ("-", "-", "-")
    rule = "----------"


def wrap_mark(text: str, mark: str) -> str:
    """``mark`` around ``text``, surrounding spaces moved outside (some dialects need marks touching words)."""
    core = text.strip()
    if not core:
        return text
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return f"{lead}{mark}{core}{mark}{trail}"


_PLAIN = PlainRenderer()


def to_plain(markdown: str) -> str:
    """Plain text with no markup."""
    return _PLAIN.render(markdown)
