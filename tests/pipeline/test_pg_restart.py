"""PostgreSQL restarted under load in scale-out mode: every acknowledged message is answered, without
restarting any bot process (a private server: the machine's shared one is never stopped)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.support import ChatClient, by_reply_to
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.pg_cluster import PgCluster
from tests.pipeline.support import BotProcess, write_scaleout_config

pytestmark = [pytest.mark.slow, pytest.mark.fault]

USERS = [f"user{i}" for i in range(4)]


def _answer(request: RecordedRequest) -> Reply:
    users = [str(m["content"]) for m in request.body["messages"] if m["role"] == "user"]
    return Reply(text="answer to " + users[-1], chunks=4, chunk_delay_s=0.15)


async def test_every_acknowledged_message_is_answered_across_a_database_restart(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    async with FakeOpenAIServer(default=_answer) as model:
        config = write_scaleout_config(tmp_path / "bot.yaml", db_url=pg_cluster.url, model_base_url=model.base_url)
        ingress = await BotProcess.ingress(config, tmp_path / "ingress.log", name="proc-ingress").start()
        workers = [await BotProcess.worker(config, tmp_path / f"w{i}.log", name=f"proc-w{i}").start() for i in (1, 2)]
        try:
            async with aiohttp.ClientSession() as http:
                clients = {u: await ChatClient.connect(http, ingress.url, "acme", u) for u in USERS}
                stop_sending = asyncio.Event()

                async def talk(user: str) -> int:
                    n = 0
                    while not stop_sending.is_set():
                        await clients[user].send(f"m{n}", f"{user} says {n}")
                        n += 1
                        await asyncio.sleep(0.25)
                    return n

                talkers = [asyncio.create_task(talk(u)) for u in USERS]
                await asyncio.sleep(2.0)
                await pg_cluster.outage(3.0)
                await asyncio.sleep(3.0)
                stop_sending.set()
                sent = dict(zip(USERS, await asyncio.gather(*talkers), strict=True))
                accepted = {u: {f["reply_to"] for f in clients[u].of("accepted")} for u in USERS}
                await asyncio.sleep(0.5)
                accepted = {u: {f["reply_to"] for f in clients[u].of("accepted")} for u in USERS}
                for u in USERS:
                    for frame_id in sorted(accepted[u]):
                        await clients[u].wait_for("done", frame_id, timeout=90)
                await asyncio.sleep(2.0)
                frames = {u: list(c.frames) for u, c in clients.items()}
                for c in clients.values():
                    await c.close()
            for p in (ingress, *workers):
                assert p.proc is not None and p.proc.returncode is None, f"{p.name} exited"
        finally:
            for p in (*workers, ingress):
                await p.stop()

    refused = 0
    for u in USERS:
        done = by_reply_to(frames[u], "done")
        assert done == dict.fromkeys(accepted[u], 1), f"{u}: {done}"
        unavailable = [f for f in frames[u] if f["type"] == "error" and f.get("kind") == "unavailable"]
        assert len(accepted[u]) + len(unavailable) == sent[u], f"{u}: every message acknowledged or refused"
        refused += len(unavailable)
    assert sum(len(a) for a in accepted.values()) > refused, "most messages were accepted"
