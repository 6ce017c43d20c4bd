"""Markdown -> Slack mrkdwn: formatting, and model text that can never mention or broadcast."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.slack.render import escape_slack, to_slack
from tests.render.samples import SAMPLE


def test_slack_inline_and_block_formatting() -> None:
    out = to_slack(SAMPLE)
    assert out.startswith("*Release notes*\n\n")
    assert "*bold*" in out and "_italic_" in out and "~gone~" in out
    assert "`a &lt; b &amp;&amp; c`" in out
    assert "<https://example.com/a?b=1&amp;c=2|docs>" in out
    assert "• first\n• second\n  ◦ nested" in out
    assert "1. one\n2. two" in out
    assert "> quoted *text*" in out
    # code keeps its stars literal, is escaped, and the info string is dropped (Slack would show it)
    assert '```\nif a &lt; b and "**" in s:\n    print("&amp;")\n```' in out
    # tables become aligned code blocks, CJK counted double width
    assert "```\nName | Score\n-----+------\nAnn  | 10\n李雷 | 9\n```" in out


def test_slack_cannot_be_made_to_mention_or_broadcast() -> None:
    hostile = "<!channel> <!here|here> <@U024BE7LH> <#C123|general> [x](<!everyone>) [y](!subteam^S1) &amp;"
    out = to_slack(hostile)
    assert "<!" not in out and "<@" not in out and "<#" not in out
    assert "&lt;!channel&gt;" in out and "&lt;@U024BE7LH&gt;" in out
    assert "&amp;amp;" not in out and "&amp;" in out  # the entity in the source is one "&"


def test_slack_links_are_sanitised() -> None:
    assert to_slack("[a|b](https://x.test/p?q=<1>|2)") == "<https://x.test/p?q=%3C1%3E%7C2|a|b>"
    assert to_slack("<https://auto.test/x>") == "<https://auto.test/x>"
    assert to_slack("[rel](docs/a.md)") == "rel (docs/a.md)"
    assert to_slack("[mail](mailto:a@b.test)") == "<mailto:a@b.test|mail>"
    assert to_slack("![chart](https://img.test/c.png)") == "<https://img.test/c.png|chart>"


def test_slack_emphasis_marks_touch_the_words() -> None:
    assert to_slack("a ** spaced bold ** b") == "a ** spaced bold ** b"
    assert to_slack("x **bold **y") == "x **bold **y"
    assert to_slack("**bold** and *it*") == "*bold* and _it_"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab <>&@!#|[]()*_~`\n:/.^", max_size=80))
def test_slack_output_has_no_control_sequences_but_our_links(text: str) -> None:
    out = to_slack(text)
    for match in re.finditer("<", out):
        assert out.startswith(("<http://", "<https://", "<mailto:"), match.start()), out
    for match in re.finditer("&", out):
        assert out.startswith(("&amp;", "&lt;", "&gt;"), match.start()), out


def test_escape_slack() -> None:
    assert escape_slack("a & <b> c") == "a &amp; &lt;b&gt; c"
