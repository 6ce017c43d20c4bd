"""The WeCom AI bot adapter against the fake long-connection server: subscribe, streamed replies,
dedupe, groups, reconnects, stepping aside, heartbeats, the 6-minute limit, long replies, welcome,
pictures."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from botframework.errors import MediaError
from botframework.media import parse_media_ref
from botframework.models.base import ModelRequest, ModelResponse, TextCallback, Usage
from botframework.testing import BotHarness, Step, wait_until
from channels.wecom_bot import WeComBotAdapter
from channels.wecom_bot.config import WeComBotChannelConfig
from channels.wecom_bot.connection import STREAM_EXPIRED, BotConnection
from channels.wecom_bot.crypto import decrypt_media, encrypt_media, media_key
from channels.wecom_bot.events import parse_message
from tests.channels.wecom_bot.harness import WeComBotHarness, fixture, text_body
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.wecom_bot_ws import FakeWeComBotServer


@pytest.fixture
async def harness() -> AsyncIterator[WeComBotHarness]:
    h = WeComBotHarness()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
def fast_backoff() -> Iterator[None]:
    saved = BotConnection.backoff_start_s
    BotConnection.backoff_start_s = 0.05
    yield
    BotConnection.backoff_start_s = saved


async def start_bot(harness: WeComBotHarness, db_url: str, **options: Any) -> BotHarness:
    bot = BotHarness(channel="wecom_bot", channel_config={**harness.channel_config(), **options}, db_url=db_url)
    await bot.__aenter__()
    await harness.connect(bot)
    return bot


@pytest.fixture
async def bot(harness: WeComBotHarness, db_url: str) -> AsyncIterator[BotHarness]:
    b = await start_bot(harness, db_url)
    try:
        yield b
    finally:
        await b.__aexit__(None, None, None)


def slow_stream(bot: BotHarness, text: str, *, every_s: float = 0.03) -> None:
    """Make the bot's model stream ``text`` word by word, slowly."""
    model = bot.model

    async def complete(request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        model.requests.append(request)
        for word in text.split(" "):
            if on_text is not None:
                await on_text(word + " " if word != text.split(" ")[-1] else word)
            await asyncio.sleep(every_s)
        return ModelResponse(text=text, finish_reason="stop", usage=Usage(input_tokens=10, output_tokens=50), model="m")

    model.complete = complete  # type: ignore[method-assign]


async def finished(fake: FakeWeComBotServer, req_id: str) -> list[dict[str, Any]]:
    async def done() -> bool:
        return any(f.get("finish") for f in fake.stream_frames(req_id))

    await wait_until(done, what=f"the finishing frame on {req_id}")
    return fake.stream_frames(req_id)


async def test_it_subscribes_with_its_bot_id_and_secret(harness: WeComBotHarness, bot: BotHarness) -> None:
    [subscribe] = harness.fake.of("aibot_subscribe")
    assert subscribe.body == {"bot_id": harness.fake.bot_id, "secret": harness.fake.secret}
    assert bot.adapter.health().ok


async def test_the_streamed_reply_grows_uses_one_stream_id_and_finishes_once_with_the_full_text(
    harness: WeComBotHarness, bot: BotHarness
) -> None:
    text = " ".join(f"word{i}" for i in range(80))
    slow_stream(bot, text)
    req_id = await harness.fake.message(text_body(msgid="m-1", user="lisi", text="tell me"))
    frames = await finished(harness.fake, req_id)
    assert len(frames) >= 3, "no updates were streamed before the end"
    assert len({f["id"] for f in frames}) == 1
    lengths = [len(f["content"]) for f in frames]
    assert lengths == sorted(lengths), "a snapshot shrank"
    assert all(text.startswith(f["content"].rstrip()) for f in frames)
    assert [f["finish"] for f in frames] == [False] * (len(frames) - 1) + [True]
    assert frames[-1]["content"] == text
    assert harness.fake.overlaps == [], "a frame was sent before the previous one was acknowledged"
    assert harness.fake.of("aibot_send_msg") == []


async def test_a_redelivered_msgid_reaches_no_model(harness: WeComBotHarness, bot: BotHarness) -> None:
    first = await harness.fake.message(text_body(msgid="m-dup", user="lisi", text="once"))
    await finished(harness.fake, first)
    again = await harness.fake.message(text_body(msgid="m-dup", user="lisi", text="once"))
    later = await harness.fake.message(text_body(msgid="m-next", user="lisi", text="next"))
    await finished(harness.fake, later)
    await asyncio.sleep(0.3)
    assert [r.messages[-1].text for r in bot.model.requests] == ["once", "next"]
    assert harness.fake.stream_frames(again) == []


async def test_a_group_message_is_answered_in_the_group(harness: WeComBotHarness, bot: BotHarness) -> None:
    req_id = await harness.fake.message(text_body(msgid="g-1", user="wangwu", text="status?", group="wrkGroup42"))
    frames = await finished(harness.fake, req_id)
    assert frames[-1]["content"] == "echo: status?"
    assert bot.model.requests[-1].messages[-1].text == "status?"  # the @mention is not the model's business


async def test_after_the_server_drops_the_connection_it_subscribes_again_and_answers(
    harness: WeComBotHarness, bot: BotHarness, fast_backoff: None
) -> None:
    await harness.fake.drop()

    async def resubscribed() -> bool:
        return len(harness.fake.of("aibot_subscribe")) == 2

    await wait_until(resubscribed, what="a new subscription")
    req_id = await harness.fake.message(text_body(msgid="m-after", user="lisi", text="still there?"))
    frames = await finished(harness.fake, req_id)
    assert frames[-1]["content"] == "echo: still there?"
    assert {f.connection for f in harness.fake.of("aibot_respond_msg")} == {2}


async def test_disconnected_event_stops_it_and_it_says_so_instead_of_fighting_back(
    harness: WeComBotHarness, bot: BotHarness, fast_backoff: None
) -> None:
    await harness.fake.displace()

    async def displaced() -> bool:
        return bot.adapter.health().status == "displaced"

    await wait_until(displaced, what="the adapter to step aside")
    await asyncio.sleep(1.0)
    assert harness.fake.connections == 1 and len(harness.fake.of("aibot_subscribe")) == 1
    async with aiohttp.ClientSession() as http, http.get(f"{bot.base_url}/healthz") as response:
        body = await response.json()
    assert body["status"] == "degraded" and body["channels"][0]["status"] == "displaced"


async def test_unanswered_heartbeats_mean_a_dead_connection(
    harness: WeComBotHarness, db_url: str, fast_backoff: None
) -> None:
    harness.fake.answer_pings = False
    bot = await start_bot(harness, db_url, ping_interval_s=0.2)
    try:

        async def reconnected() -> bool:
            return harness.fake.connections >= 2

        await wait_until(reconnected, what="a reconnect after missed heartbeats")
        pings = [f for f in harness.fake.of("ping") if f.connection == 1]
        assert len(pings) == 2
    finally:
        await bot.__aexit__(None, None, None)


async def test_a_refused_secret_is_reported_and_not_retried_forever(
    harness: WeComBotHarness, db_url: str, fast_backoff: None
) -> None:
    options = {**harness.channel_config(), "secret": "wrong"}
    async with BotHarness(channel="wecom_bot", channel_config=options, db_url=db_url) as bot:

        async def refused() -> bool:
            return bool(bot.adapter.health().status == "auth_failed")

        await wait_until(refused, what="the adapter to give up")
        await asyncio.sleep(0.5)
        assert len(harness.fake.of("aibot_subscribe")) == 5


async def test_past_the_stream_limit_the_answer_goes_out_as_a_message(
    harness: WeComBotHarness, bot: BotHarness
) -> None:
    harness.fake.fail("aibot_respond_msg", STREAM_EXPIRED)
    bot.model.steps.append(Step(text="late answer"))
    req_id = await harness.fake.message(text_body(msgid="m-late", user="lisi", text="slow one"))

    async def sent() -> bool:
        return bool(harness.fake.of("aibot_send_msg"))

    await wait_until(sent, what="the fallback message")
    [message] = harness.fake.of("aibot_send_msg")
    assert message.body == {"chatid": "lisi", "msgtype": "markdown", "markdown": {"content": "late answer"}}
    assert message.req_id != req_id


async def test_a_reply_over_20480_bytes_finishes_the_stream_and_sends_the_rest(
    harness: WeComBotHarness, bot: BotHarness
) -> None:
    paragraphs = [f"第{n}段。" + "很长的内容。" * 500 for n in range(5)]  # about 9,000 bytes each
    bot.model.steps.append(Step(text="\n\n".join(paragraphs)))
    req_id = await harness.fake.message(text_body(msgid="m-long", user="lisi", text="write a lot"))
    frames = await finished(harness.fake, req_id)

    async def rest() -> bool:
        return len(harness.fake.of("aibot_send_msg")) >= 2

    await wait_until(rest, what="the remaining parts")
    parts = [frames[-1]["content"]] + [f.body["markdown"]["content"] for f in harness.fake.of("aibot_send_msg")]
    assert all(len(p.encode()) <= 20480 for p in parts)
    assert "".join(parts).replace("\n", "") == "".join(paragraphs)


async def test_the_welcome_message_answers_enter_chat(harness: WeComBotHarness, db_url: str) -> None:
    bot = await start_bot(harness, db_url, welcome="你好，我是助手。")
    try:
        req_id = await harness.fake.event(fixture("event_enter_chat"))

        async def welcomed() -> bool:
            return bool(harness.fake.of("aibot_respond_welcome_msg"))

        await wait_until(welcomed, what="the welcome message")
        [welcome] = harness.fake.of("aibot_respond_welcome_msg")
        assert welcome.req_id == req_id
        assert welcome.body == {"msgtype": "text", "text": {"content": "你好，我是助手。"}}
        assert bot.model.requests == []
    finally:
        await bot.__aexit__(None, None, None)


class _StubResponse:
    def __init__(self, status: int, data: bytes) -> None:
        self.status = status
        self.content = self
        self._data = data

    async def read(self, n: int = -1) -> bytes:
        return self._data if n < 0 else self._data[:n]

    async def __aenter__(self) -> _StubResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _StubSession:
    closed = False

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.urls: list[str] = []

    def get(self, url: str) -> _StubResponse:
        self.urls.append(url)
        return _StubResponse(200, self.data)

    async def close(self) -> None:
        self.closed = True


async def test_a_picture_is_downloaded_and_decrypted_with_its_own_key(runtime: RecordingRuntime) -> None:
    key = os.urandom(32)
    aeskey = base64.b64encode(key).decode().rstrip("=")
    picture = b"\xff\xd8\xff\xe0" + os.urandom(3000)
    body = fixture("image")
    body["image"]["aeskey"] = aeskey
    turn = parse_message(body, tenant="acme", req_id="r", received_ms=0)
    assert turn is not None
    parsed = parse_media_ref(turn.images[0].url)
    assert parsed is not None
    config = WeComBotChannelConfig(bot_id="b", secret="s")  # type: ignore[arg-type]
    adapter = WeComBotAdapter(tenant="acme", config=config, runtime=runtime)
    stub = _StubSession(encrypt_media(picture, key))
    adapter._http = stub  # type: ignore[assignment]
    assert await adapter.fetch_media(parsed[1]) == (picture, "image/jpeg")
    assert stub.urls == [body["image"]["url"]]
    body["image"]["url"] = "http://169.254.169.254/latest"
    plain = parse_message(body, tenant="acme", req_id="r", received_ms=0)
    assert plain is not None and plain.images == ()  # not https: never referenced


def test_media_crypto_uses_32_byte_pkcs7_blocks() -> None:
    key = os.urandom(32)
    for size in (0, 1, 31, 32, 33, 1000):
        data = os.urandom(size)
        encrypted = encrypt_media(data, key)
        assert len(encrypted) % 32 == 0 and decrypt_media(encrypted, key) == data
    wrong = bytes(32)  # fixed: a random wrong key yields valid-looking padding 1 time in ~256
    with pytest.raises(MediaError):
        decrypt_media(encrypt_media(b"x" * 40, bytes(range(32))), wrong)
    with pytest.raises(MediaError):
        media_key("c2hvcnQ")


def test_events_are_not_turns() -> None:
    from channels.wecom_bot.events import event_type

    assert event_type(fixture("event_enter_chat")) == "enter_chat"
    assert event_type(fixture("event_disconnected")) == "disconnected_event"
    assert json.dumps(fixture("event_feedback"))  # recorded, ignored by the adapter


async def test_stopping_while_a_frame_waits_for_its_ack_is_prompt(harness: WeComBotHarness, db_url: str) -> None:
    harness.fake.ack_delay_s = 30.0
    bot = await start_bot(harness, db_url, welcome="hello", ack_timeout_s=30)
    await harness.fake.event(fixture("event_enter_chat"))

    async def sent() -> bool:
        return bool(harness.fake.of("aibot_respond_welcome_msg"))

    await wait_until(sent, what="the welcome frame")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.__aexit__(None, None, None)
    assert loop.time() - started < 5.0
