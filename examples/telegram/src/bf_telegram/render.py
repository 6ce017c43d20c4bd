"""Telegram's message dialect (HTML parse mode) and its message limit.

Replies are sent with ``parse_mode: HTML``: ``<b>``, ``<i>``, ``<s>``, ``<code>``, ``<pre>``,
``<blockquote>`` and ``<a href>``. Model text is escaped (``&``, ``<``, ``>``; ``"`` in links), so it
cannot open a tag of its own; only http(s) and mailto links become ``<a>`` (a ``tg://user?id=`` link
would mention someone), and an ``@username`` in the text gets an invisible word joiner after the
``@`` so Telegram does not turn it into a mention that notifies that user.

A message holds 4,096 characters of text after entities parsing; chunks are measured with their
tags, which only makes them shorter than that.
"""

from __future__ import annotations

import html
import re

from botframework.render import ChannelLimit, MarkdownRenderer
from markdown_it.tree import SyntaxTreeNode

__all__ = ["LIMIT", "escape_html", "to_telegram_html"]

LIMIT = ChannelLimit(4_096, "chars")
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_MENTION = re.compile(r"(?<![\w@])@(?=\w)")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,32}$")
_WORD_JOINER = "\u2060"


def escape_html(text: str) -> str:
    """Text safe between Telegram HTML tags: ``&``, ``<`` and ``>`` escaped."""
    return html.escape(text, quote=False)


class TelegramHtmlRenderer(MarkdownRenderer):
    def block(self, node: SyntaxTreeNode, *, depth: int) -> str:
        if node.type == "blockquote":
            return f"<blockquote>{self.blocks(node.children, tight=False, depth=depth)}</blockquote>"
        return super().block(node, depth=depth)

    def text(self, text: str) -> str:
        return _MENTION.sub("@" + _WORD_JOINER, escape_html(text))

    def heading(self, text: str, level: int) -> str:
        return f"<b>{text}</b>"

    def strong(self, text: str) -> str:
        return f"<b>{text}</b>"

    def em(self, text: str) -> str:
        return f"<i>{text}</i>"

    def strike(self, text: str) -> str:
        return f"<s>{text}</s>"

    def code_inline(self, code: str) -> str:
        return f"<code>{escape_html(code)}</code>"

    def code_block(self, code: str, info: str) -> str:
        body = escape_html(code.rstrip("\n"))
        language = info.split()[0] if info else ""
        if _LANGUAGE.match(language):
            return f'<pre><code class="language-{language}">{body}</code></pre>'
        return f"<pre>{body}</pre>"

    def link(self, href: str, text: str, *, autolink: bool) -> str:
        if not href.lower().startswith(_LINK_SCHEMES):
            shown = self.text(href)
            return text if not href or text == shown else (shown if not text else f"{text} ({shown})")
        url = html.escape(href, quote=True)
        return f'<a href="{url}">{text or self.text(href)}</a>'

    def table(self, rows: list[list[str]]) -> str:
        return self.code_block(self.table_text(rows), "")


_HTML = TelegramHtmlRenderer()


def to_telegram_html(markdown: str) -> str:
    """Telegram HTML for ``sendMessage`` with ``parse_mode: HTML``; model text cannot form tags or mentions."""
    return _HTML.render(markdown)
