"""Conformance harness for the Tencent callback channels (WeCom here, WeChat subclasses it).

Messages arrive as the vendor sends them: XML POSTed to the bot's real callback route, encrypted and
signed (WeCom, WeChat safe mode) or signed in plaintext mode. Each conversation is one user; a
redelivery carries the same MsgId. Replies are what the fake API accepted for that user.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp

from botframework.channel import ChannelAdapter
from botframework.plugins import CHANNELS
from botframework.testing import BotHarness, ChannelHarness, RecordedCase
from botframework.turn import Turn
from channels.wecom.events import parse_xml
from tests.fakes.wecom_api import FakeTencentApi

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
AES_KEY = base64.b64encode(bytes(range(1, 33))).decode()[:-1]
"""A valid 43-character EncodingAESKey."""


def channel_limit(channel: str) -> tuple[int, Literal["chars", "bytes"]]:
    adapter: type[ChannelAdapter[Any]] = CHANNELS.load(channel)
    limit = adapter.message_limit
    assert limit.size is not None, f"{channel} has no message limit"
    return limit.size, limit.unit


def recorded_cases(channel: str, parse: Any) -> Sequence[RecordedCase]:
    """The fixtures of ``channel`` with their expected Turns (``received_at`` as a Unix time)."""
    expected = json.loads((FIXTURES / channel / "expected.json").read_text(encoding="utf-8"))
    tenant = expected["tenant"]

    def case(name: str, spec: Mapping[str, Any] | None) -> RecordedCase:
        def run() -> Turn | None:
            fields = parse_xml((FIXTURES / channel / f"{name}.xml").read_bytes())
            turn: Turn | None = parse(fields, tenant=tenant)
            return turn

        want = None
        if spec is not None:
            want = {**spec, "tenant": tenant, "channel": channel}
            want["received_at"] = datetime.fromtimestamp(spec["received_at"], UTC)
        return RecordedCase(name=name, parse=run, expected=want)

    return [case(name, spec) for name, spec in sorted(expected["cases"].items())]


class CallbackHarness(ChannelHarness):
    """Shared by the WeCom and WeChat harnesses; subclasses build and sign the requests."""

    channel: ClassVar[str]
    reply_field: ClassVar[str]
    """Where the fake's recorded send body holds the text: ``markdown`` or ``text``."""

    def __init__(self) -> None:
        self.fake = self.make_fake()
        self.session: aiohttp.ClientSession | None = None
        self._msg_ids: dict[str, int] = {}
        self._times: dict[str, int] = {}
        self._clock = itertools.count(int(time.time()))  # fresh timestamps: the replay window holds

    @abstractmethod
    def make_fake(self) -> FakeTencentApi: ...

    @abstractmethod
    def signed(self, plaintext: str, *, timestamp: str, nonce: str, forged: bool) -> tuple[dict[str, str], bytes]:
        """Query and body of a POST carrying ``plaintext`` (``forged``: with a wrong token)."""

    @abstractmethod
    def message(self, *, user: str, text: str, msg_id: int, create_time: int) -> str: ...

    def conversation_key(self, conversation: str) -> str:
        return f"user-{conversation}"

    async def start(self) -> None:
        await self.fake.__aenter__()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.fake.__aexit__(None, None, None)

    def _plaintext(self, *, conversation: str, text: str, event_id: str) -> str:
        msg_id = self._msg_ids.setdefault(event_id, 24795603187450000 + len(self._msg_ids))
        created = self._times.setdefault(event_id, next(self._clock))
        return self.message(user=self.conversation_key(conversation), text=text, msg_id=msg_id, create_time=created)

    async def post(self, bot: BotHarness, query: Mapping[str, str], body: bytes) -> int:
        assert self.session is not None
        async with self.session.post(
            f"{bot.base_url}/t/{bot.tenant}/{self.channel}/callback", params=dict(query), data=body
        ) as response:
            await response.read()
            return response.status

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        plaintext = self._plaintext(conversation=conversation, text=text, event_id=event_id)
        query, body = self.signed(plaintext, timestamp=str(next(self._clock)), nonce="1372623149", forged=False)
        status = await self.post(bot, query, body)
        assert status == 200, f"{self.channel} message {event_id} answered {status}"

    async def send_forged(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> int | None:
        plaintext = self._plaintext(conversation=conversation, text=text, event_id=event_id)
        query, body = self.signed(plaintext, timestamp=str(next(self._clock)), nonce="1372623149", forged=True)
        return await self.post(bot, query, body)

    async def replies(self, conversation: str) -> list[str]:
        user = self.conversation_key(conversation)
        return [str(b[self.reply_field]["content"]) for b in self.fake.sent if b.get("touser") == user]

    def check_parse(self, plaintext: str) -> dict[str, str]:
        return parse_xml(plaintext)
