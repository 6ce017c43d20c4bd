"""The HTML dialect: what Telegram shows, and that model text can never add a tag or a mention."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from botframework.testing import long_markdown_reply
from hypothesis import given, settings
from hypothesis import strategies as st

from bf_telegram import TelegramAdapter
from bf_telegram.render import LIMIT, to_telegram_html

ALLOWED = {"b", "i", "s", "code", "pre", "a", "blockquote"}


class _Checker(HTMLParser):
    """Parses like Telegram's HTML mode: known tags, balanced, text with entities resolved."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text += data


_TAG = re.compile(r'</?(?:b|i|s|code|pre|blockquote)>|<code class="language-[\w+#.-]+">|<a href="[^"<>]*">|</a>')
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


def parse(html: str) -> _Checker:
    """Checks what Telegram requires of HTML mode: no ``<``, ``>`` or ``&`` outside tags and entities."""
    bare = _ENTITY.sub("", _TAG.sub("", html))
    assert not set("<>&") & set(bare), f"raw markup characters in {html!r}"
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.stack == [], f"unclosed tags {checker.stack}"
    assert {t for t, _ in checker.tags} <= ALLOWED, checker.tags
    return checker


def test_formatting() -> None:
    assert (
        to_telegram_html("**bold** _it_ ~~gone~~ `x < y`") == "<b>bold</b> <i>it</i> <s>gone</s> <code>x &lt; y</code>"
    )
    assert to_telegram_html("# Title\n\ntext") == "<b>Title</b>\n\ntext"
    assert to_telegram_html("```python\nif a < b and c & d:\n    pass\n```") == (
        '<pre><code class="language-python">if a &lt; b and c &amp; d:\n    pass</code></pre>'
    )
    assert to_telegram_html("> quoted **text**") == "<blockquote>quoted <b>text</b></blockquote>"


def test_model_text_cannot_form_tags() -> None:
    rendered = to_telegram_html('<b>fake</b> <a href="tg://user?id=1">x</a> &amp; 1 < 2')
    checker = parse(rendered)
    assert checker.tags == []
    assert checker.text == '<b>fake</b> <a href="tg://user?id=1">x</a> & 1 < 2'  # &amp; is Markdown for &


def test_only_web_and_mail_links_become_links() -> None:
    assert to_telegram_html('[docs](https://example.com/a?b=1&c="2")') == (
        '<a href="https://example.com/a?b=1&amp;c=%222%22">docs</a>'
    )
    checker = parse(to_telegram_html("[click](tg://user?id=123456) [x](javascript:alert(1))"))
    assert checker.tags == []
    assert checker.text == "click (tg://user?id=123456) [x](javascript:alert(1))"


def test_usernames_do_not_become_mentions() -> None:
    rendered = to_telegram_html("ask @alice_admin or mail ops@example.com")
    assert rendered == "ask @\u2060alice_admin or mail ops@example.com"
    assert to_telegram_html("`@alice_admin`") == "<code>@alice_admin</code>"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"ab <>&\"'*_`[]()#>\n-~@:/!", "tg://", "http://x", "&amp;", "&#60;"]), max_size=40))
def test_any_text_renders_to_valid_html_with_only_known_tags(pieces: list[str]) -> None:
    text = "".join(pieces)
    checker = parse(to_telegram_html(text))
    for tag, attrs in checker.tags:
        if tag == "a":
            assert (attrs.get("href") or "").startswith(("http://", "https://", "mailto:"))


def test_long_replies_are_chunked_within_the_limit_as_valid_html() -> None:
    chunks = TelegramAdapter.render_reply.__get__(object.__new__(TelegramAdapter))(long_markdown_reply(20_000))
    assert len(chunks) >= 5
    assert LIMIT.size is not None
    for chunk in chunks:
        assert len(chunk) <= LIMIT.size
        parse(chunk)
