"""WeChat's messages: plain text (no Markdown), at most 2,048 UTF-8 bytes each."""

from __future__ import annotations

from botframework.render import ChannelLimit

__all__ = ["LIMIT"]

LIMIT = ChannelLimit(2_048, "bytes")
