"""The Telegram channel runs botframework's adapter conformance kit, against the fake Bot API.

The bot is the real runtime and HTTP app with the channel loaded from its entry point; updates
arrive as webhook POSTs carrying the secret token, either in private chats (one conversation per
chat) or as mentions in supergroups (one conversation per group). Replies are what the fake
received through ``sendMessage``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
import pytest
from botframework.plugins import CHANNELS
from botframework.testing import BotHarness, ChannelHarness, ConformanceSuite, RecordedCase
from botframework.turn import Turn
from tg_fake_api import BOT_TOKEN, FakeTelegram, group_update, private_update

from bf_telegram import TelegramAdapter
from bf_telegram.events import BotIdentity, parse_update

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SECRET = "conformance-secret_token"
Kind = Literal["private", "group"]


class TelegramHarness(ChannelHarness):
    channel: ClassVar[str] = "telegram"
    limit = (4096, "chars")

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.fake = FakeTelegram()
        self.session: aiohttp.ClientSession | None = None
        self._update_ids: dict[str, int] = {}

    def _chat_id(self, conversation: str) -> int:
        number = 10_000 + zlib.crc32(conversation.encode()) % 1_000_000
        return number if self.kind == "private" else -1_001_000_000_000 - number

    def conversation_key(self, conversation: str) -> str:
        return str(self._chat_id(conversation))

    def channel_config(self) -> Mapping[str, Any]:
        return {"bot_token": BOT_TOKEN, "secret_token": SECRET, "api_base_url": self.fake.base_url}

    async def start(self) -> None:
        await self.fake.__aenter__()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.fake.__aexit__(None, None, None)

    def _update(self, *, conversation: str, text: str, event_id: str) -> dict[str, Any]:
        """The same update_id every time an event is (re)delivered, as Telegram does."""
        update_id = self._update_ids.setdefault(event_id, 900_000 + len(self._update_ids))
        chat_id = self._chat_id(conversation)
        if self.kind == "private":
            return private_update(update_id, chat_id=chat_id, text=text)
        return group_update(update_id, chat_id=chat_id, text=text)

    async def _post(self, bot: BotHarness, update: dict[str, Any], secret: str) -> int:
        assert self.session is not None
        async with self.session.post(
            f"{bot.base_url}/t/{bot.tenant}/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        ) as response:
            await response.read()
            return response.status

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        status = await self._post(bot, self._update(conversation=conversation, text=text, event_id=event_id), SECRET)
        assert status == 200, f"update {event_id} answered {status}"

    async def send_forged(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> int | None:
        return await self._post(bot, self._update(conversation=conversation, text=text, event_id=event_id), "guess")

    async def replies(self, conversation: str) -> list[str]:
        chat_id = self._chat_id(conversation)
        return [str(p["text"]) for p in self.fake.sent if p["chat_id"] == chat_id]

    def recorded_cases(self) -> Sequence[RecordedCase]:
        expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
        bot = BotIdentity(id=expected["bot_id"], username=expected["bot_username"])

        def case(name: str, turn: Mapping[str, Any] | None) -> RecordedCase:
            def parse() -> Turn | None:
                update = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
                return parse_update(update, tenant=expected["tenant"], bot=bot)

            want = None if turn is None else {**turn, "tenant": expected["tenant"], "channel": "telegram"}
            return RecordedCase(name=name, parse=parse, expected=want)

        return [case(name, spec["turn"]) for name, spec in sorted(expected["cases"].items())]


class TestTelegramConformance(ConformanceSuite):
    @pytest.fixture(params=["private", "group"])
    def harness(self, request: pytest.FixtureRequest) -> ChannelHarness:
        return TelegramHarness(request.param)

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url


def test_the_channel_is_loaded_from_its_entry_point() -> None:
    assert "telegram" in CHANNELS.names()
    assert CHANNELS.load("telegram") is TelegramAdapter
    [source] = CHANNELS.sources("telegram")
    assert source.value == "bf_telegram:TelegramAdapter"
    assert source.distribution.startswith("botframework-telegram ")


def test_the_harness_limit_is_the_adapters() -> None:
    assert TelegramHarness.limit == (TelegramAdapter.message_limit.size, TelegramAdapter.message_limit.unit)
