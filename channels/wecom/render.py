"""WeCom's message dialect (its ``markdown`` subset, or plain text) and its limit.

Text and markdown messages take 2,048 UTF-8 bytes. WeCom's markdown shows headings, bold, links,
inline code and quotes; code blocks become quotes, lists plain dashes.
"""

from __future__ import annotations

from botframework.render import ChannelLimit, MarkdownRenderer, wrap_mark

__all__ = ["LIMIT", "to_wecom_markdown"]

LIMIT = ChannelLimit(2_048, "bytes")


class WeComMarkdownRenderer(MarkdownRenderer):
    bullets = ("-", "-", "-")
    rule = "----------"

    def heading(self, text: str, level: int) -> str:
        return "#" * level + " " + text.replace("\n", " ")

    def strong(self, text: str) -> str:
        return wrap_mark(text, "**")

    def code_inline(self, code: str) -> str:
        return f"`{code}`"

    def code_block(self, code: str, info: str) -> str:
        return "\n".join("> " + line for line in code.rstrip("\n").split("\n"))

    def link(self, href: str, text: str, *, autolink: bool) -> str:
        if autolink or not text or text == href:
            return href
        return f"[{text.replace(chr(10), ' ')}]({href})"


_WECOM = WeComMarkdownRenderer()


def to_wecom_markdown(markdown: str) -> str:
    """WeCom's ``markdown`` message subset."""
    return _WECOM.render(markdown)
