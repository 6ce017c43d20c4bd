"""WeChat ``reply_mode: passive`` with WeChat's tries played by the test: each try is a POST of the same
MsgId that the test gives up after 5 s, as WeChat does, three in all; WeChat stops at the first
response. The answer must come back exactly once, inside a response, and never through the
customer-service API.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from botframework.states import DeliveryStatus
from botframework.testing import BotHarness, Step
from channels.wechat.crypto import MsgCrypt, plain_signature
from channels.wecom.events import parse_xml
from storage.tables import DELIVERIES
from tests.channels.wecom.harness import AES_KEY
from tests.fakes.wechat_api import FakeWeChat
from tests.fakes.wecom_api import encrypted_callback, text_message

APP_ID = "wx5823bf96d3bd56c7"
ACCOUNT = "gh_3a9f2c81d4e7"
TOKEN = "QDG6eK"
USER = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
TRY_S = 5.0
"""WeChat waits this long for each try."""


class WeChat:
    """Plays WeChat's side: signs (and in safe mode encrypts) a message, posts its tries, reads replies."""

    def __init__(self, bot: BotHarness, *, safe: bool) -> None:
        self.bot = bot
        self.safe = safe
        self.crypt = MsgCrypt(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=APP_ID)
        self._ids = itertools.count(24795603187450000)
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    def request(self, text: str, msg_id: int) -> tuple[dict[str, str], bytes]:
        xml = text_message(to_user=ACCOUNT, from_user=USER, text=text, msg_id=msg_id, create_time=int(time.time()))
        timestamp, nonce = str(int(time.time())), str(msg_id % 10**10)  # a nonce per message, as WeChat sends
        query = {"signature": plain_signature(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        if not self.safe:
            return query, xml.encode()
        signed, body = encrypted_callback(self.crypt, xml, to_user=ACCOUNT, timestamp=timestamp, nonce=nonce)
        return {**query, **signed, "encrypt_type": "aes"}, body

    async def send(self, text: str, *, tries: int = 3) -> list[str | None]:
        """One user message: its tries until a response (None: the try timed out)."""
        query, body = self.request(text, next(self._ids))
        url = f"{self.bot.base_url}/t/{self.bot.tenant}/wechat/callback"
        seen: list[str | None] = []
        for _ in range(tries):
            try:
                async with self.session.post(
                    url, params=query, data=body, timeout=aiohttp.ClientTimeout(total=TRY_S)
                ) as response:
                    assert response.status == 200
                    seen.append(await response.text())
                    return seen
            except TimeoutError:
                seen.append(None)
        return seen

    def content(self, response: str) -> str:
        """The text of a passive reply (decrypted and signature-checked in safe mode)."""
        fields = parse_xml(response)
        if self.safe:
            assert set(fields) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
            fields = parse_xml(
                self.crypt.open(
                    signature=fields["MsgSignature"],
                    timestamp=fields["TimeStamp"],
                    nonce=fields["Nonce"],
                    encrypted=fields["Encrypt"],
                )
            )
        assert (fields["ToUserName"], fields["FromUserName"], fields["MsgType"]) == (USER, ACCOUNT, "text")
        return fields["Content"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as api:
        yield api  # type: ignore[misc]


def config(fake: FakeWeChat, *, safe: bool, **extra: Any) -> Mapping[str, Any]:
    options: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": "wechat-app-secret",
        "token": TOKEN,
        "api_base_url": fake.base_url,
        "reply_mode": "passive",
        **extra,
    }
    if safe:
        options["encoding_aes_key"] = AES_KEY
    return options


@pytest.fixture(params=[False, True], ids=["plaintext", "safe"])
async def wechat(request: pytest.FixtureRequest, fake: FakeWeChat, db_url: str) -> AsyncIterator[WeChat]:
    safe: bool = request.param
    async with BotHarness(channel="wechat", channel_config=config(fake, safe=safe), db_url=db_url) as bot:
        client = WeChat(bot, safe=safe)
        try:
            yield client
        finally:
            await client.close()


async def deliveries(bot: BotHarness) -> list[tuple[str, int]]:
    async with bot.runtime.db.read() as conn:
        rows = (await conn.execute(select(DELIVERIES.c.status, DELIVERIES.c.attempts).order_by(DELIVERIES.c.id))).all()
    return [(str(r.status), int(r.attempts)) for r in rows]


async def test_a_1s_answer_comes_back_on_the_first_try(wechat: WeChat, fake: FakeWeChat) -> None:
    wechat.bot.model.steps.append(Step(text="answered in a second", delay_s=1.0))
    [response] = await wechat.send("quick question")
    assert response is not None and wechat.content(response) == "answered in a second"
    assert await deliveries(wechat.bot) == [(DeliveryStatus.SENT, 1)]
    assert fake.calls == []  # no token, no customer-service message


@pytest.mark.slow
async def test_a_7s_answer_comes_back_exactly_once_across_the_tries(wechat: WeChat, fake: FakeWeChat) -> None:
    wechat.bot.model.steps.append(Step(text="answered after seven seconds", delay_s=7.0))
    responses = await wechat.send("slower question")
    assert responses[0] is None  # the first try timed out
    answers = [wechat.content(r) for r in responses if r is not None and r != "success"]
    assert answers == ["answered after seven seconds"]
    assert len(responses) == 2
    assert await deliveries(wechat.bot) == [(DeliveryStatus.SENT, 1)]
    assert len(wechat.bot.model.requests) == 1  # the retries joined the same turn
    assert fake.calls == []


@pytest.mark.slow
async def test_a_20s_answer_comes_with_the_users_next_message(wechat: WeChat, fake: FakeWeChat) -> None:
    bot = wechat.bot
    bot.model.steps += [Step(text="the slow answer", delay_s=20.0), Step(text="the quick answer")]
    responses = await wechat.send("a hard question")
    assert responses[:2] == [None, None] and responses[2:] == ["success"]  # the last try ends the tries

    async def held() -> bool:
        return bool(await bot.runtime.held_replies(bot.tenant, "wechat", USER))

    deadline = time.monotonic() + 15
    while not await held():
        assert time.monotonic() < deadline, "the slow answer was never recorded"
        await asyncio.sleep(0.2)
    assert await deliveries(bot) == [(DeliveryStatus.PENDING, 0)]  # kept, not sent by API

    [response] = await wechat.send("hello again")
    assert response is not None
    assert wechat.content(response) == "the slow answer\n\nthe quick answer"
    assert await deliveries(bot) == [(DeliveryStatus.SENT, 1), (DeliveryStatus.SENT, 1)]
    assert fake.calls == []


async def test_a_long_answer_goes_out_in_parts_one_per_message(fake: FakeWeChat, db_url: str) -> None:
    paragraph = "这是一个很长的回答。" * 60  # 1,800 bytes
    long_answer = "\n\n".join(f"{n}. {paragraph}" for n in range(1, 4))
    options = config(fake, safe=False, continue_hint="（回复任意内容查看后续）")
    async with BotHarness(channel="wechat", channel_config=options, db_url=db_url) as bot:
        wechat = WeChat(bot, safe=False)
        try:
            bot.model.steps += [Step(text=long_answer), Step(text="second"), Step(text="third")]
            texts = []
            for message in ("tell me everything", "more", "more"):
                [response] = await wechat.send(message)
                assert response is not None
                texts.append(wechat.content(response))
        finally:
            await wechat.close()
    for text in texts:
        assert len(text.encode()) <= 2048
    assert texts[0].startswith("1. ") and texts[0].endswith("（回复任意内容查看后续）")
    assert texts[1].startswith("2. ") and texts[1].endswith("（回复任意内容查看后续）")
    # The third message's response has room for the rest and for the two short answers kept meanwhile.
    assert texts[2].startswith("3. ") and texts[2].endswith(f"{paragraph}\n\nsecond\n\nthird")
    assert "".join(texts).count(paragraph) == 3
    assert fake.calls == []


async def test_api_mode_still_answers_through_the_customer_service_api(fake: FakeWeChat, db_url: str) -> None:
    options = {**config(fake, safe=False), "reply_mode": "api"}
    async with BotHarness(channel="wechat", channel_config=options, db_url=db_url) as bot:
        wechat = WeChat(bot, safe=False)
        try:
            bot.model.steps.append(Step(text="by API"))
            assert await wechat.send("question") == ["success"]
            deadline = time.monotonic() + 10
            while not fake.sent:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await wechat.close()
    assert [b["text"]["content"] for b in fake.sent] == ["by API"]
