"""Message limits and chunking by them: characters or UTF-8 bytes, unlimited, rendered chunks fit."""

from __future__ import annotations

import pytest

from botframework.render import UNLIMITED, ChannelLimit, chunk_text, render_chunks, to_plain
from channels.discord import DiscordAdapter
from channels.feishu import FeishuAdapter
from channels.slack import SlackAdapter
from channels.slack.render import to_slack
from channels.websocket import WebSocketAdapter
from channels.wechat import WeChatAdapter
from channels.wecom import WeComAdapter


def test_each_shipped_channel_declares_its_vendor_limit() -> None:
    declared = {
        a.name: (a.message_limit.size, a.message_limit.unit)
        for a in (SlackAdapter, DiscordAdapter, WeComAdapter, WeChatAdapter, FeishuAdapter, WebSocketAdapter)
    }
    assert declared == {
        "slack": (3900, "chars"),
        "discord": (2000, "chars"),
        "wecom": (2048, "bytes"),
        "wechat": (2048, "bytes"),
        "feishu": (30720, "bytes"),
        "websocket": (None, "chars"),
    }


def test_a_limit_too_small_for_any_reply_is_refused() -> None:
    with pytest.raises(ValueError, match="a message limit of 4 bytes cannot hold a reply"):
        ChannelLimit(4, "bytes")


def test_chunk_text_uses_the_unit() -> None:
    text = "你好世界。" * 1000  # 5000 chars, 15000 bytes
    by_bytes = chunk_text(text, ChannelLimit(2048, "bytes"))
    assert all(len(c.encode()) <= 2048 for c in by_bytes) and len(by_bytes) == 8
    assert len(chunk_text(text, ChannelLimit(2000, "chars"))) == 3
    assert chunk_text(text, UNLIMITED) == [text]
    assert chunk_text("  ", UNLIMITED) == []


def test_rendered_chunks_fit_after_rendering() -> None:
    answer = "\n\n".join(f"Paragraph {i} with **bold** & <tags>." for i in range(400))
    slack = render_chunks(answer, to_slack, ChannelLimit(3900))
    plain = render_chunks(answer, to_plain, ChannelLimit(2000))
    assert all(len(c) <= 3900 for c in slack) and len(slack) > 1
    assert all("&lt;tags&gt;" in c and "*bold*" in c for c in slack)
    assert all(len(c) <= 2000 for c in plain) and len(plain) > 1
    assert render_chunks(answer, to_plain, UNLIMITED) == [to_plain(answer)]
