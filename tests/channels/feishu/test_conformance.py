"""The Feishu channel runs the adapter conformance kit, against the fake Feishu Open API.

Events arrive as encrypted, signed event subscription v2 POSTs to the bot's real route, either in a
p2p chat (one conversation per chat) or as a mention in a group thread (one conversation per thread,
answered in the thread). Replies are the cards the fake received, read back as their markdown.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
import pytest

from botframework.models.base import ModelRequest
from botframework.testing import BotHarness, ChannelHarness, ConformanceSuite, RecordedCase, wait_until
from botframework.testing.scripted_model import Step
from botframework.testing.suite import long_markdown_reply
from botframework.turn import Turn
from channels.feishu.events import parse_event
from channels.feishu.render import CARD_LIMIT, card_markdown
from tests.fakes.feishu_api import BOT_OPEN_ID, FakeFeishu, encrypt, signed_headers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feishu"
ENCRYPT_KEY = "conformance-encrypt-key"
TOKEN = "conformanceVerificationToken0001"
USER = {"union_id": "on_8ed6aa67826108097d9ee143816345", "user_id": "e33ggbyz", "open_id": "ou_84aad35d0"}
Kind = Literal["p2p", "thread"]
_apps = itertools.count(1)
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def _card_limit() -> tuple[int, Literal["chars", "bytes"]]:
    limit = CARD_LIMIT
    assert limit.size is not None
    return limit.size, limit.unit


class FeishuHarness(ChannelHarness):
    """Feishu through its encrypted webhook; ``kind`` picks p2p chats or mentions in a group thread."""

    channel: ClassVar[str] = "feishu"
    limit = _card_limit()

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.fake = FakeFeishu()
        self.app_id = f"cli_conf{next(_apps):04d}{id(self) % 100_000}"
        self.session: aiohttp.ClientSession | None = None
        self._bodies: dict[str, bytes] = {}
        self._ids = itertools.count(1)

    def _chat(self, conversation: str) -> str:
        return "oc_" + re.sub(r"[^a-z0-9]", "", conversation.lower()) + ("p2p" if self.kind == "p2p" else "grp")

    def _root(self, conversation: str) -> str:
        return "om_root" + re.sub(r"[^a-z0-9]", "", conversation.lower())

    def conversation_key(self, conversation: str) -> str:
        chat = self._chat(conversation)
        return chat if self.kind == "p2p" else f"{chat}:{self._root(conversation)}"

    def channel_config(self) -> Mapping[str, Any]:
        return {
            "app_id": self.app_id,
            "app_secret": "conformance-app-secret",
            "encrypt_key": ENCRYPT_KEY,
            "verification_token": TOKEN,
            "domain": self.fake.domain,
        }

    async def start(self) -> None:
        await self.fake.__aenter__()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.fake.__aexit__(None, None, None)

    # inbound

    def _payload(self, *, conversation: str, text: str, event_id: str) -> dict[str, Any]:
        message_id = f"om_{event_id.replace('-', '')}{next(self._ids):04d}"
        chat = self._chat(conversation)
        message: dict[str, Any] = {
            "message_id": message_id,
            "create_time": "1731401000000",
            "update_time": "1731401000000",
            "chat_id": chat,
            "message_type": "text",
            "user_agent": "Mozilla/5.0 Lark/7.30.9",
        }
        if self.kind == "p2p":
            message.update(chat_type="p2p", content=json.dumps({"text": text}))
        else:
            root = self._root(conversation)
            message.update(
                chat_type="group",
                content=json.dumps({"text": f"@_user_1 {text}"}),
                root_id=root,
                parent_id=root,
                thread_id="omt_" + root[3:],
                mentions=[
                    {"key": "@_user_1", "id": {"open_id": BOT_OPEN_ID}, "name": "helper", "tenant_key": "736588c9"}
                ],
            )
        self.fake.chat_of[message_id] = chat
        return {
            "schema": "2.0",
            "header": {
                "event_id": f"ev{event_id.replace('-', '')}",
                "token": TOKEN,
                "create_time": "1731401000123",
                "event_type": "im.message.receive_v1",
                "tenant_key": "736588c9",
                "app_id": self.app_id,
            },
            "event": {
                "sender": {"sender_id": USER, "sender_type": "user", "tenant_key": "736588c9"},
                "message": message,
            },
        }

    def _body(self, *, conversation: str, text: str, event_id: str) -> bytes:
        """Built once per event id: a redelivery carries the very same bytes."""
        if event_id not in self._bodies:
            payload = self._payload(conversation=conversation, text=text, event_id=event_id)
            self._bodies[event_id] = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, json.dumps(payload))}).encode()
        return self._bodies[event_id]

    async def _post(self, bot: BotHarness, body: bytes, headers: Mapping[str, str]) -> int:
        assert self.session is not None
        url = f"{bot.base_url}/t/{bot.tenant}/feishu/events"
        async with self.session.post(url, data=body, headers=dict(headers)) as response:
            await response.read()
            return response.status

    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        body = self._body(conversation=conversation, text=text, event_id=event_id)
        status = await self._post(bot, body, signed_headers(ENCRYPT_KEY, body))
        assert status == 200, f"feishu event {event_id} answered {status}"

    async def send_forged(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> int | None:
        body = self._body(conversation=conversation, text=text, event_id=event_id)
        return await self._post(bot, body, signed_headers("not-the-encrypt-key", body))

    # outbound

    async def replies(self, conversation: str) -> list[str]:
        chat = self._chat(conversation)
        sent = [m for m in self.fake.sent if m["chat_id"] == chat]
        if self.kind == "thread":
            assert all(m["reply_in_thread"] for m in sent), "a thread message was not answered in the thread"
        return [card_markdown(str(m["content"])) for m in sent]

    # recorded payloads

    def recorded_cases(self) -> Sequence[RecordedCase]:
        expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
        tenant, bot = expected["tenant"], expected["bot_open_id"]

        def case(name: str, spec: Mapping[str, Any]) -> RecordedCase:
            def parse() -> Turn | None:
                payload = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
                return parse_event(payload, tenant=tenant, bot_open_id=bot)

            want = None if spec["turn"] is None else {**spec["turn"], "tenant": tenant, "channel": "feishu"}
            return RecordedCase(name=name, parse=parse, expected=want)

        return [case(name, spec) for name, spec in sorted(expected["cases"].items())]


class TestFeishuConformance(ConformanceSuite):
    @pytest.fixture(params=["p2p", "thread"])
    def harness(self, request: pytest.FixtureRequest) -> ChannelHarness:
        kind: Kind = request.param
        return FeishuHarness(kind)

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url

    async def test_a_long_reply_arrives_in_chunks_within_the_limit(
        self, harness: ChannelHarness, bot: BotHarness
    ) -> None:
        """The kit's 6,000-character reply fits one 30 KB card; the same checks on a reply that does not."""
        text = long_markdown_reply(80_000)

        def reply(_request: ModelRequest) -> Step:
            return Step(text=text)

        bot.model.default = reply
        await harness.send(bot, conversation="long", text="write a lot", event_id="long-1")
        limit, unit = _card_limit()

        async def all_arrived() -> bool:
            chunks = await harness.replies("long")
            return len(chunks) >= 2 and "return x * 11" in chunks[-1] and f"f{text.count('```python')}_11" in chunks[-1]

        await wait_until(all_arrived, timeout=20, what="every chunk of the long reply")
        chunks = await harness.replies("long")
        for chunk in chunks:
            assert len(chunk.encode("utf-8")) <= limit, f"a chunk of {len(chunk.encode())} {unit} exceeds {limit}"
            assert len(_FENCE.findall(chunk)) % 2 == 0, f"unbalanced code fence in chunk: {chunk[:80]!r}"
        joined = re.sub(r"\s+", "", "".join(chunks).replace("```python", "").replace("```", ""))
        assert joined == re.sub(r"\s+", "", text.replace("```python", "").replace("```", ""))
