"""The shared token cache and JSON client (WeComApi) against the fake WeCom API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from channels.wecom.api import ApiError, WeComApi
from tests.fakes.wecom_api import FakeWeCom

SECRET = "wecom-app-secret-value"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom() as api:
        yield api  # type: ignore[misc]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(fake: FakeWeCom, clock: Clock) -> AsyncIterator[WeComApi]:
    client = WeComApi(corp_id="ww1", secret=SECRET, agent_id="1000002", base_url=fake.base_url, clock=clock)
    yield client
    await client.close()


async def test_gettoken_uses_the_credentials_and_the_token_is_cached(fake: FakeWeCom, api: WeComApi) -> None:
    await api.send_message("ZhangSan", "one")
    await api.send_message("ZhangSan", "two")
    [token_call] = fake.token_calls
    assert token_call.query == {"corpid": "ww1", "corpsecret": SECRET}
    assert [c.query["access_token"] for c in fake.send_calls] == ["TOKEN-1", "TOKEN-1"]
    assert fake.sent[0] == {
        "touser": "ZhangSan",
        "msgtype": "markdown",
        "agentid": 1000002,
        "markdown": {"content": "one"},
    }


async def test_concurrent_calls_share_one_token_fetch(fake: FakeWeCom, api: WeComApi) -> None:
    fake.token_delay = 0.2
    await asyncio.gather(*(api.send_message(f"user{i}", "hi") for i in range(5)))
    assert len(fake.token_calls) == 1
    assert len(fake.sent) == 5


async def test_the_token_is_refreshed_before_it_expires(fake: FakeWeCom, api: WeComApi, clock: Clock) -> None:
    await api.send_message("u", "a")
    clock.now += 7200 - 300 - 1  # inside the margin: still cached
    await api.send_message("u", "b")
    assert len(fake.token_calls) == 1
    clock.now += 2
    await api.send_message("u", "c")
    assert len(fake.token_calls) == 2
    assert fake.send_calls[-1].query["access_token"] == "TOKEN-2"


@pytest.mark.parametrize("expired", [True, False], ids=["42001-expired", "40014-invalid"])
async def test_a_refused_token_is_refreshed_and_the_call_retried_once(
    fake: FakeWeCom, api: WeComApi, expired: bool
) -> None:
    await api.send_message("u", "first")
    fake.expire_tokens()
    if not expired:
        api._token = "garbage"  # a token WeCom never issued: 40014
    await api.send_message("u", "second")
    assert len(fake.token_calls) == 2
    assert [c.query["access_token"] for c in fake.send_calls][-2:] == ["TOKEN-1" if expired else "garbage", "TOKEN-2"]
    assert [b["markdown"]["content"] for b in fake.sent] == ["first", "second"]


async def test_concurrent_refused_calls_refresh_the_token_once(fake: FakeWeCom, api: WeComApi) -> None:
    await api.send_message("u", "warm up")
    fake.expire_tokens()
    fake.token_delay = 0.2
    await asyncio.gather(*(api.send_message(f"user{i}", "hi") for i in range(4)))
    assert len(fake.token_calls) == 2
    assert len(fake.sent) == 5


async def test_a_second_refusal_is_not_retried_again(fake: FakeWeCom, api: WeComApi) -> None:
    await api.send_message("u", "warm up")
    fake.expire_tokens()
    fake.fail_send(42001, times=5)  # even the fresh token is refused
    with pytest.raises(ApiError) as caught:
        await api.send_message("u", "hi")
    assert caught.value.errcode == 42001
    assert len(fake.send_calls) == 3  # warm up, refused, one retry


@pytest.mark.parametrize(
    ("errcode", "retryable", "words"),
    [
        (-1, True, "system busy"),
        (45009, True, "frequency"),
        (45033, True, "concurrency"),
        (60020, False, "trusted IP"),
        (81013, False, "visible range"),
        (45002, False, "too long"),
        (12345, False, "errcode 12345"),
    ],
)
async def test_errcodes_map_to_retryable_or_final(
    fake: FakeWeCom, api: WeComApi, errcode: int, retryable: bool, words: str
) -> None:
    fake.fail_send(errcode)
    with pytest.raises(ApiError) as caught:
        await api.send_message("u", "hi")
    assert caught.value.retryable is retryable
    assert caught.value.errcode == errcode
    assert words in str(caught.value)


async def test_a_token_failure_is_reported_without_the_secret(fake: FakeWeCom, api: WeComApi) -> None:
    fake.fail_token(40001, errmsg="invalid credential")
    with pytest.raises(ApiError) as caught:
        await api.send_message("u", "hi")
    assert caught.value.errcode == 40001 and not caught.value.retryable
    assert "invalid secret" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert fake.send_calls == []


async def test_an_unreachable_api_is_retryable_and_leaks_no_token(fake: FakeWeCom, clock: Clock) -> None:
    client = WeComApi(corp_id="ww1", secret=SECRET, agent_id="1", base_url="http://127.0.0.1:9", clock=clock)
    client._token, client._expires_at = "TOKEN-SECRET-VALUE", clock.now + 100
    try:
        with pytest.raises(ApiError) as caught:
            await client.send_message("u", "hi")
    finally:
        await client.close()
    assert caught.value.retryable
    assert "TOKEN-SECRET-VALUE" not in str(caught.value) and SECRET not in str(caught.value)


async def test_bodies_are_utf8_json_without_unicode_escapes(fake: FakeWeCom, api: WeComApi) -> None:
    await api.send_message("u", "你好 **世界**")
    raw = fake.send_calls[0].raw
    assert "你好 **世界**".encode() in raw
    assert b"\\u" not in raw


async def test_an_invalid_user_is_a_final_failure(fake: FakeWeCom, api: WeComApi) -> None:
    fake.send_response = lambda body: {"errcode": 0, "errmsg": "ok", "invaliduser": "ghost"}  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="ghost") as caught:
        await api.send_message("ghost", "hi")
    assert not caught.value.retryable
