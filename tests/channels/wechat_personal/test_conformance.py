"""The personal WeChat channel runs the adapter conformance kit against the fake iLink server, on both backends."""

from __future__ import annotations

import pytest

from botframework.testing import ChannelHarness, ConformanceSuite
from tests.channels.wechat_personal.harness import WeChatPersonalHarness


class TestWeChatPersonalConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self) -> ChannelHarness:
        return WeChatPersonalHarness()

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url
