"""A PostgreSQL outage under WebSocket load, against the real server (a subprocess), on a private
cluster the test stops for 5 seconds: every acknowledged message is answered exactly once without
restarting the bot, ``/healthz`` says ``degraded`` (naming storage) and then ``ok`` again, sockets
stay open with an ``error`` frame for what could not be stored, and the log has no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from botframework.testing import wait_until
from tests.e2e.support import ChatClient, ServerProcess, write_config
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.pg_cluster import PgCluster

pytestmark = [pytest.mark.fault, pytest.mark.slow]

USERS = 6
OUTAGE_S = 5.0


def _answer(request: RecordedRequest) -> Reply:
    last_user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    text = last_user if isinstance(last_user, str) else "".join(p.get("text", "") for p in last_user)
    return Reply(text=f"echo: {text}", chunks=4, chunk_delay_s=0.05)


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(default=_answer) as server:
        yield server


def _config(tmp_path: Path, db_url: str, model: FakeOpenAIServer) -> Path:
    return write_config(
        tmp_path / "bot.yaml",
        db_url=db_url,
        model_base_url=model.base_url,
        tenants={
            "acme": {
                "agent": {"model": "main", "system_prompt": "You are the ACME bot."},
                "channels": {"websocket": {"identity": "none", "rate_limit_per_min": 10_000}},
            }
        },
    )


class _User:
    """One chat user sending a message every ``pace`` seconds and keeping what the server said."""

    def __init__(self, client: ChatClient, name: str) -> None:
        self.client = client
        self.name = name
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.sent_at: dict[str, float] = {}

    async def talk(self, stop: asyncio.Event, pace: float = 0.15) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            frame_id = f"{self.name}-m{n}"
            self.sent_at[frame_id] = time.monotonic()
            await self.client.send(frame_id, f"message {n} from {self.name}")
            with contextlib.suppress(AssertionError):  # neither: not acknowledged, so nothing is owed
                await wait_until(self._settled(frame_id), timeout=15)
            (self.accepted if self.client.of("accepted", frame_id) else self.refused).append(frame_id)
            await asyncio.sleep(pace)

    def _settled(self, frame_id: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return bool(self.client.of("accepted", frame_id) or self.client.of("error", frame_id))

        return check

    def finals(self) -> Counter[str]:
        """How many final frames (``done`` or a reply's ``error``) each accepted message got."""
        accepted = set(self.accepted)
        return Counter(
            f["reply_to"] for f in self.client.frames if f["type"] in ("done", "error") and f["reply_to"] in accepted
        )


async def _poll_health(http: aiohttp.ClientSession, url: str, seen: list[dict[str, Any]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with http.get(f"{url}/healthz") as response:
                seen.append({"code": response.status, **(await response.json())})
        except aiohttp.ClientError as exc:
            seen.append({"code": None, "error": str(exc)})
        await asyncio.sleep(0.2)


async def test_postgres_outage_under_websocket_load(
    tmp_path: Path, pg_cluster: PgCluster, model: FakeOpenAIServer
) -> None:
    server = ServerProcess(_config(tmp_path, pg_cluster.url, model), tmp_path / "server.log")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            users = []
            for i in range(USERS):
                client = await ChatClient.connect(http, server.url, "acme", f"user{i}")
                await client.wait_for("history")
                users.append(_User(client, f"user{i}"))
            stop_talking, stop_polling = asyncio.Event(), asyncio.Event()
            health: list[dict[str, Any]] = []
            poller = asyncio.create_task(_poll_health(http, server.url, health, stop_polling))
            talkers = [asyncio.create_task(u.talk(stop_talking)) for u in users]
            try:
                await _outage_under_load(pg_cluster, users, talkers, stop_talking, health, stop_polling, poller)
            finally:
                for task in (poller, *talkers):
                    task.cancel()
            for u in users:
                await u.client.close()
    finally:
        await server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-6000:]
    assert "storage unavailable" in log and "storage is back" in log


async def _outage_under_load(
    pg_cluster: PgCluster,
    users: list[_User],
    talkers: list[asyncio.Task[None]],
    stop_talking: asyncio.Event,
    health: list[dict[str, Any]],
    stop_polling: asyncio.Event,
    poller: asyncio.Task[None],
) -> None:
    await asyncio.sleep(2.0)
    await pg_cluster.outage(OUTAGE_S)
    back_at = time.monotonic()
    probe = users[0].client
    await probe.send("probe", "the first message after the database is back")
    await probe.wait_for("done", "probe", timeout=30)
    first_answer_s = time.monotonic() - back_at
    await asyncio.sleep(max(0.0, 3.0 - first_answer_s))
    stop_talking.set()
    await asyncio.gather(*talkers)

    accepted = [m for u in users for m in u.accepted]

    async def all_answered() -> bool:
        return all(set(u.accepted) <= set(u.finals()) for u in users)

    await wait_until(all_answered, timeout=60, what="an answer to every acknowledged message")
    await asyncio.sleep(1.0)  # a duplicate would come now
    stop_polling.set()
    await poller

    after = [
        (m, u)
        for u in users
        for m in u.accepted
        if u.sent_at[m] >= back_at and any(f["type"] == "done" and f["reply_to"] == m for f in u.client.frames)
    ]
    assert after, "no message was accepted after the database came back"

    for u in users:
        duplicated = {m: n for m, n in u.finals().items() if n != 1}
        assert not duplicated, f"{u.name}: answered more than once: {duplicated}"
        assert not u.client.ws.closed, f"{u.name}'s socket was closed by the outage"
    refused_during = [m for u in users for m in u.refused]
    assert refused_during, "the outage refused nothing: it did not happen while users were talking"
    for u in users:
        for m in u.refused:
            errors = u.client.of("error", m)
            if errors:
                assert errors[0].get("kind") == "unavailable", errors[0]

    statuses = [h.get("status") for h in health]
    first_degraded = statuses.index("degraded")
    assert "storage" in health[first_degraded], health[first_degraded]
    assert health[first_degraded]["code"] == 200
    assert "ok" in statuses[first_degraded:], "healthz never came back to ok"
    assert statuses[-1] == "ok"
    print(
        f"\naccepted {len(accepted)}, refused during the outage {len(refused_during)}, "
        f"answered after recovery {len(after)}, first message after recovery answered in {first_answer_s:.2f}s"
    )
