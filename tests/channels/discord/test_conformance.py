"""The Discord channel runs the adapter conformance kit, against the fake Discord REST API and gateway.

The real discord.py client connects to the fake gateway; user messages arrive as ``MESSAGE_CREATE``
dispatches, both as DMs (conversation ``dm:{channel}``) and as guild messages that mention the bot
(conversation = the channel). Replies are the ``POST /channels/{id}/messages`` the fake received.
Discord has no inbound signature (the gateway is authenticated by the bot's own token), so the
kit's forged-request test is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from botframework.channel import ChannelAdapter
from botframework.messages import ImagePart
from botframework.testing import BotHarness, ChannelHarness, ConformanceSuite, RecordedCase, wait_until
from botframework.turn import Turn
from channels.discord import DiscordAdapter
from channels.discord.events import DiscordMessage, parse_message
from tests.fakes.discord_api import BOT_USER, BOT_USER_ID, FakeDiscord

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "discord"
TOKEN = "MTEwMDAwMDAwMDAwMDAwMDA0Mg.fake.token-for-tests"
GUILD = "1100000000000000100"
USER: dict[str, Any] = {
    "id": "1000000000000000001",
    "username": "alice",
    "discriminator": "0",
    "global_name": "Alice",
    "avatar": None,
    "public_flags": 0,
}
Kind = Literal["dm", "mention"]


def _limit(adapter: type[ChannelAdapter[Any]]) -> tuple[int, Literal["chars", "bytes"]]:
    limit = adapter.message_limit
    assert limit.size is not None, f"{adapter.name} has no message limit"
    return limit.size, limit.unit


class DiscordHarness(ChannelHarness):
    """Discord through its gateway; ``kind`` picks DMs or guild messages that mention the bot."""

    channel: ClassVar[str] = "discord"
    limit = _limit(DiscordAdapter)

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.fake = FakeDiscord()
        self._channels: dict[str, str] = {}
        self._messages: dict[str, str] = {}

    # where a conversation lives

    def _channel_id(self, conversation: str) -> str:
        return self._channels.setdefault(conversation, str(1200000000000000500 + len(self._channels)))

    def _message_id(self, event_id: str) -> str:
        """One snowflake per event id: a redelivered event is the very same Discord message."""
        return self._messages.setdefault(event_id, str(1300000000000000500 + len(self._messages)))

    def conversation_key(self, conversation: str) -> str:
        channel = self._channel_id(conversation)
        return f"dm:{channel}" if self.kind == "dm" else channel

    # lifecycle

    def channel_config(self) -> Mapping[str, Any]:
        return {"bot_token": TOKEN, "api_base_url": self.fake.api_base}

    async def start(self) -> None:
        await self.fake.__aenter__()

    async def stop(self) -> None:
        await self.fake.__aexit__(None, None, None)

    async def connect(self, bot: BotHarness) -> None:
        """Wait until discord.py has parsed the session's READY (it then knows who the bot is).

        Not ``client.is_ready()``: discord.py holds that back ``guild_ready_timeout`` (2 s) for
        GUILD_CREATEs, while it handles MESSAGE_CREATE as soon as READY is parsed.
        """
        client = bot.adapter.client
        await self.fake.current()

        async def ready() -> bool:
            return client.user is not None

        await wait_until(ready, timeout=10, what="the discord gateway session to be READY")
        assert str(client.user.id) == BOT_USER_ID and len(self.fake.identifies) == 1

    # inbound

    def payload(self, *, conversation: str, text: str, event_id: str) -> dict[str, Any]:
        """A ``MESSAGE_CREATE`` ``d`` object as Discord sends it."""
        message_id = self._message_id(event_id)
        data: dict[str, Any] = {
            "type": 0,
            "tts": False,
            "timestamp": "2026-11-12T10:00:00.000000+00:00",
            "pinned": False,
            "nonce": message_id,
            "mention_roles": [],
            "mention_everyone": False,
            "id": message_id,
            "flags": 0,
            "embeds": [],
            "edited_timestamp": None,
            "components": [],
            "channel_id": self._channel_id(conversation),
            "author": USER,
            "attachments": [],
        }
        if self.kind == "dm":
            data.update(content=text, mentions=[])
        else:
            data.update(
                content=f"<@{BOT_USER_ID}> {text}",
                mentions=[{**BOT_USER, "member": {"roles": [], "joined_at": "2026-01-01T00:00:00+00:00"}}],
                guild_id=GUILD,
                member={
                    "roles": [],
                    "joined_at": "2026-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "pending": False,
                },
            )
        return data

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        await self.fake.dispatch(
            "MESSAGE_CREATE", self.payload(conversation=conversation, text=text, event_id=event_id)
        )

    # outbound

    async def replies(self, conversation: str) -> list[str]:
        path = f"/channels/{self._channel_id(conversation)}/messages"
        return [str((r.json or {}).get("content", "")) for r in self.fake.sent_messages if r.path == path]

    # recorded payloads

    def recorded_cases(self) -> Sequence[RecordedCase]:
        expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))

        def case(name: str, spec: Mapping[str, Any]) -> RecordedCase:
            def parse() -> Turn | None:
                data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
                return parse_message(
                    DiscordMessage.from_payload(data),
                    tenant=expected["tenant"],
                    bot_user_id=expected["bot_user_id"],
                    allowed_channels=expected["allowed_channels"],
                    parent_id=spec.get("parent_id"),
                )

            want: dict[str, Any] | None = None
            if spec["turn"] is not None:
                want = {**spec["turn"], "tenant": expected["tenant"], "channel": "discord"}
                want["images"] = tuple(ImagePart(url=i["url"], media_type=i["media_type"]) for i in want["images"])
            return RecordedCase(name=name, parse=parse, expected=want)

        return [case(name, spec) for name, spec in sorted(expected["cases"].items())]


class TestDiscordConformance(ConformanceSuite):
    @pytest.fixture(params=["dm", "mention"])
    def harness(self, request: pytest.FixtureRequest) -> ChannelHarness:
        kind: Kind = request.param
        return DiscordHarness(kind)

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url
