"""The WebSocket channel runs the adapter conformance kit like every other channel."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from botframework.testing import BotHarness, ChannelHarness, ConformanceSuite, RecordedCase
from channels.websocket.events import MessageFrame, parse_frame, to_turn

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "websocket"
TOKEN = "s3cret-token-value"


class WebSocketHarness(ChannelHarness):
    channel = "websocket"
    limit = None

    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.session: aiohttp.ClientSession | None = None

    def channel_config(self) -> Mapping[str, Any]:
        # The suite names its conversations; identity "none" lets a test choose the user
        # (the identity modes have their own tests, in test_identity.py).
        return {"token": TOKEN, "identity": "none"}

    def conversation_key(self, conversation: str) -> str:
        return conversation

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for ws in self.sockets.values():
            await ws.close()
        for task in self.readers:
            task.cancel()
        if self.session is not None:
            await self.session.close()

    async def _read(self, conversation: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.frames[conversation].append(json.loads(msg.data))

    async def _socket(self, bot: BotHarness, conversation: str) -> aiohttp.ClientWebSocketResponse:
        if conversation not in self.sockets:
            assert self.session is not None
            ws = await self.session.ws_connect(f"{bot.base_url}/t/{bot.tenant}/ws?user={conversation}&token={TOKEN}")
            self.sockets[conversation] = ws
            self.readers.append(asyncio.create_task(self._read(conversation, ws)))
        return self.sockets[conversation]

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        ws = await self._socket(bot, conversation)
        await ws.send_json({"type": "message", "id": event_id, "text": text})

    async def send_forged(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> int | None:
        assert self.session is not None
        async with self.session.ws_connect(f"{bot.base_url}/t/{bot.tenant}/ws?user={conversation}&token=wrong") as ws:
            await ws.send_json({"type": "message", "id": event_id, "text": text})
            async for _msg in ws:
                pass
            return 401 if ws.close_code == 4401 else ws.close_code

    async def replies(self, conversation: str) -> list[str]:
        return [
            f["text"] if f["type"] == "done" else f["message"]
            for f in self.frames[conversation]
            if f["type"] in ("done", "error")
        ]

    def recorded_cases(self) -> Sequence[RecordedCase]:
        def case(name: str, expected: Mapping[str, Any]) -> RecordedCase:
            def parse() -> Any:
                frame = parse_frame((FIXTURES / name).read_text(encoding="utf-8"))
                assert isinstance(frame, MessageFrame)
                return to_turn(tenant="conf", user="ann", frame=frame)

            return RecordedCase(name=name, parse=parse, expected=expected)

        return [
            case(
                "message.json",
                {
                    "text": "hello **there**",
                    "conversation_key": "ann",
                    "reply_target": {"user": "ann", "id": "c1"},
                },
            ),
            case("message_unicode.json", {"text": "你好，机器人 👋", "user_id": "ann"}),
        ]


class TestWebSocketConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self) -> ChannelHarness:
        return WebSocketHarness()

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url


async def test_a_cancel_frame_stops_the_turn_and_the_conversation_goes_on(db_url: str) -> None:
    from botframework.testing import Step, wait_until
    from tests.e2e.support import ChatClient

    async with (
        BotHarness(channel="websocket", channel_config={}, db_url=db_url) as bot,
        aiohttp.ClientSession() as http,
    ):
        bot.model.steps.append(Step(text="a very slow answer", delay_s=30))
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await client.send("c1", "take your time")
        await client.wait_for("accepted", "c1")

        async def model_called() -> bool:
            return bool(bot.model.requests)

        await wait_until(model_called, what="the model call to start")
        await client.ws.send_json({"type": "cancel", "id": "c1"})
        error = await client.wait_for("error", "c1", timeout=5)
        assert error["kind"] == "cancelled"
        await client.send("c2", "are you there?")
        done = await client.wait_for("done", "c2")
        assert done["text"] == "echo: are you there?"
        assert not client.of("done", "c1")
        history = await bot.runtime.transcript(bot.tenant, "websocket", client.user)
        assert [m["text"] for m in history if m["role"] == "user"] == ["take your time", "are you there?"]
        await client.close()


async def test_a_retried_answer_shows_one_status_frame_instead_of_silence(db_url: str) -> None:
    from botframework.errors import ErrorKind
    from botframework.testing import Step
    from tests.e2e.support import ChatClient

    async with (
        BotHarness(channel="websocket", channel_config={}, db_url=db_url) as bot,
        aiohttp.ClientSession() as http,
    ):
        bot.model.steps.extend([Step(error=ErrorKind.OVERLOADED), Step(error=ErrorKind.OVERLOADED)])
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await client.send("c1", "hello")
        done = await client.wait_for("done", "c1", timeout=15)
        assert done["text"] == "echo: hello"
        assert client.of("status", "c1") == [{"type": "status", "reply_to": "c1", "text": "retrying…"}]
        await client.close()
