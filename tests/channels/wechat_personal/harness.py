"""Conformance harness for personal WeChat: messages arrive through the fake iLink long poll.

Each conversation is one WeChat user (``<conversation>@im.wechat``); a redelivery is iLink replaying
the same ``message_id``. Replies are the texts the fake's ``sendmessage`` accepted for that user.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from botframework.testing import BotHarness, ChannelHarness, RecordedCase, wait_until
from botframework.turn import Turn
from channels.wechat_personal.events import parse_message
from tests.fakes.ilink_api import FakeILink

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wechat_personal"


def session_of(fake: FakeILink) -> dict[str, Any]:
    return {"bot_token": fake.token, "bot_id": fake.bot_id, "base_url": fake.base_url, "user_id": "", "logged_in_at": 0}


def recorded_cases() -> Sequence[RecordedCase]:
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    tenant = expected["tenant"]

    def case(name: str, spec: Mapping[str, Any] | None) -> RecordedCase:
        def run() -> Turn | None:
            return parse_message(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")), tenant=tenant)

        want = None
        if spec is not None:
            want = {k: v for k, v in spec.items() if k not in ("received_at_ms", "images")}
            want.update(tenant=tenant, channel="wechat_personal")
            want["received_at"] = datetime.fromtimestamp(spec["received_at_ms"] / 1000, UTC)
        return RecordedCase(name=name, parse=run, expected=want)

    return [case(name, spec) for name, spec in sorted(expected["cases"].items())]


class WeChatPersonalHarness(ChannelHarness):
    channel: ClassVar[str] = "wechat_personal"
    limit: ClassVar[tuple[int, Literal["chars", "bytes"]] | None] = (4000, "chars")

    def __init__(self) -> None:
        self.fake = FakeILink(hold_s=0.5)
        self._ids: dict[str, int] = {}

    def channel_config(self) -> Mapping[str, Any]:
        return {
            "api_base_url": self.fake.base_url,
            "cdn_base_url": self.fake.cdn_base_url,
            "session_check_s": 0.1,
            "typing": False,
        }

    async def start(self) -> None:
        await self.fake.__aenter__()

    async def stop(self) -> None:
        await self.fake.__aexit__(None, None, None)

    async def connect(self, bot: BotHarness) -> None:
        await bot.runtime.channel_state(bot.tenant, self.channel).set("session", session_of(self.fake))

        async def polling() -> bool:
            return bool(self.fake.calls_to("getupdates"))

        await wait_until(polling, what="the first getupdates")

    def conversation_key(self, conversation: str) -> str:
        return f"{conversation}@im.wechat"

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        if event_id in self._ids:
            await self.fake.replay(self._ids[event_id])
            return
        message = await self.fake.push(text, user=self.conversation_key(conversation))
        self._ids[event_id] = message["message_id"]

    async def replies(self, conversation: str) -> list[str]:
        return self.fake.texts_to(self.conversation_key(conversation))

    def recorded_cases(self) -> Sequence[RecordedCase]:
        return recorded_cases()


def now_ms() -> int:
    return int(time.time() * 1000)
