"""Replay-proof webhooks: stale timestamps and reused (timestamp, nonce) pairs, through the real server.

Each case signs its requests correctly, as someone who observed one genuine request (or holds an
old one) would; the server must refuse with 401 and nothing may reach storage or the model.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from botframework.testing import BotHarness, wait_until
from tests.channels.feishu.test_conformance import ENCRYPT_KEY, FeishuHarness
from tests.channels.wechat.test_conformance import ORIGINAL_ID, WeChatHarness
from tests.channels.wecom.test_conformance import CORP_ID, WeComHarness
from tests.e2e.support import metric_value
from tests.fakes.feishu_api import signed_headers
from tests.fakes.wecom_api import text_message

A_2020_TIMESTAMP = "1600000000"


@dataclass
class Case:
    harness: Any
    request: Callable[[str, str, str, str], tuple[dict[str, str], dict[str, str], bytes]]
    """(text, event_id, timestamp, nonce) -> (query, headers, body), correctly signed."""


def _tencent(harness: WeChatHarness | WeComHarness, to_user: str) -> Case:
    def request(text: str, event_id: str, timestamp: str, nonce: str) -> tuple[dict[str, str], dict[str, str], bytes]:
        plaintext = text_message(
            to_user=to_user, from_user="user-ann", text=text, msg_id=int(event_id), create_time=int(time.time())
        )
        query, body = harness.signed(plaintext, timestamp=timestamp, nonce=nonce, forged=False)
        return query, {}, body

    return Case(harness=harness, request=request)


def _feishu() -> Case:
    harness = FeishuHarness("p2p")

    def request(text: str, event_id: str, timestamp: str, nonce: str) -> tuple[dict[str, str], dict[str, str], bytes]:
        body = harness._body(conversation="ann", text=text, event_id=event_id)
        return {}, signed_headers(ENCRYPT_KEY, body, timestamp=timestamp, nonce=nonce), body

    return Case(harness=harness, request=request)


CASES: dict[str, Callable[[], Case]] = {
    "wechat-plaintext": lambda: _tencent(WeChatHarness("plaintext"), ORIGINAL_ID),
    "wechat-aes": lambda: _tencent(WeChatHarness("aes"), ORIGINAL_ID),
    "wecom": lambda: _tencent(WeComHarness(), CORP_ID),
    "feishu": _feishu,
}


@pytest.fixture(params=sorted(CASES))
async def case(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[tuple[Case, BotHarness]]:
    built = CASES[request.param]()
    await built.harness.start()
    try:
        async with BotHarness(
            channel=built.harness.channel, channel_config=built.harness.channel_config(), db_url=db_url
        ) as bot:
            await built.harness.connect(bot)
            yield built, bot
    finally:
        await built.harness.stop()


async def _post(case: Case, bot: BotHarness, query: dict[str, str], headers: dict[str, str], body: bytes) -> int:
    session = case.harness.session
    assert session is not None
    path = "feishu/events" if case.harness.channel == "feishu" else f"{case.harness.channel}/callback"
    async with session.post(f"{bot.base_url}/t/{bot.tenant}/{path}", params=query, headers=headers, data=body) as r:
        await r.read()
        return r.status


async def test_a_correctly_signed_2020_request_is_401_and_reaches_nothing(case: tuple[Case, BotHarness]) -> None:
    built, bot = case
    before = await bot.side_effects()
    query, headers, body = built.request("hello from 2020", "24795603187450001", A_2020_TIMESTAMP, "n-2020")
    assert await _post(built, bot, query, headers, body) == 401
    assert await bot.side_effects() == before
    assert bot.model.requests == []


async def test_a_fresh_signature_reused_with_another_body_is_401_and_reaches_nothing(
    case: tuple[Case, BotHarness],
) -> None:
    built, bot = case
    now, nonce = str(int(time.time())), "n-observed"
    query, headers, body = built.request("the genuine message", "24795603187450002", now, nonce)
    assert await _post(built, bot, query, headers, body) == 200

    async def answered() -> bool:
        return len(bot.model.requests) == 1 and (await bot.side_effects())["deliveries"] == 1

    await wait_until(answered, what="the genuine message to be answered")
    after_genuine = await bot.side_effects()
    # The same bytes again (a vendor retry) are fine: dedupe absorbs them.
    assert await _post(built, bot, query, headers, body) == 200
    # The same signed timestamp and nonce with another body: the forgery plaintext mode allows.
    _, _, forged_body = built.request("send me your money", "24795603187450003", now, nonce)
    if built.harness.channel == "feishu":
        headers = signed_headers(ENCRYPT_KEY, forged_body, timestamp=now, nonce=nonce)
    elif built.harness.channel == "wecom" or getattr(built.harness, "mode", "") == "aes":
        query, _, forged_body = built.request("send me your money", "24795603187450003", now, nonce)
    assert await _post(built, bot, query, headers, forged_body) == 401
    assert await bot.side_effects() == after_genuine
    assert len(bot.model.requests) == 1
    assert "send me your money" not in str(bot.model.requests[0].messages)
    assert metric_value(bot.runtime.metrics.render().decode(), "botframework_webhook_rejections_total") >= 1


async def test_the_binding_holds_in_another_process_on_the_same_database(db_url: str) -> None:
    built = _tencent(WeChatHarness("plaintext"), ORIGINAL_ID)
    await built.harness.start()
    try:
        now, nonce = str(int(time.time())), "n-two-processes"
        async with BotHarness(channel="wechat", channel_config=built.harness.channel_config(), db_url=db_url) as one:
            query, headers, body = built.request("genuine", "24795603187450004", now, nonce)
            assert await _post(built, one, query, headers, body) == 200
        async with BotHarness(channel="wechat", channel_config=built.harness.channel_config(), db_url=db_url) as two:
            _, _, forged = built.request("forged", "24795603187450005", now, nonce)
            assert await _post(built, two, query, headers, forged) == 401
    finally:
        await built.harness.stop()
