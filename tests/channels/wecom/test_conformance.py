"""The WeCom channel runs the adapter conformance kit against the fake WeCom API, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from botframework.render import render_chunks
from botframework.testing import (
    BotHarness,
    ChannelHarness,
    ConformanceSuite,
    RecordedCase,
    Step,
    long_markdown_reply,
    wait_until,
)
from channels.wecom.crypto import MsgCrypt
from channels.wecom.events import parse_message
from channels.wecom.render import LIMIT, to_wecom_markdown
from storage.deliveries import pending_deliveries
from tests.channels.wecom.harness import AES_KEY, CallbackHarness, channel_limit, recorded_cases
from tests.fakes.wecom_api import FakeTencentApi, FakeWeCom, encrypted_callback, text_message

CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = "1000002"
TOKEN = "hJH1f3tzBXFgm"


class WeComHarness(CallbackHarness):
    channel: ClassVar[str] = "wecom"
    reply_field: ClassVar[str] = "markdown"
    limit = channel_limit("wecom")

    def make_fake(self) -> FakeTencentApi:
        return FakeWeCom()

    def channel_config(self) -> Mapping[str, Any]:
        return {
            "corp_id": CORP_ID,
            "agent_id": AGENT_ID,
            "secret": "wecom-app-secret",
            "token": TOKEN,
            "encoding_aes_key": AES_KEY,
            "api_base_url": self.fake.base_url,
        }

    def message(self, *, user: str, text: str, msg_id: int, create_time: int) -> str:
        return text_message(
            to_user=CORP_ID, from_user=user, text=text, msg_id=msg_id, create_time=create_time, agent_id=AGENT_ID
        )

    def signed(self, plaintext: str, *, timestamp: str, nonce: str, forged: bool) -> tuple[dict[str, str], bytes]:
        crypt = MsgCrypt(token="not-the-token" if forged else TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)
        return encrypted_callback(crypt, plaintext, to_user=CORP_ID, timestamp=timestamp, nonce=nonce)

    def recorded_cases(self) -> Sequence[RecordedCase]:
        return recorded_cases("wecom", parse_message)


class TestWeComConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self) -> ChannelHarness:
        return WeComHarness()

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url


@pytest.fixture
async def wecom_bot(db_url: str) -> AsyncIterator[tuple[WeComHarness, BotHarness]]:
    harness = WeComHarness()
    await harness.start()
    try:
        async with BotHarness(channel="wecom", channel_config=harness.channel_config(), db_url=db_url) as bot:
            yield harness, bot
    finally:
        await harness.stop()


async def test_url_verification_through_the_real_server(wecom_bot: tuple[WeComHarness, BotHarness]) -> None:
    harness, bot = wecom_bot
    crypt = MsgCrypt(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)
    echostr = crypt.encrypt(b"6213880741652306742")
    query = {"msg_signature": crypt.signature("1731400000", "42", echostr), "timestamp": "1731400000", "nonce": "42"}
    assert harness.session is not None
    url = f"{bot.base_url}/t/{bot.tenant}/wecom/callback"
    async with harness.session.get(url, params={**query, "echostr": echostr}) as response:
        assert (response.status, await response.text()) == (200, "6213880741652306742")
    async with harness.session.get(url, params={**query, "echostr": crypt.encrypt(b"other")}) as response:
        assert response.status == 401
    async with harness.session.get(f"{bot.base_url}/t/nobody/wecom/callback", params=query) as response:
        assert response.status == 404


async def test_a_failed_chunk_is_retried_by_the_core_without_resending_earlier_chunks(
    wecom_bot: tuple[WeComHarness, BotHarness],
) -> None:
    harness, bot = wecom_bot
    text = long_markdown_reply(9000)
    bot.model.default = lambda _request: Step(text=text)
    harness.fake.fail_send(-1, after=1)  # chunk 2 meets "system busy" once

    await harness.send(bot, conversation="resume", text="write a lot", event_id="resume-1")

    async def all_sent() -> bool:
        async with bot.runtime.db.read() as conn:
            return not await pending_deliveries(conn) and len(await harness.replies("resume")) >= 3

    await wait_until(all_sent, timeout=30, what="the retried delivery to finish")
    attempted = [c.body["markdown"]["content"] for c in harness.fake.send_calls if c.body]
    assert attempted[1] == attempted[2], "the retry resends exactly the chunk that failed"
    assert await harness.replies("resume") == render_chunks(text, to_wecom_markdown, LIMIT)
