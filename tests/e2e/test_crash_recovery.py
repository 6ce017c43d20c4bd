"""SIGKILL the server while turns are in flight; after a restart every accepted message is answered once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.tables import Delivery, TurnRow
from tests.e2e.support import ChatClient, ServerProcess, by_reply_to, write_config
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow

USERS = ["ann", "bob", "cid"]


def _slow_answer(request: RecordedRequest) -> Reply:
    users = [m for m in request.messages if m["role"] == "user"]
    return Reply(
        text="answer to " + " + ".join(str(m["content"]) for m in users[-2:]), chunks=8, chunk_delay_s=0.4
    )


async def test_sigkill_mid_turn_then_restart_answers_every_accepted_message_once(
    tmp_path: Path, db_url: str
) -> None:
    async with FakeOpenAIServer(default=_slow_answer) as model:
        config = write_config(
            tmp_path / "bot.yaml",
            db_url=db_url,
            model_base_url=model.base_url,
            tenants={"acme": {"agent": {"model": "main"}, "channels": {"websocket": {"identity": "none"}}}},
        )
        first = ServerProcess(config, tmp_path / "first.log")
        await first.start()
        frames: dict[str, list[dict[str, object]]] = {}
        accepted: dict[str, set[str]] = {}
        async with aiohttp.ClientSession() as http:
            clients = {u: await ChatClient.connect(http, first.url, "acme", u) for u in USERS}
            for u, client in clients.items():
                await client.send(f"{u}-1", f"first question from {u}")
                await client.send(f"{u}-2", f"second question from {u}")
            for u, client in clients.items():
                await client.wait_for("accepted", f"{u}-1")
                await client.wait_for("accepted", f"{u}-2")
                accepted[u] = {f"{u}-1", f"{u}-2"}
            await clients["ann"].wait_for("delta")
            assert not any(c.of("done") for c in clients.values()), "the model answered before the kill"
            first.kill()
            await first.proc.wait()  # type: ignore[union-attr]
            for u, client in clients.items():
                frames[u] = list(client.frames)
                await client.close()

            second = ServerProcess(config, tmp_path / "second.log")
            await second.start()
            try:
                clients = {u: await ChatClient.connect(http, second.url, "acme", u) for u in USERS}
                for u, client in clients.items():
                    for frame_id in sorted(accepted[u]):
                        await client.wait_for("done", frame_id, timeout=60)
                await asyncio.sleep(1.0)  # let any duplicate show itself
                for u, client in clients.items():
                    frames[u] += client.frames
                    await client.close()
            finally:
                assert await second.stop() == 0

    for u in USERS:
        done = by_reply_to(frames[u], "done")
        assert done == dict.fromkeys(accepted[u], 1), f"{u}: {done}"

    db = Database(db_url)
    try:
        async with db.read() as conn:
            open_turns = (
                await conn.execute(
                    select(func.count())
                    .select_from(TurnRow.__table__)
                    .where(TurnRow.__table__.c.status.in_(("queued", "running")))
                )
            ).scalar_one()
            statuses = (await conn.execute(select(Delivery.__table__.c.status))).scalars().all()
    finally:
        await db.close()
    assert open_turns == 0
    assert statuses and set(statuses) == {"sent"}
