"""SIGKILL ``botframework serve`` while a personal WeChat turn runs, then restart it: the message is
answered exactly once, nothing answered before is answered again, and iLink's replays change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from botframework.testing import wait_until
from storage.channel_state import SqlChannelState
from storage.db import Database
from tests.channels.wechat_personal.harness import session_of
from tests.e2e.support import ServerProcess, write_config
from tests.fakes import Hang, RecordedRequest, Reply
from tests.fakes.ilink_api import FakeILink
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow

USER = "o9cq8xYz@im.wechat"


async def test_sigkill_mid_turn_then_restart_answers_once(tmp_path: Path, db_url: str) -> None:
    hung = False

    def answer(request: RecordedRequest) -> Reply | Hang:
        nonlocal hung
        question = str(request.messages[-1]["content"])
        if question == "slow question" and not hung:
            hung = True
            return Hang()
        return Reply(text=f"answer to {question}")

    async with FakeILink(hold_s=0.5) as ilink, FakeOpenAIServer(default=answer) as model:
        db = Database(db_url)
        await db.upgrade()
        await SqlChannelState(db, tenant="acme", channel="wechat_personal").set("session", session_of(ilink))
        await db.close()
        channel = {"api_base_url": ilink.base_url, "cdn_base_url": ilink.cdn_base_url, "session_check_s": 0.2}
        config = write_config(
            tmp_path / "bot.yaml",
            db_url=db_url,
            model_base_url=model.base_url,
            tenants={"acme": {"agent": {"model": "main"}, "channels": {"wechat_personal": channel}}},
        )

        async def answered(n: int) -> None:
            async def enough() -> bool:
                return len(ilink.texts_to(USER)) >= n

            await wait_until(enough, timeout=60, what=f"{n} answers")

        first = ServerProcess(config, tmp_path / "first.log")
        await first.start()
        earlier = await ilink.push("first question", user=USER)
        await answered(1)
        slow = await ilink.push("slow question", user=USER)

        async def model_busy() -> bool:
            return hung

        await wait_until(model_busy, timeout=30, what="the slow model call")
        first.kill()
        await first.proc.wait()  # type: ignore[union-attr]
        assert ilink.texts_to(USER) == ["answer to first question"]

        await ilink.replay(earlier["message_id"])  # iLink replays, before and after the restart
        second = ServerProcess(config, tmp_path / "second.log")
        await second.start()
        try:
            await answered(2)
            await ilink.replay(slow["message_id"])
            await ilink.replay(earlier["message_id"])
            await asyncio.sleep(2.0)  # let a duplicate show itself
        finally:
            assert await second.stop() == 0
    assert ilink.texts_to(USER) == ["answer to first question", "answer to slow question"]
    log = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "Traceback" not in log and ilink.token not in log
