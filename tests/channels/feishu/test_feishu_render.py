"""Reply Markdown -> Feishu card contents (channels.feishu.render)."""

from __future__ import annotations

import json
import re

from botframework.testing import long_markdown_reply
from channels.feishu.render import EMPTY_REPLY, card_markdown, render_preview, render_reply, to_feishu_markdown


def wire_size(content: str) -> int:
    """Bytes of a reply request body carrying ``content``, serialised the way httpx does."""
    body = {"content": content, "msg_type": "interactive", "reply_in_thread": True, "uuid": "u" * 50}
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def test_a_short_reply_is_one_json_2_card_with_the_markdown() -> None:
    [content] = render_reply("## Result\n\n**Done**: see [the log](https://ci.test/run?id=1&x=2).")
    card = json.loads(content)
    assert card["schema"] == "2.0"
    assert card["body"]["elements"] == [
        {"tag": "markdown", "content": "## Result\n\n**Done**: see [the log](https://ci.test/run?id=1&x=2)."}
    ]


def test_model_text_cannot_mention_or_broadcast() -> None:
    text = card_markdown(render_reply('hi <at id=all></at> and <at user_id="ou_1">x</at> <AT id=all/>')[0])
    assert not re.search(r"<\s*/?\s*at\b", text, re.IGNORECASE)
    assert text.count("&#60;") == 5


def test_code_is_left_alone_and_images_become_links() -> None:
    source = "![chart](https://img.test/c.png)\n\n```html\n<at id=all></at> ![x](y)\n```\n"
    out = to_feishu_markdown(source)
    assert out.startswith("[chart](https://img.test/c.png)")
    assert "```html\n<at id=all></at> ![x](y)\n```" in out


def test_empty_reply_still_sends_something() -> None:
    assert [card_markdown(c) for c in render_reply("  \n ")] == [EMPTY_REPLY]


def test_long_replies_fit_the_card_limit_on_the_wire_even_in_cjk() -> None:
    for text in (long_markdown_reply(120_000), "这是一个很长的回答。\n" * 12_000, '"quoted"\n' * 20_000):
        contents = render_reply(text)
        assert len(contents) >= 2
        for content in contents:
            assert wire_size(content) <= 30 * 1024
            assert len(re.findall(r"^```", card_markdown(content), re.MULTILINE)) % 2 == 0
        joined = "".join(card_markdown(c) for c in contents)
        assert re.sub(r"\s+", "", joined).count(re.sub(r"\s+", "", text.splitlines()[0])) >= 1


def test_every_card_is_shared_so_it_can_be_patched() -> None:
    for content in [*render_reply(long_markdown_reply(40_000)), render_preview("so far")]:
        assert json.loads(content)["config"] == {"update_multi": True}


def test_preview_is_the_first_card_marked_unfinished() -> None:
    assert card_markdown(render_preview("**Hel")) == "**Hel …"
    assert card_markdown(render_preview("")) == "…"
    assert card_markdown(render_preview("<at id=all></at> hi")) == "&#60;at id=all>&#60;/at> hi …"


def test_preview_of_a_long_reply_is_its_first_card_rendered_from_the_head_only() -> None:
    text = long_markdown_reply(200_000)
    preview = render_preview(text)
    assert preview == render_reply(text)[0]  # the final first chunk: no marker, and it fits
    assert wire_size(preview) <= 30 * 1024
