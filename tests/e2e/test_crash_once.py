"""SIGKILL of the real server while it sends replies, then a restart: a WebSocket client that
acknowledges what it gets (``ack`` frames, and ``?ack=`` when it reconnects) sees every accepted
message answered exactly once, on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from botframework.testing import wait_until
from tests.e2e.support import ServerProcess, write_config
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.fault, pytest.mark.slow]

USERS = 10
ROUNDS = 2


def _answer(request: RecordedRequest) -> Reply:
    last_user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    text = last_user if isinstance(last_user, str) else "".join(p.get("text", "") for p in last_user)
    return Reply(text=f"echo: {text}", chunks=3, chunk_delay_s=0.03)


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(default=_answer) as server:
        yield server


class AckingClient:
    """A chat client that acknowledges every reply it gets, and names them all when it reconnects."""

    def __init__(self, http: aiohttp.ClientSession, user: str) -> None:
        self.http = http
        self.user = user
        self.frames: list[dict[str, Any]] = []
        self.accepted: set[str] = set()
        self.have: list[str] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self, url: str) -> None:
        query = f"user={self.user}" + (f"&ack={','.join(self.have[-100:])}" if self.have else "")
        self.ws = await self.http.ws_connect(f"{url}/t/acme/ws?{query}", heartbeat=None)
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if frame["type"] == "accepted":
                self.accepted.add(frame["reply_to"])
            elif frame["type"] == "done":
                self.have.append(frame["reply_to"])
                with contextlib.suppress(ConnectionError, RuntimeError):  # dead server: ?ack= on reconnect
                    await ws.send_json({"type": "ack", "reply_to": frame["reply_to"]})

    async def talk(self, prefix: str, count: int) -> None:
        assert self.ws is not None
        for n in range(count):
            try:
                await self.ws.send_json({"type": "message", "id": f"{prefix}-{n}", "text": f"{prefix} {n}"})
            except (ConnectionError, RuntimeError):
                return
            await asyncio.sleep(0.04)

    def dones(self) -> Counter[str]:
        return Counter(f["reply_to"] for f in self.frames if f["type"] == "done")


async def test_sigkill_mid_send_then_restart_repeats_no_acknowledged_reply(
    tmp_path: Path, db_url: str, model: FakeOpenAIServer
) -> None:
    config = write_config(
        tmp_path / "bot.yaml",
        db_url=db_url,
        model_base_url=model.base_url,
        tenants={
            "acme": {
                "agent": {"model": "main"},
                "channels": {"websocket": {"identity": "none", "rate_limit_per_min": 10_000}},
            }
        },
    )
    log = tmp_path / "server.log"
    async with aiohttp.ClientSession() as http:
        clients = [AckingClient(http, f"user{i}") for i in range(USERS)]
        server = ServerProcess(config, log)
        try:
            for round_ in range(ROUNDS):
                url = await server.start()
                for c in clients:
                    await c.connect(url)
                talkers = [asyncio.create_task(c.talk(f"r{round_}-{c.user}", 25)) for c in clients]
                await asyncio.sleep(0.7)  # replies are streaming and being sent
                server.kill()
                assert server.proc is not None
                await server.proc.wait()
                await asyncio.gather(*talkers)
                for c in clients:
                    if c.reader is not None:
                        await c.reader
                server = ServerProcess(config, log)
            url = await server.start()
            for c in clients:
                await c.connect(url)

            async def answered() -> bool:
                return all(c.accepted <= set(c.dones()) for c in clients)

            await wait_until(answered, timeout=60, what="every accepted message answered after the restarts")
            await asyncio.sleep(1.0)  # a repeated reply would arrive now
            for c in clients:
                repeated = {m: n for m, n in c.dones().items() if n > 1}
                assert not repeated, f"{c.user} got a reply it had acknowledged again: {repeated}"
            assert sum(len(c.accepted) for c in clients) >= USERS * ROUNDS
            for c in clients:
                if c.ws is not None:
                    await c.ws.close()
        finally:
            await server.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]
