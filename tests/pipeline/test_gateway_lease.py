"""Gateway leases: one process holds a channel's long-lived connection; another takes over when it dies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from botframework.pipeline.lease import GatewayLease
from botframework.pipeline.roles import libpq_dsn
from botframework.testing import wait_until
from tests.channels.wecom_bot.harness import text_body
from tests.fakes import Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.wecom_bot_ws import FakeWeComBotServer
from tests.pipeline.support import BotProcess, needs_postgresql, write_scaleout_config

pytestmark = needs_postgresql


async def test_only_one_lease_holder_and_the_next_takes_over_on_release(db_url: str) -> None:
    events: list[str] = []

    def lease(who: str) -> GatewayLease:
        async def acquired() -> None:
            events.append(f"{who}+")

        async def lost() -> None:
            events.append(f"{who}-")

        return GatewayLease(dsn=libpq_dsn(db_url), name="test:gw", on_acquired=acquired, on_lost=lost, retry_s=0.2)

    a, b = lease("a"), lease("b")
    a.start()

    async def a_holds() -> bool:
        return a.held

    await wait_until(a_holds, what="a to hold the lease")
    b.start()
    await asyncio.sleep(1.0)
    assert not b.held and events == ["a+"]
    await a.close()

    async def b_holds() -> bool:
        return b.held

    await wait_until(b_holds, timeout=5, what="b to take the lease over")
    await b.close()
    assert events == ["a+", "a-", "b+", "b-"]


def _finished(fake: FakeWeComBotServer, req_id: str) -> bool:
    return any(s.get("finish") for s in fake.stream_frames(req_id))


@pytest.mark.slow
@pytest.mark.fault
async def test_the_gateway_holder_is_killed_and_another_process_takes_over_and_answers(
    tmp_path: Path, db_url: str
) -> None:
    async with (
        FakeOpenAIServer(default=lambda _r: Reply(text="pong", chunks=2)) as model,
        FakeWeComBotServer() as gateway,
    ):
        config = write_scaleout_config(
            tmp_path / "bot.yaml",
            db_url=db_url,
            model_base_url=model.base_url,
            extra_channels={
                "wecom_bot": {
                    "bot_id": gateway.bot_id,
                    "secret": gateway.secret,
                    "ws_url": gateway.url,
                    "stream_interval_s": 0.1,
                }
            },
        )
        first = await BotProcess.ingress(config, tmp_path / "a.log", name="proc-a").start()
        second = await BotProcess.ingress(config, tmp_path / "b.log", name="proc-b").start()
        worker = await BotProcess.worker(config, tmp_path / "w.log", name="proc-w").start()
        try:
            await gateway.subscribed(timeout=20)
            await asyncio.sleep(3.0)  # the second process keeps trying; it must not connect
            assert gateway.connections == 1 and len(gateway.of("aibot_subscribe")) == 1

            req1 = await gateway.message(text_body(msgid="m1", user="zhang", text="ping one"))

            async def answered_1() -> bool:
                return _finished(gateway, req1)

            await wait_until(answered_1, timeout=30, what="the holder to answer")

            await first.kill()
            killed = time.monotonic()

            async def taken_over() -> bool:
                return len(gateway.of("aibot_subscribe")) == 2

            await wait_until(taken_over, timeout=20, what="the other process to connect")
            takeover_s = time.monotonic() - killed
            req2 = await gateway.message(text_body(msgid="m2", user="zhang", text="ping two"))

            async def answered_2() -> bool:
                return _finished(gateway, req2)

            await wait_until(answered_2, timeout=30, what="the new holder to answer")
        finally:
            for p in (worker, second, first):
                await p.stop()
    assert takeover_s < 10
    assert gateway.connections == 2
    assert {r.headers.get("x-process") for r in model.requests} == {"proc-w"}
    for p in (second, worker):
        assert p.tracebacks() == [], (p.name, p.log.read_text()[-3000:])
