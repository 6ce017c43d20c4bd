"""FeishuAdapter against a local fake Feishu Open API, with real encryption/signatures and a recording runtime."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from botframework.channel import EventRef, Outbound
from botframework.errors import DeliveryError, StorageError
from botframework.testing import AdapterClient, long_markdown_reply, wait_until
from botframework.testing import serve_adapter as serve
from botframework.turn import Reply
from channels.feishu import FeishuAdapter
from channels.feishu.adapter import delivery_uuid
from channels.feishu.config import FeishuChannelConfig
from channels.feishu.render import card_markdown
from tests.fakes.feishu_api import BOT_OPEN_ID, TENANT_TOKEN, FakeFeishu, encrypt, signed_headers
from tests.fakes.runtime import AttachedSink, RecordingRuntime

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feishu"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
TOKEN = EXPECTED["verification_token"]
ENCRYPT_KEY = "kudryavtsev-encrypt-key-0123456789"
APP_SECRET = "dskLLdkasdjlasdKK2dskLLdkasdjlas"
USER_MESSAGE = "om_dc13264520392913993dd051dba21dcf"
CHAT = "oc_5ad11d72b830411d72b836c20"
_apps = itertools.count(1)


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return payload


@pytest.fixture
async def feishu() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as fake:
        fake.chat_of[USER_MESSAGE] = CHAT
        yield fake


def make_adapter(feishu: FakeFeishu, runtime: RecordingRuntime, **overrides: Any) -> FeishuAdapter:
    """A fresh app id per adapter: lark-oapi caches tenant tokens process-wide by app id."""
    settings: dict[str, Any] = {
        "app_id": f"cli_test{next(_apps):04d}{time.monotonic_ns() % 10_000}",
        "app_secret": APP_SECRET,
        "encrypt_key": ENCRYPT_KEY,
        "verification_token": TOKEN,
        "domain": feishu.domain,
    }
    settings.update(overrides)
    config = FeishuChannelConfig.model_validate({k: v for k, v in settings.items() if v is not None})
    return FeishuAdapter(tenant="acme", config=config, runtime=runtime)


def encrypted_body(payload: dict[str, Any], key: str = ENCRYPT_KEY) -> bytes:
    return json.dumps({"encrypt": encrypt(key, json.dumps(payload))}).encode()


async def post(
    client: TestClient[web.Request, web.Application], body: bytes, headers: dict[str, str] | None = None
) -> ClientResponse:
    return await client.post("/t/acme/feishu/events", data=body, headers=headers or {})


async def post_signed(client: TestClient[web.Request, web.Application], payload: dict[str, Any]) -> ClientResponse:
    body = encrypted_body(payload)
    return await post(client, body, signed_headers(ENCRYPT_KEY, body))


def outbound(
    text: str,
    *,
    turn_id: str = "turn-1",
    message_id: str | None = USER_MESSAGE,
    in_thread: bool = False,
    resume_from: int = 0,
) -> Outbound:
    target: dict[str, Any] = {"chat_id": CHAT, "reply_in_thread": in_thread}
    if message_id is not None:
        target["message_id"] = message_id
    return Outbound(
        tenant="acme",
        channel="feishu",
        turn_id=turn_id,
        conversation_key=CHAT,
        reply=Reply(text=text, model="m"),
        events=[EventRef(event_id="ev1", user_id="ou_84aad35d084aa403a838cf73ee18467", reply_target=target)],
        resume_from=resume_from,
    )


# config and lifecycle


def test_webhook_without_any_verification_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="encrypt_key or verification_token"):
        FeishuChannelConfig.model_validate({"app_id": "cli_x", "app_secret": "s"})
    websocket = FeishuChannelConfig.model_validate({"app_id": "cli_x", "app_secret": "s", "mode": "websocket"})
    assert websocket.mode == "websocket"


async def test_construction_makes_no_api_call(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    make_adapter(feishu, runtime)
    await asyncio.sleep(0)
    assert feishu.calls == []


async def test_start_learns_the_bot_open_id_through_the_configured_domain(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime)
    await adapter.start()
    [token] = feishu.calls_to("token")
    assert token.body == {"app_id": adapter.settings.app_id, "app_secret": APP_SECRET}
    [info] = feishu.calls_to("bot_info")
    assert info.headers["Authorization"] == f"Bearer {TENANT_TOKEN}"
    assert adapter.bot_open_id == BOT_OPEN_ID
    await adapter.stop()


async def test_start_survives_an_unreachable_api(runtime: RecordingRuntime) -> None:
    config = FeishuChannelConfig.model_validate(
        {
            "app_id": "cli_unreachable",
            "app_secret": APP_SECRET,
            "verification_token": TOKEN,
            "domain": "http://127.0.0.1:9",
        }
    )
    adapter = FeishuAdapter(tenant="acme", config=config, runtime=runtime)
    await adapter.start()
    assert adapter.bot_open_id is None
    await adapter.stop()


# inbound: verification


async def test_url_verification_is_answered_encrypted_or_plain(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    challenge = fixture("url_verification")
    async with serve(make_adapter(feishu, runtime)) as client:
        response = await post(client, encrypted_body(challenge))  # Feishu does not sign it
        assert response.status == 200
        assert await response.json() == {"challenge": challenge["challenge"]}
    async with serve(make_adapter(feishu, runtime, encrypt_key=None)) as client:
        response = await post(client, json.dumps(challenge).encode())
        assert response.status == 200
        assert await response.json() == {"challenge": challenge["challenge"]}
        forged = await post(client, json.dumps(challenge | {"token": "guess"}).encode())
        assert forged.status == 401
    assert runtime.turns == []


async def test_signed_event_is_ingested_before_the_ack_which_does_not_wait_for_the_model(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    async with serve(make_adapter(feishu, runtime)) as client:
        response = await post_signed(client, fixture("group_mention"))
        assert response.status == 200
        [turn] = runtime.turns
        assert turn.event_id == "f7984f25108f8137722bb63cee927e66"
        assert turn.text == "summarise yesterday's incidents"
        assert dict(turn.reply_target) == {"message_id": USER_MESSAGE, "chat_id": CHAT, "reply_in_thread": False}
        [model] = runtime.model_tasks
        assert not model.done()
    assert feishu.calls_to("reply") == []


async def test_slow_ingest_still_completes_before_the_ack(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    runtime.ingest_delay = 0.2
    async with serve(make_adapter(feishu, runtime)) as client:
        started = time.monotonic()
        response = await post_signed(client, fixture("p2p_text"))
        assert response.status == 200
        assert time.monotonic() - started >= 0.2
        assert [t.event_id for t in runtime.turns] == ["5e3702a84e847582be8db7fb73283c02"]


def _forgeries() -> dict[str, tuple[bytes, dict[str, str]]]:
    payload = fixture("p2p_text")
    body = encrypted_body(payload)
    good = signed_headers(ENCRYPT_KEY, body)
    other_key_body = encrypted_body(payload, key="another-key")
    wrong_token_body = encrypted_body(payload | {"header": payload["header"] | {"token": "nope"}})
    return {
        "unsigned": (body, {}),
        "wrong signature": (body, good | {"X-Lark-Signature": "0" * 64}),
        "signature of another body": (body.replace(b"=", b"A", 1), good),
        "other nonce": (body, good | {"X-Lark-Request-Nonce": "other"}),
        "signed with another key": (body, signed_headers("another-key", body)),
        "wrong verification token": (wrong_token_body, signed_headers(ENCRYPT_KEY, wrong_token_body)),
        "not json, unsigned": (b"\xff\xfe", {}),
        "deeply nested, unsigned": (b"[" * 100_000, {}),
        "encrypted with another key, unsigned": (other_key_body, {}),
        "signed by us in 2020": (body, signed_headers(ENCRYPT_KEY, body, timestamp="1600000000")),
    }


def _signed_but_malformed() -> dict[str, tuple[bytes, dict[str, str]]]:
    """Bodies signed with our encrypt_key (so whoever sent them holds it) that are not usable events."""
    payload = fixture("p2p_text")
    other_key_body = encrypted_body(payload, key="another-key")
    nested = b'{"encrypt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return {
        "encrypted with another key": (other_key_body, signed_headers(ENCRYPT_KEY, other_key_body)),
        "plain body": (json.dumps(payload).encode(), signed_headers(ENCRYPT_KEY, json.dumps(payload).encode())),
        "not json": (b"\xff\xfe", signed_headers(ENCRYPT_KEY, b"\xff\xfe")),
        "json array": (b"[]", signed_headers(ENCRYPT_KEY, b"[]")),
        "encrypt not base64": (b'{"encrypt": "%%%"}', signed_headers(ENCRYPT_KEY, b'{"encrypt": "%%%"}')),
        "deeply nested": (nested, signed_headers(ENCRYPT_KEY, nested)),
    }


@pytest.mark.parametrize("name", sorted(_signed_but_malformed()))
async def test_signed_but_malformed_requests_get_400_and_no_side_effect(
    feishu: FakeFeishu, runtime: RecordingRuntime, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = _signed_but_malformed()[name]
    async with serve(make_adapter(feishu, runtime)) as client:
        response = await post(client, body, headers)
        assert response.status == 400
    assert runtime.turns == []
    assert not [r for r in caplog.records if r.exc_info], "a client's request must not log a traceback"


@pytest.mark.parametrize("name", sorted(_forgeries()))
async def test_forged_requests_get_401_and_no_side_effect(
    feishu: FakeFeishu, runtime: RecordingRuntime, name: str
) -> None:
    body, headers = _forgeries()[name]
    async with serve(make_adapter(feishu, runtime)) as client:
        response = await post(client, body, headers)
        assert response.status == 401
    assert runtime.turns == []
    assert feishu.calls_to("reply") == []


async def test_plain_mode_checks_the_v2_header_token(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    payload = fixture("p2p_text")
    async with serve(make_adapter(feishu, runtime, encrypt_key=None)) as client:
        forged = await post(client, json.dumps(payload | {"header": payload["header"] | {"token": "x"}}).encode())
        assert forged.status == 401
        missing = await post(client, json.dumps(payload | {"header": {**payload["header"], "token": None}}).encode())
        assert missing.status == 401
        encrypted = await post(client, encrypted_body(payload))  # we cannot decrypt: not ours
        assert encrypted.status == 401
        assert runtime.turns == []
        genuine = await post(client, json.dumps(payload).encode())
        assert genuine.status == 200
    assert [t.event_id for t in runtime.turns] == ["5e3702a84e847582be8db7fb73283c02"]


async def test_encrypted_without_verification_token_relies_on_the_signature(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    async with serve(make_adapter(feishu, runtime, verification_token=None)) as client:
        assert (await post_signed(client, fixture("p2p_text"))).status == 200
        body = encrypted_body(fixture("post_p2p"))
        assert (await post(client, body, signed_headers("guess", body))).status == 401
    assert len(runtime.turns) == 1


# inbound: events


async def test_redelivery_reaches_the_runtime_with_the_same_event_id(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    payload = fixture("p2p_text")
    async with serve(make_adapter(feishu, runtime)) as client:
        first = await post_signed(client, payload)
        again = await post_signed(client, payload)  # a fresh encryption and signature, same event
        assert (first.status, again.status) == (200, 200)
    assert [t.event_id for t in runtime.turns] == ["5e3702a84e847582be8db7fb73283c02"] * 2
    assert [r.duplicate for r in runtime.results] == [False, True]
    assert len(runtime.model_tasks) == 1


async def test_storage_failure_answers_503_so_feishu_redelivers(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    runtime.fail_with = StorageError("database is locked")
    async with serve(make_adapter(feishu, runtime)) as client:
        response = await post_signed(client, fixture("p2p_text"))
        assert response.status == 503


async def test_malformed_verified_event_is_a_400(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    payload = fixture("p2p_text")
    payload["event"]["message"]["content"] = "{not json"
    async with serve(make_adapter(feishu, runtime)) as client:
        assert (await post_signed(client, payload)).status == 400
    assert runtime.turns == []


@pytest.mark.parametrize(
    "name",
    [
        "group_without_mention",
        "group_mention_other_user_only",
        "p2p_from_app",
        "message_recalled",
        "bot_added_to_chat",
        "message_read",
    ],
)
async def test_ignored_events_are_acknowledged_without_ingest(
    feishu: FakeFeishu, runtime: RecordingRuntime, name: str
) -> None:
    async with serve(make_adapter(feishu, runtime)) as client:
        response = await post_signed(client, fixture(name))
        assert response.status == 200
    assert runtime.turns == []


async def test_bot_identity_is_learnt_late_when_start_could_not(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    feishu.fail("bot_info", code=99991400, msg="request trigger frequency limit", status=429)
    adapter = make_adapter(feishu, runtime)
    async with serve(adapter) as client:
        before = adapter.bot_open_id
        assert before is None
        assert (await post_signed(client, fixture("group_mention"))).status == 200
    assert adapter.bot_open_id == BOT_OPEN_ID
    assert [t.text for t in runtime.turns] == ["summarise yesterday's incidents"]


# long connection


async def test_websocket_mode_has_no_route(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(feishu, runtime, mode="websocket", encrypt_key=None, verification_token=None)
    assert adapter.routes() == ()


async def test_long_connection_events_are_ingested_on_the_server_loop_before_the_frame_is_answered(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    """What the ws client calls on its own thread: the bridge into the same ingest path."""
    from channels.feishu.adapter import _EventBridge

    runtime.ingest_delay = 0.1
    adapter = make_adapter(feishu, runtime, mode="websocket", encrypt_key=None, verification_token=None)
    adapter.bot_open_id = BOT_OPEN_ID
    bridge = _EventBridge(adapter, asyncio.get_running_loop())

    def on_ws_thread(payload: bytes) -> int:
        bridge._do_without_validation(payload)
        return len(runtime.turns)  # read right after the call returns, still on the ws thread

    seen = await asyncio.to_thread(on_ws_thread, json.dumps(fixture("group_mention")).encode())
    assert seen == 1
    assert runtime.turns[0].event_id == "f7984f25108f8137722bb63cee927e66"
    for name in ("message_read", "group_without_mention"):
        await asyncio.to_thread(bridge._do_without_validation, json.dumps(fixture(name)).encode())
    await asyncio.to_thread(bridge._do_without_validation, b"not json")
    assert len(runtime.turns) == 1

    runtime.fail_with = StorageError("database is locked")
    with pytest.raises(StorageError):  # the ws client then answers the frame with 500: Feishu redelivers
        await asyncio.to_thread(bridge._do_without_validation, json.dumps(fixture("p2p_text")).encode())


async def test_long_connection_end_to_end_against_the_fake_endpoint(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    """The real lark-oapi ws client on the shared ws thread, talking protobuf frames to the fake."""
    adapter = make_adapter(feishu, runtime, mode="websocket", encrypt_key=None, verification_token=None)
    await adapter.start()
    try:
        await feishu.wait_ws_connected()
        [endpoint] = feishu.calls_to("ws_endpoint")
        assert endpoint.body["AppID"] == adapter.settings.app_id

        ack = await feishu.wait_ws_ack(await feishu.send_ws_event(fixture("p2p_text")))
        assert ack["code"] == 200
        assert [t.event_id for t in runtime.turns] == ["5e3702a84e847582be8db7fb73283c02"]

        ignored = await feishu.wait_ws_ack(await feishu.send_ws_event(fixture("message_read")))
        assert ignored["code"] == 200 and len(runtime.turns) == 1

        runtime.fail_with = StorageError("database is locked")
        failed = await feishu.wait_ws_ack(await feishu.send_ws_event(fixture("post_p2p")))
        assert failed["code"] == 500  # Feishu redelivers it later
    finally:
        await adapter.stop()

    async def closed() -> bool:
        return feishu._sockets == []

    await wait_until(closed, timeout=20, what="stop() to close the long connection")


# outbound


async def test_deliver_replies_to_the_users_message_with_a_card(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(feishu, runtime)
    await adapter.deliver(outbound("## Result\n\n**Done**: see [the log](https://ci.test/run?id=1&x=2)."))
    [call] = feishu.calls_to("reply")
    assert call.path == f"/open-apis/im/v1/messages/{USER_MESSAGE}/reply"
    assert call.headers["Authorization"] == f"Bearer {TENANT_TOKEN}"
    assert call.body["msg_type"] == "interactive"
    assert call.body["reply_in_thread"] is False
    assert call.body["uuid"] == delivery_uuid("acme", "turn-1", 0) and len(call.body["uuid"]) <= 50
    assert card_markdown(call.body["content"]) == (
        "## Result\n\n**Done**: see [the log](https://ci.test/run?id=1&x=2)."
    )
    assert [m["chat_id"] for m in feishu.sent] == [CHAT]


async def test_thread_messages_are_answered_in_the_thread(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    await make_adapter(feishu, runtime).deliver(outbound("ok", in_thread=True))
    assert feishu.calls_to("reply")[0].body["reply_in_thread"] is True


async def test_model_text_cannot_mention_everyone(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    await make_adapter(feishu, runtime).deliver(outbound('<at id=all></at> ping <at user_id="ou_1"></at>'))
    text = card_markdown(feishu.calls_to("reply")[0].body["content"])
    assert "<at" not in text and text.startswith("&#60;at id=all>")


async def test_long_reply_is_chunked_under_the_card_limit_with_distinct_uuids(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    await make_adapter(feishu, runtime).deliver(outbound(long_markdown_reply(100_000)))
    calls = feishu.calls_to("reply")
    assert len(calls) >= 4
    for call in calls:
        wire = json.dumps(call.body, ensure_ascii=False, separators=(",", ":")).encode()
        assert len(wire) <= 30 * 1024
    uuids = [c.body["uuid"] for c in calls]
    assert uuids == [delivery_uuid("acme", "turn-1", i) for i in range(len(calls))]
    assert card_markdown(calls[0].body["content"]).startswith("Paragraph 1:")


async def test_resume_from_skips_the_chunks_already_sent(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(feishu, runtime)
    text = long_markdown_reply(100_000)
    feishu.fail("reply", code=None, status=502, after=2)  # chunk 3 hits a gateway error
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound(text))
    assert caught.value.retryable is True and caught.value.delivered_parts == 2
    sent_before = [m["uuid"] for m in feishu.sent]
    assert len(sent_before) == 2

    await adapter.deliver(outbound(text, resume_from=caught.value.delivered_parts))
    retried = [c.body["uuid"] for c in feishu.calls_to("reply")][3:]
    assert retried[0] == delivery_uuid("acme", "turn-1", 2)
    assert not set(retried) & set(sent_before)
    assert len({m["uuid"] for m in feishu.sent}) == len(feishu.sent)


async def test_a_repeated_delivery_is_deduplicated_by_the_uuid(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    adapter = make_adapter(feishu, runtime)
    await adapter.deliver(outbound("once"))
    await adapter.deliver(outbound("once"))  # e.g. the process died before recording the success
    assert len(feishu.calls_to("reply")) == 2
    assert len(feishu.sent) == 1


async def test_a_recalled_message_is_answered_in_its_chat(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    feishu.fail("reply", code=230011, msg="The message was withdrawn.")
    await make_adapter(feishu, runtime).deliver(outbound("still useful"))
    [create] = feishu.calls_to("create")
    assert create.query == {"receive_id_type": "chat_id"}
    assert create.body["receive_id"] == CHAT
    assert create.body["uuid"] == delivery_uuid("acme", "turn-1", 0)
    assert card_markdown(feishu.sent[0]["content"]) == "still useful"


async def test_without_a_message_id_the_reply_goes_to_the_chat(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    await make_adapter(feishu, runtime).deliver(outbound("hello", message_id=None))
    assert feishu.calls_to("reply") == []
    assert feishu.calls_to("create")[0].body["receive_id"] == CHAT


async def test_a_target_without_ids_is_not_retryable(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    out = outbound("x")
    broken = Outbound(
        tenant=out.tenant,
        channel=out.channel,
        turn_id=out.turn_id,
        conversation_key=out.conversation_key,
        reply=out.reply,
        events=[EventRef(event_id="e", user_id="u", reply_target={})],
    )
    with pytest.raises(DeliveryError) as caught:
        await make_adapter(feishu, runtime).deliver(broken)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        (99991400, 429, True),
        (230020, 400, True),
        (None, 502, True),
        (1500, 500, True),
        (230002, 400, False),
        (230001, 400, False),
        (99992402, 400, False),
    ],
)
async def test_api_errors_are_translated(
    feishu: FakeFeishu, runtime: RecordingRuntime, code: int | None, status: int, retryable: bool
) -> None:
    feishu.fail("reply", code=code, status=status)
    with pytest.raises(DeliveryError) as caught:
        await make_adapter(feishu, runtime).deliver(outbound("hello"))
    assert caught.value.retryable is retryable
    assert USER_MESSAGE in str(caught.value)
    if code is not None:
        assert str(code) in str(caught.value)


async def test_an_invalid_token_is_dropped_and_fetched_again_on_retry(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime)
    feishu.fail("reply", code=99991663, msg="Invalid access token for authorization.", status=400)
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(outbound("hello"))
    assert caught.value.retryable is True
    assert len(feishu.calls_to("token")) == 1
    await adapter.deliver(outbound("hello"))
    assert len(feishu.calls_to("token")) == 2
    assert len(feishu.sent) == 1


@pytest.mark.parametrize(("code", "retryable"), [(10014, False), (None, True)])
async def test_token_failures_are_translated(
    feishu: FakeFeishu, runtime: RecordingRuntime, code: int | None, retryable: bool
) -> None:
    feishu.fail("token", code=code, msg="app secret invalid", status=400 if code else 503)
    with pytest.raises(DeliveryError) as caught:
        await make_adapter(feishu, runtime).deliver(outbound("hello"))
    assert caught.value.retryable is retryable
    assert "tenant_access_token" in str(caught.value)
    assert APP_SECRET not in str(caught.value)
    assert feishu.calls_to("reply") == []


async def test_unreachable_api_is_a_retryable_delivery_error(runtime: RecordingRuntime) -> None:
    config = FeishuChannelConfig.model_validate(
        {"app_id": "cli_nowhere", "app_secret": APP_SECRET, "verification_token": TOKEN, "domain": "http://127.0.0.1:9"}
    )
    with pytest.raises(DeliveryError) as caught:
        await FeishuAdapter(tenant="acme", config=config, runtime=runtime).deliver(outbound("hello"))
    assert caught.value.retryable is True


# live updates


def _patched(feishu: FakeFeishu, n: int = 1) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(feishu.calls_to("patch")) >= n

    return check


async def _live_sink(feishu: FakeFeishu, runtime: RecordingRuntime, client: AdapterClient) -> AttachedSink:
    assert (await post_signed(client, fixture("group_mention"))).status == 200
    [attached] = runtime.sinks
    return attached


async def test_live_updates_reply_with_one_placeholder_card_throttle_patches_and_finalize(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime, live_updates=True, update_interval_s=0.2)
    async with serve(adapter) as client:
        attached = await _live_sink(feishu, runtime, client)
        turn_id = runtime.results[0].turn_id
        assert (attached.tenant, attached.channel, attached.turn_id) == ("acme", "feishu", turn_id)
        sink = attached.sink

        await sink.delta("Hel")
        [placeholder] = feishu.sent
        assert placeholder["reply_to"] == USER_MESSAGE and placeholder["msg_type"] == "interactive"
        assert card_markdown(placeholder["content"]) == "Hel …"
        assert json.loads(placeholder["content"])["config"] == {"update_multi": True}  # PATCH needs a shared card
        for piece in ["lo", ", ", "wor", "ld"]:
            await sink.delta(piece)
        assert feishu.calls_to("patch") == []  # throttled: nothing before the interval
        await wait_until(_patched(feishu), what="the throttled card patch")
        [edit] = feishu.calls_to("patch")
        assert edit.path == f"/open-apis/im/v1/messages/{placeholder['message_id']}"
        assert edit.headers["Authorization"] == f"Bearer {TENANT_TOKEN}"
        assert card_markdown(edit.body["content"]) == "Hello, world …"

        await adapter.deliver(outbound("Hello, **world**!", turn_id=turn_id))
        final = feishu.calls_to("patch")[-1]
        assert final.path == edit.path and card_markdown(final.body["content"]) == "Hello, **world**!"
        assert len(feishu.sent) == 1 and feishu.calls_to("reply")[1:] == []  # still exactly one message
        assert card_markdown(feishu.sent[0]["content"]) == "Hello, **world**!"
        patches = len(feishu.calls_to("patch"))
        await sink.delta(" late")  # after deliver the sink is finished: nothing is even scheduled
        await sink.reset()
        assert len(feishu.calls_to("patch")) == patches


async def test_live_placeholder_in_a_thread_is_answered_in_the_thread(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    feishu.chat_of["om_a9b8c7d6e5f40312a1b2c3d4e5f60718"] = CHAT
    adapter = make_adapter(feishu, runtime, live_updates=True)
    async with serve(adapter) as client:
        assert (await post_signed(client, fixture("group_thread_mention"))).status == 200
        await runtime.sinks[0].sink.delta("Thinking")
    [placeholder] = feishu.calls_to("reply")
    assert placeholder.path == "/open-apis/im/v1/messages/om_a9b8c7d6e5f40312a1b2c3d4e5f60718/reply"
    assert placeholder.body["reply_in_thread"] is True


async def test_live_reply_longer_than_a_card_patches_the_first_chunk_and_replies_the_rest(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime, live_updates=True)
    async with serve(adapter) as client:
        attached = await _live_sink(feishu, runtime, client)
        await attached.sink.delta("Starting")
        await adapter.deliver(outbound(long_markdown_reply(100_000), turn_id=attached.turn_id))
    [final] = feishu.calls_to("patch")
    assert card_markdown(final.body["content"]).startswith("Paragraph 1:")
    placeholder, *rest = feishu.sent
    assert card_markdown(placeholder["content"]).startswith("Paragraph 1:")
    assert len(rest) >= 3 and all(m["reply_to"] == USER_MESSAGE for m in rest)
    assert [m["uuid"] for m in rest] == [delivery_uuid("acme", attached.turn_id, i) for i in range(1, len(rest) + 1)]
    for call in [final, *feishu.calls_to("reply")]:
        assert len(json.dumps(call.body, ensure_ascii=False, separators=(",", ":")).encode()) <= 30 * 1024


async def test_live_delivery_resumes_after_the_patched_first_chunk(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime, live_updates=True)
    text = long_markdown_reply(100_000)
    async with serve(adapter) as client:
        attached = await _live_sink(feishu, runtime, client)
        await attached.sink.delta("Starting")
        feishu.fail("reply", code=None, status=502, after=1)  # chunk 2 is sent, chunk 3 hits a gateway error
        with pytest.raises(DeliveryError) as caught:
            await adapter.deliver(outbound(text, turn_id=attached.turn_id))
        assert caught.value.retryable and caught.value.delivered_parts == 2
        await adapter.deliver(outbound(text, turn_id=attached.turn_id, resume_from=caught.value.delivered_parts))
    assert len(feishu.calls_to("patch")) == 1  # the retry does not touch the finalized placeholder
    uuids = [m["uuid"] for m in feishu.sent[1:]]
    assert uuids == [delivery_uuid("acme", attached.turn_id, i) for i in range(1, len(uuids) + 1)]


async def test_failed_live_placeholder_falls_back_to_a_normal_reply(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime, live_updates=True)
    async with serve(adapter) as client:
        attached = await _live_sink(feishu, runtime, client)
        feishu.fail("reply", code=99991400, msg="request trigger frequency limit", status=429)
        await attached.sink.delta("partial")  # fails quietly and closes the sink
        await attached.sink.delta(" more")
        await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))
    first, second = feishu.calls_to("reply")
    assert card_markdown(first.body["content"]) == "partial …" and "uuid" not in first.body
    assert second.body["uuid"] == delivery_uuid("acme", attached.turn_id, 0)
    assert [card_markdown(m["content"]) for m in feishu.sent] == ["final answer"]
    assert feishu.calls_to("patch") == []


async def test_rate_limited_finalize_is_retried_on_the_same_placeholder(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime, live_updates=True)
    async with serve(adapter) as client:
        attached = await _live_sink(feishu, runtime, client)
        await attached.sink.delta("partial")
        feishu.fail("patch", code=230020, msg="request trigger frequency limit", status=400)
        with pytest.raises(DeliveryError) as caught:
            await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))
        assert caught.value.retryable and caught.value.delivered_parts == 0
        assert feishu.sent[0]["message_id"] in str(caught.value)
        await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))  # the core's retry
    [message] = feishu.sent
    assert card_markdown(message["content"]) == "final answer" and message["edits"] == 1


async def test_a_placeholder_that_cannot_be_patched_is_replaced_by_a_normal_reply(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    adapter = make_adapter(feishu, runtime, live_updates=True)
    async with serve(adapter) as client:
        attached = await _live_sink(feishu, runtime, client)
        await attached.sink.delta("partial")
        feishu.fail("patch", code=230011, msg="The message was withdrawn.")
        await adapter.deliver(outbound("final answer", turn_id=attached.turn_id))
    assert [card_markdown(m["content"]) for m in feishu.sent] == ["partial …", "final answer"]
    assert feishu.sent[1]["uuid"] == delivery_uuid("acme", attached.turn_id, 0)


async def test_duplicate_event_attaches_no_second_live_sink(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    async with serve(make_adapter(feishu, runtime, live_updates=True)) as client:
        assert (await post_signed(client, fixture("group_mention"))).status == 200
        assert (await post_signed(client, fixture("group_mention"))).status == 200  # Feishu redelivers
    assert len(runtime.turns) == 2 and len(runtime.sinks) == 1


async def test_without_live_updates_no_sink_is_attached(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    async with serve(make_adapter(feishu, runtime)) as client:
        assert (await post_signed(client, fixture("group_mention"))).status == 200
    assert len(runtime.accepted) == 1 and runtime.sinks == []
