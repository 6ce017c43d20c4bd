"""The one table of channel limits and chunking by it."""

from __future__ import annotations

import pytest

from botframework.render import LIMITS, chunk_for, limit_for, render_chunks_for, to_discord, to_slack


def test_table_holds_every_channel() -> None:
    assert {k: (v.size, v.unit) for k, v in LIMITS.items()} == {
        "slack": (3900, "chars"),
        "discord": (2000, "chars"),
        "wecom": (2048, "bytes"),
        "wechat": (2048, "bytes"),
        "feishu": (153600, "bytes"),
        "feishu_card": (30720, "bytes"),
        "websocket": (None, "chars"),
    }
    with pytest.raises(KeyError, match="'teams'"):
        limit_for("teams")


def test_chunk_for_uses_the_channel_unit() -> None:
    text = "你好世界。" * 1000  # 5000 chars, 15000 bytes
    assert all(len(c.encode()) <= 2048 for c in chunk_for("wecom", text))
    assert len(chunk_for("wecom", text)) == 8
    assert len(chunk_for("discord", text)) == 3
    assert chunk_for("websocket", text) == [text]
    assert chunk_for("websocket", "  ") == []


def test_render_chunks_for_discord_and_slack() -> None:
    answer = "\n\n".join(f"Paragraph {i} with **bold** & <tags>." for i in range(400))
    discord = render_chunks_for("discord", answer, to_discord)
    slack = render_chunks_for("slack", answer, to_slack)
    assert all(len(c) <= 2000 for c in discord) and len(discord) > 1
    assert all(len(c) <= 3900 for c in slack) and len(slack) > 1
    assert all("&lt;tags&gt;" in c and "*bold*" in c for c in slack)
