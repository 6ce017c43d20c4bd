"""Who a web chat connection is, what it may send, and what a hostile client cannot do.

Each test runs the real runtime and server (``BotHarness``) on the backend under test and talks to
it over real sockets.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from botframework.identity import signed_user_query
from botframework.testing import BotHarness, Step, wait_until
from channels.websocket.events import event_id_for
from tests.e2e.support import ChatClient

SECRET = "0123456789abcdef-site-secret"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _raw(http: aiohttp.ClientSession, bot: BotHarness, query: str, **kw: Any) -> ChatClient:
    ws = await http.ws_connect(f"{bot.base_url}/t/{bot.tenant}/ws?{query}", heartbeat=None, **kw)
    return ChatClient(http, ws)


async def _user_texts(bot: BotHarness, user: str) -> list[str]:
    return [m["text"] for m in await bot.runtime.transcript(bot.tenant, "websocket", user) if m["role"] == "user"]


# anonymous (the default)


async def test_naming_a_user_is_not_being_them_and_only_the_resume_token_brings_history_back(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with BotHarness(channel="websocket", channel_config={}, db_url=db_url) as bot:
        alice = await ChatClient.connect(http, bot.base_url, bot.tenant, "alice")
        session = await alice.wait_for("session")
        assert session["user"] != "alice" and session["resume"]
        await alice.send("c1", "my secret is 1234")
        await alice.wait_for("done", "c1")
        await alice.close()

        for guess in ("alice", session["user"]):
            mallory = await ChatClient.connect(http, bot.base_url, bot.tenant, guess)
            assert (await mallory.wait_for("history"))["messages"] == []
            assert mallory.user not in ("alice", session["user"])
            await mallory.close()
        forged = session["resume"][:-4] + "AAAA"
        mallory = await ChatClient.connect(http, bot.base_url, bot.tenant, "x", resume=forged)
        assert (await mallory.wait_for("history"))["messages"] == []
        await mallory.close()

        back = await ChatClient.connect(http, bot.base_url, bot.tenant, "whoever", resume=session["resume"])
        history = (await back.wait_for("history"))["messages"]
        assert back.user == session["user"]
        assert [m["text"] for m in history] == ["my secret is 1234", "echo: my secret is 1234"]
        assert history[0]["id"] == "c1"
        await back.close()


async def test_a_resume_token_works_after_a_restart_and_on_another_process(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with BotHarness(channel="websocket", channel_config={}, db_url=db_url) as first:
        client = await ChatClient.connect(http, first.base_url, first.tenant, "")
        session = await client.wait_for("session")
        await client.send("c1", "remember me")
        await client.wait_for("done", "c1")
        await client.close()
        # A second process on the same database, while the first still runs: the key is shared.
        async with BotHarness(channel="websocket", channel_config={}, db_url=db_url) as second:
            other = await ChatClient.connect(http, second.base_url, second.tenant, "", resume=session["resume"])
            history = (await other.wait_for("history"))["messages"]
            assert [m["text"] for m in history][:1] == ["remember me"]
            assert (await other.wait_for("session"))["user"] == session["user"]
            await other.close()
    async with BotHarness(channel="websocket", channel_config={}, db_url=db_url) as restarted:
        again = await ChatClient.connect(http, restarted.base_url, restarted.tenant, "", resume=session["resume"])
        assert (await again.wait_for("session"))["user"] == session["user"]
        await again.close()


# signed


async def test_signed_links_identify_and_bad_or_expired_ones_get_4401_before_any_frame(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    config = {"identity": "signed", "secret": SECRET}
    async with BotHarness(channel="websocket", channel_config=config, db_url=db_url) as bot:
        good = signed_user_query(SECRET, tenant=bot.tenant, user="alice", ttl_s=60)
        client = await _raw(http, bot, good)
        assert (await client.wait_for("session"))["user"] == "alice"
        await client.send("c1", "hi")
        await client.wait_for("done", "c1")
        await client.close()

        expired = signed_user_query(SECRET, tenant=bot.tenant, user="alice", ttl_s=60, now=time.time() - 3600)
        other_tenant = signed_user_query(SECRET, tenant="another", user="alice", ttl_s=60)
        wrong_key = signed_user_query("another-secret-0123456789", tenant=bot.tenant, user="alice", ttl_s=60)
        for query in (expired, other_tenant, wrong_key, "user=alice", good.replace("alice", "bob")):
            refused = await _raw(http, bot, query)
            assert await refused.closed_with() == 4401, query
            assert refused.frames == [], query
        assert await _user_texts(bot, "alice") == ["hi"]


def test_signed_mode_needs_a_secret() -> None:
    from pydantic import ValidationError

    from channels.websocket.config import WebSocketChannelConfig

    with pytest.raises(ValidationError, match="needs a secret"):
        WebSocketChannelConfig.model_validate({"identity": "signed"})


# none


async def test_identity_none_is_announced_at_start_naming_the_tenant(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="channels.websocket"):
        async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
            pass
    [warning] = [r for r in caplog.records if "identity is 'none'" in r.getMessage()]
    assert bot.tenant in warning.getMessage()


# Origin


async def test_a_cross_site_origin_gets_403_and_the_own_or_allowed_origins_connect(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    config = {"allowed_origins": ["https://app.example.com"]}
    async with BotHarness(channel="websocket", channel_config=config, db_url=db_url) as bot:
        url = f"{bot.base_url}/t/{bot.tenant}/ws"
        for origin in ("https://evil.example", "null", "http://127.0.0.1:1", "https://app.example.com.evil"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await http.ws_connect(url, headers={"Origin": origin})
            assert caught.value.status == 403, origin
        for origin in (bot.base_url, "https://app.example.com", None):
            ws = await http.ws_connect(url, headers={"Origin": origin} if origin else {})
            assert json.loads((await ws.receive()).data)["type"] == "session"
            await ws.close()


# rate limit


async def test_forty_messages_at_once_some_are_rate_limited_and_not_stored(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "flooder")
        await client.wait_for("history")
        for i in range(40):
            await client.send(f"m{i}", f"message {i}")

        async def all_answered() -> bool:
            return all(client.of("accepted", f"m{i}") or client.of("error", f"m{i}") for i in range(40))

        await wait_until(all_answered, what="an answer to each of the 40 messages")
        limited = [f["reply_to"] for f in client.of("error") if f.get("kind") == "rate_limited"]
        accepted = [f["reply_to"] for f in client.of("accepted")]
        assert len(accepted) == 30 and len(limited) == 10
        assert set(limited).isdisjoint(accepted)
        stored = await _user_texts(bot, "flooder")
        assert sorted(stored) == sorted(f"message {r[1:]}" for r in accepted)
        await client.close()


# event ids, cancel


@given(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8), st.text(max_size=8))
def test_event_ids_never_collide_across_users(user_a: str, id_a: str, user_b: str, id_b: str) -> None:
    if (user_a, id_a) != (user_b, id_b):
        assert event_id_for(user_a, id_a) != event_id_for(user_b, id_b)


async def test_control_characters_in_user_or_id_are_refused(db_url: str, http: aiohttp.ClientSession) -> None:
    async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
        bad_user = await _raw(http, bot, "user=alice%1Fc1")
        assert await bad_user.closed_with() == 4400
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "bob")
        await client.wait_for("history")
        await client.ws.send_json({"type": "message", "id": "c\x1f1", "text": "hello"})
        error = await client.wait_for("error")
        assert "control characters" in error["message"]
        assert await _user_texts(bot, "bob") == []
        await client.close()


async def test_cancel_is_checked_against_the_owner(db_url: str, http: aiohttp.ClientSession) -> None:
    async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
        bot.model.steps.append(Step(text="slow answer", delay_s=3))
        alice = await ChatClient.connect(http, bot.base_url, bot.tenant, "alice")
        await alice.send("c1", "take your time")
        await alice.wait_for("accepted", "c1")

        async def model_called() -> bool:
            return bool(bot.model.requests)

        await wait_until(model_called, what="the model call to start")
        alice_event = event_id_for("alice", "c1")
        assert not await bot.runtime.cancel(bot.tenant, "websocket", alice_event, conversation_key="bob")
        bob = await ChatClient.connect(http, bot.base_url, bot.tenant, "bob")
        await bob.ws.send_json({"type": "cancel", "id": "c1"})
        done = await alice.wait_for("done", "c1")
        assert done["text"] == "slow answer"
        await alice.close()
        await bob.close()


# hostile frames (they must cost the sender only an error frame)


async def test_a_deeply_nested_frame_gets_an_error_frame_and_the_socket_stays(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with BotHarness(channel="websocket", channel_config={}, db_url=db_url) as bot:
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "")
        await client.wait_for("history")
        await client.ws.send_str("[" * 200_000 + "]" * 200_000)
        await client.ws.send_str('{"type": "message", "id": "c0", "text": ' + "[" * 50_000 + "}")
        error = await client.wait_for("error")
        assert error["kind"] == "bad_frame"
        await client.send("c1", "still there?")
        assert (await client.wait_for("done", "c1"))["text"] == "echo: still there?"
        await client.close()


async def test_a_lone_surrogate_never_locks_a_user_out(db_url: str, http: aiohttp.ClientSession) -> None:
    async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
        client = await ChatClient.connect(http, bot.base_url, bot.tenant, "zoe")
        await client.wait_for("history")
        await client.ws.send_str('{"type": "message", "id": "c1", "text": "hi \\ud83d there"}')
        await client.wait_for("done", "c1")
        await client.close()
        for attempt in range(2):  # every later connection works, history included
            again = await ChatClient.connect(http, bot.base_url, bot.tenant, "zoe")
            history = (await again.wait_for("history"))["messages"]
            assert history[0]["text"] == "hi \ufffd there", attempt
            await again.send(f"d{attempt}", "and now?")
            await again.wait_for("done", f"d{attempt}")
            await again.close()
