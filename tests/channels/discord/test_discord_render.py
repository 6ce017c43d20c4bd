"""Markdown -> Discord: passed through, with what Discord cannot show rewritten."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.discord.render import to_discord
from tests.render.samples import SAMPLE


def test_discord_passes_markdown_through_and_rewrites_tables() -> None:
    out = to_discord(SAMPLE)
    assert out.startswith("# Release notes\n\nSome **bold**, _italic_, ~~gone~~ and `a < b && c`")
    assert "[docs](https://example.com/a?b=1&c=2)" in out
    assert '```python\nif a < b and "**" in s:\n    print("&")\n```' in out
    assert "```\nName | Score\n-----+------\nAnn  | 10\n李雷 | 9\n```" in out
    assert "|------|" not in out


def test_discord_headings_it_cannot_show() -> None:
    assert to_discord("#### Deep\n\ntext") == "**Deep**\n\ntext"
    assert to_discord("Title\n=====\n\nSub\n---") == "# Title\n\n## Sub"
    assert to_discord("> | a | b |\n> |---|---|\n> | 1 | 2 |") == "> ```\n> a | b\n> --+--\n> 1 | 2\n> ```"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc xyz*_`~\n>-", max_size=120))
def test_discord_leaves_ordinary_markdown_untouched(text: str) -> None:
    lines = text.split("\n")
    if any(line.strip().startswith(("-", "=")) for line in lines):
        return  # setext underlines and rules may legitimately become headings
    assert to_discord(text) == text.strip("\n")
