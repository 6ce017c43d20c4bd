"""Conformance harness for the WeCom AI bot: callbacks arrive over the fake long connection.

Each conversation is one user in a single chat (``user:<conversation>``); a redelivery is the same
``msgid`` pushed again. A reply is the content of the finishing stream frame on the callback's
req_id, followed by any ``aibot_send_msg`` messages to that user.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from botframework.testing import BotHarness, ChannelHarness, RecordedCase
from botframework.turn import Turn
from channels.wecom_bot.events import parse_message
from tests.fakes.wecom_bot_ws import FakeWeComBotServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wecom_bot"
RECEIVED_MS = 1764921600000


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def recorded_cases() -> Sequence[RecordedCase]:
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    tenant = expected["tenant"]

    def case(name: str, spec: Mapping[str, Any] | None) -> RecordedCase:
        def run() -> Turn | None:
            return parse_message(fixture(name), tenant=tenant, req_id="req-fixture", received_ms=RECEIVED_MS)

        want = None
        if spec is not None:
            want = {k: v for k, v in spec.items() if k not in ("images", "chat_type")}
            want.update(tenant=tenant, channel="wecom_bot")
            want["received_at"] = datetime.fromtimestamp(spec["received_at"], UTC)
        return RecordedCase(name=name, parse=run, expected=want)

    return [case(name, spec) for name, spec in sorted(expected["cases"].items())]


def text_body(*, msgid: str, user: str, text: str, group: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "msgid": msgid,
        "aibotid": "aib8Xx9Q2mT4",
        "chattype": "group" if group else "single",
        "from": {"userid": user},
        "msgtype": "text",
        "text": {"content": f"@bot {text}" if group else text},
    }
    if group:
        body["chatid"] = group
    return body


class WeComBotHarness(ChannelHarness):
    channel: ClassVar[str] = "wecom_bot"
    limit: ClassVar[tuple[int, Literal["chars", "bytes"]] | None] = None
    """20,480 bytes per message: the kit's long reply fits one message, and must arrive whole."""

    def __init__(self) -> None:
        self.fake = FakeWeComBotServer()
        self.req_ids: dict[str, list[str]] = {}

    def channel_config(self) -> Mapping[str, Any]:
        return {
            "bot_id": self.fake.bot_id,
            "secret": self.fake.secret,
            "ws_url": self.fake.url,
            "stream_interval_s": 0.1,
            "ack_timeout_s": 2,
        }

    async def start(self) -> None:
        await self.fake.__aenter__()

    async def stop(self) -> None:
        await self.fake.__aexit__(None, None, None)

    async def connect(self, bot: BotHarness) -> None:
        await self.fake.subscribed()

    def conversation_key(self, conversation: str) -> str:
        return f"user:{conversation}"

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        req_id = await self.fake.message(text_body(msgid=f"msg-{event_id}", user=conversation, text=text))
        self.req_ids.setdefault(conversation, []).append(req_id)

    async def replies(self, conversation: str) -> list[str]:
        mine = set(self.req_ids.get(conversation, []))
        out: list[str] = []
        for frame in self.fake.frames:
            if frame.cmd == "aibot_respond_msg" and frame.req_id in mine and frame.body["stream"].get("finish"):
                out.append(frame.body["stream"]["content"])
            elif frame.cmd == "aibot_send_msg" and frame.body.get("chatid") == conversation:
                out.append(frame.body["markdown"]["content"])
        return out

    def recorded_cases(self) -> Sequence[RecordedCase]:
        return recorded_cases()
