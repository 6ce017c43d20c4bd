"""Markdown (what models write) -> each channel's dialect, from markdown-it-py's token stream.

Working on parsed tokens rather than regexes over raw text is what keeps code spans, fences and
escapes intact: ``**`` inside a code block stays literal, ``\\*`` stays a star, ``&amp;`` is one
``&``. Raw HTML is not interpreted (models do not mean it): it is shown as text.

- :func:`to_slack`: Slack mrkdwn. ``*bold*``, ``_italic_``, ``~strike~``, ``<url|text>``, headings
  as bold lines, tables as code blocks, and ``&``, ``<``, ``>`` escaped everywhere so model text can
  never form ``<!channel>``, ``<@U123>`` or any other Slack control sequence.
- :func:`to_discord`: Discord's Markdown is close to CommonMark, so the source passes through line
  for line; only what Discord cannot show changes (tables -> code blocks, setext and h4-h6 headings).
- :func:`to_plain`: no markup at all (WeChat, WeCom text): links as ``text (url)``.
- :func:`to_wecom_markdown`: WeCom's Markdown subset (headings, bold, links, inline code, quotes).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from urllib.parse import quote

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from botframework.render.chunking import normalize_newlines

__all__ = ["escape_slack", "to_discord", "to_plain", "to_slack", "to_wecom_markdown"]

_PARSER = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

_SLACK_LINK_SCHEMES = ("http://", "https://", "mailto:")


def _parse(markdown: str) -> SyntaxTreeNode:
    return SyntaxTreeNode(_PARSER.parse(normalize_newlines(markdown)))


def escape_slack(text: str) -> str:
    """Escape the three characters Slack treats as control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _width(text: str) -> int:
    """Display width in a monospace font (CJK wide characters take two columns)."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0], *((rest + line) if line else line for line in lines[1:])])


class _Renderer:
    """Walks the syntax tree; dialects override the leaf formatting."""

    bullets: Sequence[str] = ("•", "◦", "▪")
    quote_prefix = "> "
    rule = "───"

    def render(self, markdown: str) -> str:
        return self.blocks(_parse(markdown).children, tight=False, depth=0).strip("\n")

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
            inner = self.blocks(node.children, tight=False, depth=depth)
            bare = self.quote_prefix.rstrip()
            return "\n".join(self.quote_prefix + line if line else bare for line in inner.split("\n"))
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
        plain = _PlainRenderer()
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
        widths = [max(_width(r[i]) for r in rows) for i in range(columns)]

        def line(cells: list[str]) -> str:
            return " | ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()

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
            return self.image(str(node.attrs.get("src", "")), _PlainRenderer().inline(node))
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


class _PlainRenderer(_Renderer):
    bullets = ("-", "-", "-")
    rule = "----------"


def _wrap(text: str, mark: str) -> str:
    """``mark`` around ``text``, surrounding spaces moved outside (Slack needs marks touching words)."""
    core = text.strip()
    if not core:
        return text
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return f"{lead}{mark}{core}{mark}{trail}"


def _slack_url(href: str) -> str:
    """A URL safe inside ``<...|...>``: no raw ``<``, ``>``, ``|`` or spaces; ``&`` escaped."""
    return escape_slack(quote(href, safe=":/?#[]@!$&'()*+,;=%~-._"))


class _SlackRenderer(_Renderer):
    def text(self, text: str) -> str:
        return escape_slack(text)

    def heading(self, text: str, level: int) -> str:
        return _wrap(text.replace("\n", " "), "*")

    def strong(self, text: str) -> str:
        return _wrap(text, "*")

    def em(self, text: str) -> str:
        return _wrap(text, "_")

    def strike(self, text: str) -> str:
        return _wrap(text, "~")

    def code_inline(self, code: str) -> str:
        return f"`{escape_slack(code)}`"

    def code_block(self, code: str, info: str) -> str:
        return f"```\n{escape_slack(code.rstrip(chr(10)))}\n```"

    def link(self, href: str, text: str, *, autolink: bool) -> str:
        text = text.replace("\n", " ")
        if not href.lower().startswith(_SLACK_LINK_SCHEMES):
            # Only real web/mail links become <...>: "<!channel|x>" would be a Slack mention.
            shown = escape_slack(href)
            if not text or text == shown:
                return shown
            return f"{text} ({shown})" if href else text
        url = _slack_url(href)
        if autolink or not text or text == escape_slack(href):
            return f"<{url}>"
        return f"<{url}|{text}>"

    def image(self, src: str, alt: str) -> str:
        return self.link(src, escape_slack(alt), autolink=False)

    def table(self, rows: list[list[str]]) -> str:
        return self.code_block(self.table_text(rows), "")


class _WeComRenderer(_Renderer):
    bullets = ("-", "-", "-")
    rule = "----------"

    def heading(self, text: str, level: int) -> str:
        return "#" * level + " " + text.replace("\n", " ")

    def strong(self, text: str) -> str:
        return _wrap(text, "**")

    def code_inline(self, code: str) -> str:
        return f"`{code}`"

    def code_block(self, code: str, info: str) -> str:
        return "\n".join("> " + line for line in code.rstrip("\n").split("\n"))

    def link(self, href: str, text: str, *, autolink: bool) -> str:
        if autolink or not text or text == href:
            return href
        return f"[{text.replace(chr(10), ' ')}]({href})"


_SLACK = _SlackRenderer()
_PLAIN = _PlainRenderer()
_WECOM = _WeComRenderer()


def to_slack(markdown: str) -> str:
    """Slack mrkdwn for ``chat.postMessage``'s ``text``; model text cannot form mentions."""
    return _SLACK.render(markdown)


def to_plain(markdown: str) -> str:
    """Plain text with no markup (WeChat, WeCom text messages)."""
    return _PLAIN.render(markdown)


def to_wecom_markdown(markdown: str) -> str:
    """WeCom's ``markdown`` message subset."""
    return _WECOM.render(markdown)


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
    for node in _parse(source).walk():
        if node.is_root or node.map is None:
            continue
        first, last = node.map
        prefix = _container_prefix(lines[first])
        if node.type == "table" and "|" in lines[first]:
            block = ["```", *_Renderer.table_text(_Renderer().table_rows(node)).split("\n"), "```"]
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
