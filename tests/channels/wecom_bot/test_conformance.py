"""The WeCom AI bot channel runs the adapter conformance kit against the fake long-connection server."""

from __future__ import annotations

import pytest

from botframework.testing import ChannelHarness, ConformanceSuite
from tests.channels.wecom_bot.harness import WeComBotHarness


class TestWeComBotConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self) -> ChannelHarness:
        return WeComBotHarness()

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url
