"""WeComAdapter: the callback route (official vectors, forged requests), and delivery to the fake API."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from botframework.channel import EventRef, Outbound
from botframework.errors import DeliveryError, StorageError
from botframework.testing import serve_adapter as serve
from botframework.turn import Reply
from channels.wecom import WeComAdapter
from channels.wecom.config import WeComChannelConfig
from channels.wecom.crypto import MsgCrypt
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.wecom_api import FakeWeCom, encrypted_callback

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wecom"
VECTOR = json.loads((FIXTURES / "official_vector.json").read_text())
CORP_ID = VECTOR["receive_id"]
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom() as api:
        yield api  # type: ignore[misc]


def make_adapter(fake: FakeWeCom, runtime: RecordingRuntime, **overrides: Any) -> WeComAdapter:
    config = WeComChannelConfig.model_validate(
        {
            "corp_id": CORP_ID,
            "agent_id": 218,
            "secret": "wecom-secret",
            "token": VECTOR["token"],
            "encoding_aes_key": VECTOR["encoding_aes_key"],
            "api_base_url": fake.base_url,
            **overrides,
        }
    )
    return WeComAdapter(tenant="acme", config=config, runtime=runtime)


def crypt(token: str = VECTOR["token"], receive_id: str = CORP_ID) -> MsgCrypt:
    return MsgCrypt(token=token, encoding_aes_key=VECTOR["encoding_aes_key"], receive_id=receive_id)


def now() -> str:
    """A timestamp inside the replay window."""
    return str(int(time.time()))


def fixture_message(name: str) -> str:
    return (FIXTURES / f"{name}.xml").read_text(encoding="utf-8")


async def post(client: Client, query: dict[str, str], body: bytes) -> tuple[int, str]:
    response = await client.post("/t/acme/wecom/callback", params=query, data=body)
    return response.status, await response.text()


def outbound(text: str, *, resume_from: int = 0, touser: str = "ZhangSan") -> Outbound:
    return Outbound(
        tenant="acme",
        channel="wecom",
        turn_id="turn-1",
        conversation_key=touser,
        reply=Reply(text=text, model="m"),
        events=[EventRef(event_id="1", user_id=touser, reply_target={"touser": touser})],
        resume_from=resume_from,
    )


# URL verification


def _verify_query(echostr: str) -> str:
    get = VECTOR["verify_url"]
    return f"msg_signature={get['msg_signature']}&timestamp={get['timestamp']}&nonce={get['nonce']}&echostr={echostr}"


@pytest.mark.parametrize("encode", [False, True], ids=["literal-plus", "percent-encoded"])
async def test_url_verification_returns_the_decrypted_echostr_bare(
    fake: FakeWeCom, runtime: RecordingRuntime, encode: bool
) -> None:
    echostr = VECTOR["verify_url"]["echostr"]
    assert "+" in echostr
    async with serve(make_adapter(fake, runtime)) as client:
        response = await client.get(
            "/t/acme/wecom/callback?" + _verify_query(quote(echostr, safe="") if encode else echostr)
        )
        assert response.status == 200
        assert await response.text() == VECTOR["verify_url"]["plaintext"]
    assert fake.calls == []


@pytest.mark.parametrize(
    "query",
    [
        "",
        _verify_query(VECTOR["verify_url"]["echostr"]).replace("5c45ff5e", "00000000"),
        _verify_query(VECTOR["verify_url"]["echostr"]).replace("timestamp=1409659589", "timestamp=1409659590"),
    ],
    ids=["missing", "wrong-signature", "other-timestamp"],
)
async def test_url_verification_with_a_bad_signature_is_401(
    fake: FakeWeCom, runtime: RecordingRuntime, query: str
) -> None:
    async with serve(make_adapter(fake, runtime)) as client:
        response = await client.get("/t/acme/wecom/callback?" + query)
        assert response.status == 401
        assert VECTOR["verify_url"]["plaintext"] not in await response.text()


# messages


async def test_the_official_message_vector_is_ingested_before_the_ack(
    fake: FakeWeCom, runtime: RecordingRuntime
) -> None:
    message = VECTOR["message"]
    query = {k: message[k] for k in ("msg_signature", "timestamp", "nonce")}
    async with serve(make_adapter(fake, runtime, replay_window_s=0)) as client:  # a 2014 vector
        status, body = await post(client, query, message["body"].encode())
        assert (status, body) == (200, "")
        [turn] = runtime.turns
        assert (turn.event_id, turn.user_id, turn.text) == ("4561255354251345929", "mycreate", "hello")
        assert dict(turn.reply_target) == {"touser": "mycreate"}
        [model] = runtime.model_tasks
        assert not model.done()  # acked while the "model" still runs
    assert fake.calls == []  # no passive reply and no send at ingest


async def test_a_redelivered_message_is_acked_again_with_the_same_event_id(
    fake: FakeWeCom, runtime: RecordingRuntime
) -> None:
    async with serve(make_adapter(fake, runtime)) as client:
        for ts in (now(), str(int(now()) + 1)):  # WeCom re-encrypts and re-signs each retry
            query, body = encrypted_callback(crypt(), fixture_message("text"), to_user=CORP_ID, timestamp=ts, nonce="7")
            assert await post(client, query, body) == (200, "")
    assert [t.event_id for t in runtime.turns] == ["7435112043720003921"] * 2
    assert len(runtime.accepted) == 1


@pytest.mark.parametrize("name", ["event_subscribe", "event_enter_agent", "text_blank"])
async def test_events_are_acked_without_a_turn(fake: FakeWeCom, runtime: RecordingRuntime, name: str) -> None:
    query, body = encrypted_callback(crypt(), fixture_message(name), to_user=CORP_ID, timestamp=now(), nonce="2")
    async with serve(make_adapter(fake, runtime)) as client:
        assert await post(client, query, body) == (200, "")
    assert runtime.turns == []


def _forgeries() -> dict[str, tuple[dict[str, str], bytes]]:
    plaintext = fixture_message("text")
    good_query, good_body = encrypted_callback(crypt(), plaintext, to_user=CORP_ID, timestamp=now(), nonce="2")
    wrong_token = encrypted_callback(crypt(token="guess"), plaintext, to_user=CORP_ID, timestamp=now(), nonce="2")
    other_corp = encrypted_callback(
        crypt(receive_id="ww-other"), plaintext, to_user=CORP_ID, timestamp=now(), nonce="2"
    )
    doctype = b'<!DOCTYPE xml [<!ENTITY e "x">]>' + good_body
    plain_body = plaintext.encode()
    return {
        "wrong-token": wrong_token,
        "other-corp-id": other_corp,  # correctly signed, but for another receiveid
        "no-signature": ({"timestamp": "1", "nonce": "2"}, good_body),
        "other-nonce": ({**good_query, "nonce": "3"}, good_body),
        "doctype": (good_query, doctype),
        "plaintext-body": (good_query, plain_body),
        "garbage": (good_query, b"\xff\xfe not xml"),
    }


@pytest.mark.parametrize("case", sorted(_forgeries()))
async def test_forged_or_undecryptable_messages_are_401_with_no_side_effect(
    fake: FakeWeCom, runtime: RecordingRuntime, case: str
) -> None:
    query, body = _forgeries()[case]
    async with serve(make_adapter(fake, runtime)) as client:
        status, _ = await post(client, query, body)
    assert status == 401
    assert runtime.turns == []
    assert fake.calls == []


async def test_a_failed_ingest_answers_503_so_wecom_retries(fake: FakeWeCom) -> None:
    runtime = RecordingRuntime(fail_with=StorageError("database is down"))
    query, body = encrypted_callback(crypt(), fixture_message("text"), to_user=CORP_ID, timestamp=now(), nonce="2")
    async with serve(make_adapter(fake, runtime)) as client:
        status, _ = await post(client, query, body)
    assert status == 503


async def test_a_verified_but_malformed_message_is_400(fake: FakeWeCom, runtime: RecordingRuntime) -> None:
    broken = "<xml><MsgType>text</MsgType><Content>no sender</Content></xml>"
    query, body = encrypted_callback(crypt(), broken, to_user=CORP_ID, timestamp=now(), nonce="2")
    async with serve(make_adapter(fake, runtime)) as client:
        status, _ = await post(client, query, body)
    assert status == 400
    assert runtime.turns == []


# delivery


async def test_deliver_sends_markdown_chunks_within_2048_bytes(fake: FakeWeCom, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime)
    text = "## 总结\n\n" + "\n\n".join(f"第{i}段：**要点** 很长的中文内容。" * 12 for i in range(12))
    try:
        await adapter.deliver(outbound(text))
    finally:
        await adapter.stop()
    assert len(fake.sent) >= 2
    for body in fake.sent:
        assert body["touser"] == "ZhangSan" and body["agentid"] == 218 and body["msgtype"] == "markdown"
        assert len(body["markdown"]["content"].encode()) <= 2048
    assert fake.sent[0]["markdown"]["content"].startswith("## 总结")
    assert "**要点**" in fake.sent[0]["markdown"]["content"]


async def test_text_format_sends_plain_text_for_wechat_readers(fake: FakeWeCom, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime, message_format="text")
    try:
        await adapter.deliver(outbound("## Plan\n\n**Ship** it, see [docs](https://example.com/d)."))
    finally:
        await adapter.stop()
    [body] = fake.sent
    assert body["msgtype"] == "text" and "markdown" not in body
    content = body["text"]["content"]
    assert "**" not in content and "##" not in content
    assert "Ship it" in content and "https://example.com/d" in content


async def test_deliver_resumes_after_the_chunks_already_sent(fake: FakeWeCom, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime)
    text = "\n\n".join(f"paragraph {i} " + "word " * 150 for i in range(6))
    fake.fail_send(-1, after=1)
    try:
        with pytest.raises(DeliveryError) as caught:
            await adapter.deliver(outbound(text))
        assert caught.value.retryable and caught.value.delivered_parts == 1
        assert "chunk 2/" in str(caught.value) and "system busy" in str(caught.value)
        await adapter.deliver(outbound(text, resume_from=caught.value.delivered_parts))
    finally:
        await adapter.stop()
    contents = [b["markdown"]["content"] for b in fake.sent]
    assert len(adapter.render_reply(text)) >= 3
    assert contents == adapter.render_reply(text), "every chunk exactly once, in order"
    assert [c.query["access_token"] for c in fake.send_calls] == ["TOKEN-1"] * len(fake.send_calls)


async def test_a_final_vendor_error_is_not_retryable(fake: FakeWeCom, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime)
    fake.fail_send(81013, errmsg="user & party & tag all invalid")
    try:
        with pytest.raises(DeliveryError, match="81013") as caught:
            await adapter.deliver(outbound("hi"))
    finally:
        await adapter.stop()
    assert caught.value.retryable is False and caught.value.delivered_parts == 0


@pytest.mark.parametrize("touser", ["", "@all", "a|b"])
async def test_a_reply_never_goes_to_several_users(fake: FakeWeCom, runtime: RecordingRuntime, touser: str) -> None:
    adapter = make_adapter(fake, runtime)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hi", touser=touser))
    await adapter.stop()
    assert caught.value.retryable is False
    assert fake.calls == []


async def test_an_empty_reply_still_sends_a_message(fake: FakeWeCom, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(fake, runtime)
    await adapter.deliver(outbound("   "))
    await adapter.stop()
    assert [b["markdown"]["content"] for b in fake.sent] == ["(empty reply)"]


def test_the_adapter_needs_its_config(runtime: RecordingRuntime) -> None:
    class OtherConfig(BaseModel):
        token: str = "t"

    with pytest.raises(TypeError, match="WeComChannelConfig"):
        WeComAdapter(tenant="acme", config=OtherConfig(), runtime=runtime)
