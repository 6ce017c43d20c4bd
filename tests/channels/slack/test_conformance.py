"""The Slack channel runs the adapter conformance kit, against the fake Slack Web API.

Events arrive as signed Events API POSTs to the bot's real HTTP route, both as DMs (``message`` in
an ``im``, one conversation per DM channel) and as ``app_mention`` in a channel thread (one
conversation per thread). Replies are what the fake received through ``chat.postMessage``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
import pytest

from botframework.channel import ChannelAdapter
from botframework.testing import BotHarness, ChannelHarness, ConformanceSuite, RecordedCase
from botframework.turn import Turn
from channels.slack import SlackAdapter
from channels.slack.events import parse_event
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack, signed_headers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "slack"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
USER = "U024BE7LH"
Kind = Literal["im", "mention"]


def _limit(adapter: type[ChannelAdapter[Any]]) -> tuple[int, Literal["chars", "bytes"]]:
    limit = adapter.message_limit
    assert limit.size is not None, f"{adapter.name} has no message limit"
    return limit.size, limit.unit


class SlackHarness(ChannelHarness):
    """Slack through its Events API webhook; ``kind`` picks DMs or mentions in a channel thread."""

    channel: ClassVar[str] = "slack"
    limit = _limit(SlackAdapter)

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.fake = FakeSlack()
        self.session: aiohttp.ClientSession | None = None
        self._bodies: dict[str, bytes] = {}
        self._deliveries: dict[str, int] = {}
        self._ts = itertools.count(1)
        self._roots: dict[str, int] = {}

    # where a conversation lives

    def _channel_id(self, conversation: str) -> str:
        prefix = "D" if self.kind == "im" else "C"
        return prefix + conversation.upper().replace("-", "")

    def _thread_root(self, conversation: str) -> str:
        """The ts of the thread's first message: stable per conversation (mentions only)."""
        index = self._roots.setdefault(conversation, len(self._roots) + 1)
        return f"1731400000.{index:06d}"

    def conversation_key(self, conversation: str) -> str:
        channel = self._channel_id(conversation)
        return channel if self.kind == "im" else f"{channel}:{self._thread_root(conversation)}"

    # lifecycle

    def channel_config(self) -> Mapping[str, Any]:
        return {"signing_secret": SECRET, "bot_token": BOT_TOKEN, "api_base_url": self.fake.base_url}

    async def start(self) -> None:
        await self.fake.__aenter__()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.fake.__aexit__(None, None, None)

    # inbound

    def _body(self, *, conversation: str, text: str, event_id: str) -> bytes:
        """The event's envelope, built once per event id: a retry carries the very same bytes."""
        if event_id not in self._bodies:
            ts = f"{1731401000 + next(self._ts)}.000100"
            channel = self._channel_id(conversation)
            event: dict[str, Any] = {
                "user": USER,
                "ts": ts,
                "client_msg_id": f"msg-{event_id}",
                "team": TEAM_ID,
                "channel": channel,
                "event_ts": ts,
            }
            if self.kind == "im":
                event.update(type="message", text=text, channel_type="im")
            else:
                event.update(
                    type="app_mention",
                    text=f"<@{BOT_USER_ID}> {text}",
                    thread_ts=self._thread_root(conversation),
                )
            envelope = {
                "token": "verification-token-unused",
                "team_id": TEAM_ID,
                "api_app_id": "A0APPID123",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{event_id.upper().replace('-', '')}",
                "event_time": int(float(ts)),
                "authorizations": [
                    {
                        "enterprise_id": None,
                        "team_id": TEAM_ID,
                        "user_id": BOT_USER_ID,
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
                "is_ext_shared_channel": False,
                "event_context": f"4-ctx-{event_id}",
            }
            self._bodies[event_id] = json.dumps(envelope).encode()
        return self._bodies[event_id]

    async def _post(self, bot: BotHarness, body: bytes, headers: Mapping[str, str]) -> int:
        assert self.session is not None
        async with self.session.post(
            f"{bot.base_url}/t/{bot.tenant}/slack/events", data=body, headers=dict(headers)
        ) as response:
            await response.read()
            return response.status

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        body = self._body(conversation=conversation, text=text, event_id=event_id)
        attempt = self._deliveries.get(event_id, 0)
        self._deliveries[event_id] = attempt + 1
        headers = signed_headers(SECRET, body, retry_num=attempt or None)
        status = await self._post(bot, body, headers)
        assert status == 200, f"slack event {event_id} (delivery {attempt + 1}) answered {status}"

    async def send_forged(
        self, bot: BotHarness, *, conversation: str, text: str, event_id: str
    ) -> int | None:
        body = self._body(conversation=conversation, text=text, event_id=event_id)
        return await self._post(bot, body, signed_headers("not-the-signing-secret", body))

    # outbound

    async def replies(self, conversation: str) -> list[str]:
        channel = self._channel_id(conversation)
        if self.kind == "im":
            return [str(p.get("text", "")) for p in self.fake.posted if p.get("channel") == channel]
        root = self._thread_root(conversation)
        return [
            str(p.get("text", ""))
            for p in self.fake.posted
            if p.get("channel") == channel and p.get("thread_ts") == root
        ]

    # recorded payloads

    def recorded_cases(self) -> Sequence[RecordedCase]:
        expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
        tenant, bot_user = expected["tenant"], expected["bot_user_id"]

        def case(name: str, spec: Mapping[str, Any]) -> RecordedCase:
            def parse() -> Turn | None:
                body = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
                parsed = parse_event(body, tenant=tenant, bot_user_id=bot_user)
                if parsed is None:
                    return None
                assert parsed.needs_thread_membership is spec["needs_thread_membership"], (
                    f"{name}: needs_thread_membership = {parsed.needs_thread_membership}"
                )
                return parsed.turn

            want = None if spec["turn"] is None else {**spec["turn"], "tenant": tenant, "channel": "slack"}
            return RecordedCase(name=name, parse=parse, expected=want)

        return [case(name, spec) for name, spec in sorted(expected["cases"].items())]


class TestSlackConformance(ConformanceSuite):
    @pytest.fixture(params=["im", "mention"])
    def harness(self, request: pytest.FixtureRequest) -> ChannelHarness:
        kind: Kind = request.param
        return SlackHarness(kind)

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url


def test_retries_carry_the_same_bytes_and_the_retry_header() -> None:
    """The harness itself: a redelivery is the same vendor event, as Slack sends it."""
    harness = SlackHarness("mention")
    first = harness._body(conversation="dup", text="hi", event_id="dup-1")
    again = harness._body(conversation="dup", text="hi", event_id="dup-1")
    other = harness._body(conversation="dup", text="hi", event_id="dup-2")
    assert first == again and first != other
    event = json.loads(first)
    assert event["event_id"] == "EvDUP1"
    assert event["event"]["thread_ts"] == harness._thread_root("dup")
    assert harness.conversation_key("dup") == "CDUP:1731400000.000001"
    assert harness.conversation_key("big") == "CBIG:1731400000.000002"
