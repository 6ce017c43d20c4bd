"""WeChatAdapter in plaintext and safe mode: the callback route, and customer-service delivery."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from botframework.channel import EventRef, Outbound
from botframework.errors import DeliveryError
from botframework.testing import serve_adapter as serve
from botframework.turn import Reply
from channels.wechat import WeChatAdapter
from channels.wechat.config import WeChatChannelConfig
from channels.wechat.crypto import MsgCrypt, plain_signature
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.wechat_api import FakeWeChat
from tests.fakes.wecom_api import encrypted_callback

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
VECTOR = json.loads((ROOT / "wecom" / "official_vector.json").read_text())
APP_ID = VECTOR["receive_id"]  # Tencent's sample is an Official Account sample: receiveid = AppID
TOKEN = VECTOR["token"]
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as api:
        yield api  # type: ignore[misc]


def make_adapter(fake: FakeWeChat, runtime: RecordingRuntime, *, safe: bool, **overrides: Any) -> WeChatAdapter:
    config = {
        "app_id": APP_ID,
        "app_secret": "wechat-secret",
        "token": TOKEN,
        "api_base_url": fake.base_url,
        **overrides,
    }
    if safe:
        config["encoding_aes_key"] = VECTOR["encoding_aes_key"]
    return WeChatAdapter(tenant="acme", config=WeChatChannelConfig.model_validate(config), runtime=runtime)


def now() -> str:
    """A timestamp inside the replay window."""
    return str(int(time.time()))


def signed_query(timestamp: str | None = None, nonce: str = "998877", token: str = TOKEN) -> dict[str, str]:
    timestamp = timestamp or now()
    return {"signature": plain_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def fixture(name: str) -> bytes:
    return (ROOT / "wechat" / f"{name}.xml").read_bytes()


async def post(client: Client, query: dict[str, str], body: bytes) -> tuple[int, str]:
    response = await client.post("/t/acme/wechat/callback", params=query, data=body)
    return response.status, await response.text()


# URL verification (plain signature in both modes)


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
async def test_url_verification_echoes_echostr(fake: FakeWeChat, runtime: RecordingRuntime, safe: bool) -> None:
    signed = signed_query()
    query = "&".join(f"{k}={v}" for k, v in signed.items()) + "&echostr=8234+56/78=="
    async with serve(make_adapter(fake, runtime, safe=safe)) as client:
        good = await client.get("/t/acme/wechat/callback?" + query)
        assert (good.status, await good.text()) == (200, "8234+56/78==")
        stale = query.replace(f"timestamp={signed['timestamp']}", "timestamp=1")
        bad = await client.get("/t/acme/wechat/callback?" + stale)
        assert bad.status == 401 and "8234" not in await bad.text()


# plaintext mode


async def test_plaintext_message_is_ingested_then_acked_with_success(
    fake: FakeWeChat, runtime: RecordingRuntime
) -> None:
    async with serve(make_adapter(fake, runtime, safe=False)) as client:
        assert await post(client, signed_query(), fixture("text")) == (200, "success")
        [turn] = runtime.turns
        assert (turn.event_id, turn.user_id, turn.text) == ("24795603187453284", OPENID, "你好，明天北京天气怎么样？")
        assert not runtime.model_tasks[0].done()
    assert fake.calls == []


async def test_plaintext_events_are_acked_without_a_turn(fake: FakeWeChat, runtime: RecordingRuntime) -> None:
    async with serve(make_adapter(fake, runtime, safe=False)) as client:
        assert await post(client, signed_query(), fixture("event_subscribe")) == (200, "success")
    assert runtime.turns == []


@pytest.mark.parametrize(
    "query",
    [signed_query(token="guess"), {}, {**signed_query(), "encrypt_type": "aes"}],
    ids=["wrong-token", "unsigned", "encrypted-without-key"],
)
async def test_plaintext_mode_rejects_unsigned_requests(
    fake: FakeWeChat, runtime: RecordingRuntime, query: dict[str, str]
) -> None:
    async with serve(make_adapter(fake, runtime, safe=False)) as client:
        status, _ = await post(client, query, fixture("text"))
    assert status == 401 and runtime.turns == []


# safe mode


async def test_safe_mode_decrypts_the_official_vector(fake: FakeWeChat, runtime: RecordingRuntime) -> None:
    message = VECTOR["message"]
    query = {
        **signed_query(message["timestamp"], message["nonce"]),
        "encrypt_type": "aes",
        "msg_signature": message["msg_signature"],
        "openid": "mycreate",
    }
    async with serve(make_adapter(fake, runtime, safe=True, replay_window_s=0)) as client:  # a 2014 vector
        assert await post(client, query, message["body"].encode()) == (200, "success")
    [turn] = runtime.turns
    assert (turn.event_id, turn.user_id, turn.text) == ("4561255354251345929", "mycreate", "hello")


def _safe_request(*, token: str = TOKEN, app_id: str = APP_ID) -> tuple[dict[str, str], bytes]:
    crypt = MsgCrypt(token=token, encoding_aes_key=VECTOR["encoding_aes_key"], receive_id=app_id)
    query, body = encrypted_callback(
        crypt, fixture("text").decode(), to_user="gh_3a9f2c81d4e7", timestamp=now(), nonce="998877"
    )
    return {**signed_query(), **query, "encrypt_type": "aes"}, body


@pytest.mark.parametrize("case", ["wrong-token", "other-app", "plaintext", "no-msg-signature"])
async def test_safe_mode_rejects_forged_or_plaintext_messages(
    fake: FakeWeChat, runtime: RecordingRuntime, case: str
) -> None:
    if case == "wrong-token":
        query, body = _safe_request(token="guess")
    elif case == "other-app":
        query, body = _safe_request(app_id="wx0000000000000000")
    elif case == "plaintext":
        # A valid plain signature, but the plain signature does not cover the body: refused in safe mode.
        query, body = signed_query(), fixture("text")
    else:
        query, body = _safe_request()
        del query["msg_signature"]
    async with serve(make_adapter(fake, runtime, safe=True)) as client:
        status, _ = await post(client, query, body)
    assert status == 401 and runtime.turns == []


# delivery


def outbound(text: str, *, resume_from: int = 0) -> Outbound:
    return Outbound(
        tenant="acme",
        channel="wechat",
        turn_id="turn-7",
        conversation_key=OPENID,
        reply=Reply(text=text, model="m"),
        events=[EventRef(event_id="1", user_id=OPENID, reply_target={"touser": OPENID})],
        resume_from=resume_from,
    )


async def test_deliver_sends_plain_text_chunks(fake: FakeWeChat, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime, safe=False)
    text = "# 天气\n\n" + "\n\n".join(f"**第{i}天**：晴，`25°C`，适合出行。" * 10 for i in range(10))
    await adapter.deliver(outbound(text))
    await adapter.stop()
    [token_call] = fake.token_calls
    assert token_call.query == {"grant_type": "client_credential", "appid": APP_ID, "secret": "wechat-secret"}
    contents = [b["text"]["content"] for b in fake.sent]
    assert contents == adapter.render_reply(text) and len(contents) >= 2
    assert all(b["touser"] == OPENID and b["msgtype"] == "text" for b in fake.sent)
    assert all(len(c.encode()) <= 2048 for c in contents)
    assert contents[0].startswith("天气") and "**" not in "".join(contents) and "`" not in "".join(contents)


@pytest.mark.parametrize(
    ("errcode", "words"),
    [(45015, "48-hour"), (45047, "quota")],
)
async def test_window_and_quota_errors_are_final_with_a_clear_message(
    fake: FakeWeChat, runtime: RecordingRuntime, errcode: int, words: str
) -> None:
    adapter = make_adapter(fake, runtime, safe=False)
    fake.fail_send(errcode, errmsg="response out of time limit or subscription is canceled")
    with pytest.raises(DeliveryError, match=words) as caught:
        await adapter.deliver(outbound("hello"))
    await adapter.stop()
    assert caught.value.retryable is False


async def test_40001_refreshes_the_token_and_retries_once(fake: FakeWeChat, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime, safe=False)
    await adapter.deliver(outbound("first"))
    fake.expire_tokens()
    fake.expired_errcode = 40001  # type: ignore[misc]  # WeChat's "invalid credential" for a dead token
    await adapter.deliver(outbound("second"))
    await adapter.stop()
    assert len(fake.token_calls) == 2
    assert [b["text"]["content"] for b in fake.sent] == ["first", "second"]


async def test_system_busy_is_retryable_and_resume_skips_sent_chunks(
    fake: FakeWeChat, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(fake, runtime, safe=False)
    text = "\n\n".join(f"段落{i} " + "内容" * 300 for i in range(4))
    fake.fail_send(-1, after=1)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound(text))
    assert caught.value.retryable and caught.value.delivered_parts == 1
    await adapter.deliver(outbound(text, resume_from=1))
    await adapter.stop()
    assert [b["text"]["content"] for b in fake.sent] == adapter.render_reply(text)
