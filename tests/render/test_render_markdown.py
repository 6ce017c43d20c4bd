"""Markdown -> plain text, the dialect every channel without markup uses."""

from __future__ import annotations

from botframework.render.markdown import to_plain
from tests.render.samples import SAMPLE


def test_plain_has_no_markup_and_spells_out_links() -> None:
    out = to_plain(SAMPLE)
    assert "**bold**" not in out and "`" not in out and "#" not in out
    assert out.startswith("Release notes\n\nSome bold, italic, gone and a < b && c text with")
    assert "docs (https://example.com/a?b=1&c=2)" in out
    assert "- first\n- second\n  - nested" in out
    assert 'if a < b and "**" in s:\n    print("&")' in out
    assert "Name | Score\nAnn | 10\n李雷 | 9" in out
    assert to_plain("<https://a.test>") == "https://a.test"
