"""Markdown -> WeCom's markdown subset."""

from __future__ import annotations

from channels.wecom.render import to_wecom_markdown
from tests.render.samples import SAMPLE


def test_wecom_markdown_subset() -> None:
    out = to_wecom_markdown(SAMPLE)
    assert out.startswith("# Release notes\n\nSome **bold**, italic, gone and `a < b && c`")
    assert "[docs](https://example.com/a?b=1&c=2)" in out
    assert '> if a < b and "**" in s:' in out  # no code blocks in WeCom: quoted lines instead
