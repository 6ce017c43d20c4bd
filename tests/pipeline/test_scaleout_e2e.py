"""An ingress and two worker processes on PostgreSQL; one worker is SIGKILLed under load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from botframework.testing import wait_until
from tests.e2e.support import ChatClient, by_reply_to
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.pipeline.support import BotProcess, needs_postgresql, write_scaleout_config

pytestmark = [pytest.mark.slow, needs_postgresql]

USERS = [f"user{i}" for i in range(6)]


def _user_texts(request: RecordedRequest) -> list[str]:
    return [str(m["content"]) for m in request.body["messages"] if m["role"] == "user"]


def _answer(request: RecordedRequest) -> Reply:
    return Reply(text="answer to " + " + ".join(_user_texts(request)[-3:]), chunks=5, chunk_delay_s=0.2)


def _sent_order_problems(requests: list[RecordedRequest], sent: dict[str, list[str]]) -> list[str]:
    """Every request's user messages of one conversation are a prefix of what that user sent, in order."""
    problems = []
    for r in requests:
        texts = _user_texts(r)
        user = texts[0].split(" ", 1)[0] if texts else ""
        if texts != sent.get(user, [])[: len(texts)]:
            problems.append(f"{user}: request saw {texts}, sent {sent.get(user)}")
    return problems


async def test_ingress_and_two_workers_answer_every_message_once_when_a_worker_is_killed(
    tmp_path: Path, db_url: str
) -> None:
    async with FakeOpenAIServer(default=_answer) as model:
        config = write_scaleout_config(tmp_path / "bot.yaml", db_url=db_url, model_base_url=model.base_url)
        ingress = await BotProcess.ingress(config, tmp_path / "ingress.log").start()
        w1 = await BotProcess.worker(config, tmp_path / "w1.log", name="w1").start()
        w2 = await BotProcess.worker(config, tmp_path / "w2.log", name="w2").start()
        sent: dict[str, list[str]] = {u: [] for u in USERS}
        try:
            async with aiohttp.ClientSession() as http:
                clients = {u: await ChatClient.connect(http, ingress.url, "acme", u) for u in USERS}

                async def burst(user: str, round_: int, size: int) -> None:
                    for i in range(size):
                        text = f"{user} says r{round_}m{i}"
                        sent[user].append(text)
                        await clients[user].send(f"r{round_}m{i}", text)
                        await asyncio.sleep(0.05)

                await asyncio.gather(*(burst(u, 1, 3) for u in USERS))
                for u in USERS:  # round 1 answered: both workers took part
                    for i in range(3):
                        await clients[u].wait_for("done", f"r1m{i}", timeout=60)
                before_kill = {r.headers.get("x-process") for r in model.requests}
                assert {"w1", "w2"} <= before_kill, f"not both workers answered before the kill: {before_kill}"

                await asyncio.gather(*(burst(u, 2, 3) for u in USERS))

                async def w1_mid_round_2() -> bool:
                    return any(
                        r.headers.get("x-process") == "w1" and "r2" in " ".join(_user_texts(r)) for r in model.requests
                    )

                await wait_until(w1_mid_round_2, timeout=30, what="w1 to run a round-2 turn")  # kill it mid-turn
                await asyncio.sleep(0.3)
                await w1.kill()
                killed_at = time.monotonic()
                killed_after = len(model.requests)

                await asyncio.gather(*(burst(u, 3, 2) for u in USERS))
                for u in USERS:
                    for frame_id in [f"r2m{i}" for i in range(3)] + [f"r3m{i}" for i in range(2)]:
                        await clients[u].wait_for("done", frame_id, timeout=90)
                await asyncio.sleep(2.0)  # let any duplicate show itself
                frames = {u: list(c.frames) for u, c in clients.items()}
                for c in clients.values():
                    await c.close()
        finally:
            codes = {p.name: await p.stop() for p in (w1, w2, ingress)}

    assert time.monotonic() - killed_at > 0
    for u in USERS:
        done = by_reply_to(frames[u], "done")
        expected = [f"r1m{i}" for i in range(3)] + [f"r2m{i}" for i in range(3)] + [f"r3m{i}" for i in range(2)]
        dupes = [f for f in frames[u] if f["type"] == "done" and done.get(f["reply_to"], 0) > 1]
        assert done == dict.fromkeys(expected, 1), f"{u}: {done} {dupes}"
        assert not [f for f in frames[u] if f["type"] == "error"], frames[u]
        assert [f for f in frames[u] if f["type"] == "delta"], f"{u}: no live text relayed from the workers"
    after = {r.headers.get("x-process") for r in model.requests[killed_after:]}
    assert after == {"w2"}, f"after the kill only the survivor calls the model: {after}"
    assert "ingress" not in {r.headers.get("x-process") for r in model.requests}
    assert _sent_order_problems(model.requests, sent) == []
    for p in (ingress, w2):
        assert p.tracebacks() == [], (p.name, p.log.read_text()[-3000:])
    assert codes == {"w1": -9, "w2": 0, "ingress": 0}, "SIGTERM: a clean exit"
