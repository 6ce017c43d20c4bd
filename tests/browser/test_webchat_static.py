"""The chat page's files without a browser: relative local assets, CSP-compatible markup, vendored code."""

from __future__ import annotations

import gzip
import hashlib
import re
from html.parser import HTMLParser

from botframework.web import CHAT_PAGE, STATIC_DIR

SHIPPED = ["chat.html", "chat.css", "chat.js", "markdown-it.min.js"]
GZIP_BUDGET = 64 * 1024


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(str(values[name]))
        if tag == "script" and not values.get("src"):
            self.inline_scripts += 1
        if tag == "style" or "style" in values:
            self.styles += 1
        self.handlers += [name for name in values if name.startswith("on")]


def _refs() -> _Refs:
    parser = _Refs()
    parser.feed(CHAT_PAGE.read_text(encoding="utf-8"))
    return parser


def test_page_references_only_relative_static_files_that_exist() -> None:
    refs = _refs()
    assets = [u for u in refs.urls if not u.startswith(("#", "data:"))]
    assert sorted(assets) == [
        "../../static/chat.css", "../../static/chat.js", "../../static/markdown-it.min.js"]
    for url in assets:
        # /static/{file}: one path segment, no sub-folders.
        assert (STATIC_DIR / url.removeprefix("../../static/")).is_file(), url


def test_page_markup_works_under_a_strict_content_security_policy() -> None:
    refs = _refs()
    assert refs.inline_scripts == 0
    assert refs.handlers == []
    assert refs.styles == 0
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', CHAT_PAGE.read_text("utf-8"))
    assert csp is not None
    directives = dict(d.strip().split(" ", 1) for d in csp.group(1).split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "https:" not in directives["img-src"]


def test_vendored_markdown_it_matches_its_recorded_checksum_and_license() -> None:
    notice = (STATIC_DIR / "markdown-it.LICENSE.txt").read_text(encoding="utf-8")
    recorded = re.search(r"sha256 of the file: ([0-9a-f]{64})", notice)
    assert recorded is not None
    actual = hashlib.sha256((STATIC_DIR / "markdown-it.min.js").read_bytes()).hexdigest()
    assert actual == recorded.group(1)
    assert "markdown-it@15.0.3" in notice
    for bundled in ("entities", "linkify-it", "mdurl", "punycode.js", "uc.micro"):
        assert f"\n{bundled} (" in notice, bundled
    assert notice.count("Permission is hereby granted") >= 5


def test_shipped_weight_stays_small() -> None:
    sizes = {name: (STATIC_DIR / name).read_bytes() for name in SHIPPED}
    zipped = {name: len(gzip.compress(data, 9)) for name, data in sizes.items()}
    total = sum(zipped.values())
    print({name: (len(data), zipped[name]) for name, data in sizes.items()}, "gzip total", total)
    assert total < GZIP_BUDGET, zipped
