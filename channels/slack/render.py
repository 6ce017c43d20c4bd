"""Slack's message dialect (mrkdwn) and its message limit.

``*bold*``, ``_italic_``, ``~strike~``, ``<url|text>``; headings become bold lines and tables code
blocks. ``&``, ``<`` and ``>`` are escaped everywhere, so model text can never form ``<!channel>``,
``<@U123>`` or any other Slack control sequence. Slack truncates text past 40,000 characters but
recommends at most 4,000; replies are chunked a little under that.
"""

from __future__ import annotations

from urllib.parse import quote

from botframework.render import ChannelLimit, MarkdownRenderer, wrap_mark

__all__ = ["LIMIT", "escape_slack", "to_slack"]

LIMIT = ChannelLimit(3_900, "chars")
_LINK_SCHEMES = ("http://", "https://", "mailto:")


def escape_slack(text: str) -> str:
    """Escape the three characters Slack treats as control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_url(href: str) -> str:
    """A URL safe inside ``<...|...>``: no raw ``<``, ``>``, ``|`` or spaces; ``&`` escaped."""
    return escape_slack(quote(href, safe=":/?#[]@!$&'()*+,;=%~-._"))


class MrkdwnRenderer(MarkdownRenderer):
    def text(self, text: str) -> str:
        return escape_slack(text)

    def heading(self, text: str, level: int) -> str:
        return wrap_mark(text.replace("\n", " "), "*")

    def strong(self, text: str) -> str:
        return wrap_mark(text, "*")

    def em(self, text: str) -> str:
        return wrap_mark(text, "_")

    def strike(self, text: str) -> str:
        return wrap_mark(text, "~")

    def code_inline(self, code: str) -> str:
        return f"`{escape_slack(code)}`"

    def code_block(self, code: str, info: str) -> str:
        return f"```\n{escape_slack(code.rstrip(chr(10)))}\n```"

    def link(self, href: str, text: str, *, autolink: bool) -> str:
        text = text.replace("\n", " ")
        if not href.lower().startswith(_LINK_SCHEMES):
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


_MRKDWN = MrkdwnRenderer()


def to_slack(markdown: str) -> str:
    """Slack mrkdwn for ``chat.postMessage``'s ``text``; model text cannot form mentions."""
    return _MRKDWN.render(markdown)
