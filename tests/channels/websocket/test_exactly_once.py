"""Each socket of a user gets each reply once, and a reply the client acknowledged is never sent
again: not by the redelivery on connect racing the live delivery (two tabs), not after a restart
that lost the record of sending it. Real runtime and server (``BotHarness``), both backends."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from botframework.states import DeliveryStatus
from botframework.testing import BotHarness, Step, wait_until
from storage.tables import DELIVERIES
from tests.e2e.support import ChatClient

USERS = 30


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _dones(client: ChatClient) -> Counter[str]:
    return Counter(f["reply_to"] for f in client.frames if f["type"] == "done")


def _has(client: ChatClient, kind: str, reply_to: str) -> bool:
    return bool(client.of(kind, reply_to))


async def _connect(http: aiohttp.ClientSession, bot: BotHarness, user: str, query: str = "") -> ChatClient:
    ws = await http.ws_connect(f"{bot.base_url}/t/{bot.tenant}/ws?user={user}{query}", heartbeat=None)
    client = ChatClient(http, ws)
    await client.wait_for("history")
    return client


def _slow_echo(bot: BotHarness) -> None:
    rng = random.Random(13)
    bot.model.default = lambda r: Step(text=f"echo: {r.messages[-1].text}", delay_s=rng.uniform(0.05, 0.3))


async def _pending_reply(bot: BotHarness, http: aiohttp.ClientSession, user: str, frame_id: str) -> None:
    """A reply produced while every tab of ``user`` was closed: it waits, pending, for a reconnect."""
    tab = await _connect(http, bot, user)
    await tab.send(frame_id, f"{frame_id} of {user}")
    await tab.wait_for("accepted", frame_id)
    await tab.close()

    async def stored() -> bool:
        return any(m["role"] == "assistant" and frame_id in m["text"] for m in await _transcript(bot, user))

    await wait_until(stored, timeout=20, what=f"the reply to {frame_id}")


def _all_sent(bot: BotHarness, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        async with bot.runtime.db.read() as conn:
            rows = (await conn.execute(DELIVERIES.select())).all()
        return [r.status for r in rows] == [DeliveryStatus.SENT] * count

    return check


async def _transcript(bot: BotHarness, user: str) -> list[dict[str, Any]]:
    return await bot.runtime.transcript(bot.tenant, "websocket", user)


async def test_two_tabs_of_thirty_users_get_one_done_per_message_each(db_url: str, http: aiohttp.ClientSession) -> None:
    async with BotHarness(
        channel="websocket", channel_config={"identity": "none", "rate_limit_per_min": 1000}, db_url=db_url
    ) as bot:
        _slow_echo(bot)
        users = [f"u{i}" for i in range(USERS)]
        for user in users:  # a reply waiting for each user while no tab is open
            await _pending_reply(bot, http, user, "p1")

        async def two_tabs(user: str) -> tuple[ChatClient, ChatClient]:
            # both tabs open at once: both connects redeliver p1, racing each other
            a, b = await asyncio.gather(_connect(http, bot, user), _connect(http, bot, user))
            await a.send("m1", f"first from {user}")  # live delivery to both tabs...
            await a.wait_for("accepted", "m1")
            await b.send("m1", f"first from {user}")  # ...racing a duplicate's redelivery
            await b.send("m2", f"second from {user}")
            return a, b

        tabs = await asyncio.gather(*(two_tabs(u) for u in users))

        async def answered() -> bool:
            return all(_has(t, "done", m) for pair in tabs for t in pair for m in ("m1", "m2"))

        await wait_until(answered, timeout=60, what="m1 and m2 answered in both tabs of every user")
        await asyncio.sleep(0.5)  # a late duplicate would arrive now
        for user, (a, b) in zip(users, tabs, strict=True):
            for name, tab in (("A", a), ("B", b)):
                counts = _dones(tab)
                assert counts["m1"] == 1 and counts["m2"] == 1, (user, name, counts)
                assert counts["p1"] <= 1, (user, name, counts)
            # the reply that waited reached the user in a tab (the other may have it only in its history)
            assert _dones(a)["p1"] + _dones(b)["p1"] >= 1, user
            await a.close()
            await b.close()


async def test_an_acknowledged_reply_is_not_sent_again_after_a_crash_lost_its_sent_mark(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    config = {"identity": "none"}
    async with BotHarness(channel="websocket", channel_config=config, db_url=db_url) as bot:
        tab = await _connect(http, bot, "ann")
        for frame_id in ("c1", "c2", "c3"):
            await tab.send(frame_id, f"hello {frame_id}")
            await tab.wait_for("done", frame_id)
        await wait_until(_all_sent(bot, 3), what="the three replies recorded as sent")
        # A crash between sending a reply and recording it leaves it pending: simulated here, the
        # client has c1..c3 but the server's record says none of them went out.
        async with bot.runtime.db.write() as conn:
            await conn.execute(update(DELIVERIES).values(status=DeliveryStatus.PENDING))
        await tab.ws.send_json({"type": "ack", "reply_to": "c1"})  # recorded by the server
        await tab.ws.send_json({"type": "ack", "reply_to": "nope"})  # no such message: harmless
        await tab.ws.send_json({"type": "ack", "reply_to": 7})
        await tab.wait_for("error")  # a malformed ack is a bad frame, and the socket stays open
        assert [f["kind"] for f in tab.of("error")] == ["bad_frame"]
        await tab.close()

        # c2's ack was lost with the crash: the client names it in ?ack= when it reconnects
        back = await _connect(http, bot, "ann", "&ack=c2,%20bad,")
        await back.wait_for("done", "c3")  # never acknowledged: sent again
        await asyncio.sleep(0.3)
        assert _dones(back) == Counter({"c3": 1}), back.frames
        await back.close()
        again = await _connect(http, bot, "ann")
        await asyncio.sleep(0.3)
        assert not again.of("done"), "a reply was sent again after the client had it"
        await again.close()


async def test_an_ack_frame_marks_the_reply_sent_in_storage(db_url: str, http: aiohttp.ClientSession) -> None:
    async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
        tab = await _connect(http, bot, "bob")
        await tab.send("c1", "hello")
        await tab.wait_for("done", "c1")
        await wait_until(_all_sent(bot, 1), what="the reply recorded as sent")
        async with bot.runtime.db.write() as conn:
            await conn.execute(update(DELIVERIES).values(status=DeliveryStatus.PENDING))
        await tab.ws.send_json({"type": "ack", "reply_to": "c1"})

        async def recorded() -> bool:
            async with bot.runtime.db.read() as conn:
                rows = (await conn.execute(DELIVERIES.select())).all()
            return [r.status for r in rows] == [DeliveryStatus.SENT]

        await wait_until(recorded, what="the ack recorded as sent")
        assert not tab.of("error")
        await tab.close()


async def test_a_socket_open_for_many_replies_remembers_a_bounded_number_of_them(
    db_url: str, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: each socket kept the id of every reply it was sent or acked, for as long as it stayed
    open (a tab left open for days). Only recent ids can race a redelivery; older ones are forgotten."""
    from channels.websocket import adapter as ws_adapter

    monkeypatch.setattr(ws_adapter, "FINALS_KEPT", 4, raising=False)
    async with BotHarness(
        channel="websocket", channel_config={"identity": "none", "rate_limit_per_min": 1000}, db_url=db_url
    ) as bot:
        tab = await _connect(http, bot, "cat")
        for i in range(10):
            await tab.send(f"m{i}", f"message {i}")
            await tab.wait_for("done", f"m{i}")
            await tab.ws.send_json({"type": "ack", "reply_to": f"m{i}"})
        await wait_until(_all_sent(bot, 10), what="every reply recorded as sent")
        adapter = bot.runtime.adapters[(bot.tenant, "websocket")]
        (sock,) = adapter._sockets["cat"]  # type: ignore[attr-defined]
        assert len(sock.finals) <= 4
        assert "m9" in sock.finals and "m0" not in sock.finals
        assert sum(_dones(tab).values()) == 10 and set(_dones(tab).values()) == {1}
        await tab.close()


def test_recent_ids_keeps_the_newest_and_refreshes_a_readded_one() -> None:
    from channels.websocket.adapter import RecentIds

    ids = RecentIds(keep=3)
    ids.update(["a", "b", "c"])
    ids.add("a")  # most recent again
    ids.add("d")
    assert [x for x in "abcd" if x in ids] == ["a", "c", "d"] and len(ids) == 3
    ids.discard("c")
    ids.discard("zz")
    assert len(ids) == 2
