"""Personal WeChat messages: plain text (WeChat shows no Markdown), at most 4,000 characters each."""

from __future__ import annotations

from botframework.render import ChannelLimit, to_plain

__all__ = ["LIMIT", "to_plain"]

LIMIT = ChannelLimit(4_000, "chars")
