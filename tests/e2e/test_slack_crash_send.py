"""SIGKILL the server while Slack holds a reply part it posted but never confirmed: after a restart, no
part is posted twice (the part in flight is found in the thread by its metadata marker)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from botframework.render import render_chunks
from botframework.testing import long_markdown_reply, wait_until
from channels.slack import SlackAdapter
from channels.slack.render import to_slack
from storage.db import Database
from storage.deliveries import pending_deliveries
from tests.channels.slack.test_conformance import SlackHarness
from tests.e2e.support import ServerProcess, write_config
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.slow, pytest.mark.fault]

TEXT = long_markdown_reply(int((SlackAdapter.message_limit.size or 4000) * 2.5))


def _long_answer(_request: RecordedRequest) -> Reply:
    return Reply(text=TEXT, chunks=4)


@pytest.mark.parametrize("kind", ["mention", "im"])
async def test_sigkill_mid_send_posts_no_slack_part_twice(tmp_path: Path, db_url: str, kind: str) -> None:
    parts = render_chunks(TEXT, to_slack, SlackAdapter.message_limit)
    assert len(parts) >= 3
    harness = SlackHarness(kind)  # type: ignore[arg-type]
    await harness.start()
    try:
        async with FakeOpenAIServer(default=_long_answer) as model:
            config = write_config(
                tmp_path / "bot.yaml",
                db_url=db_url,
                model_base_url=model.base_url,
                tenants={"acme": {"agent": {"model": "main"}, "channels": {"slack": dict(harness.channel_config())}}},
            )
            harness.fake.hold("chat.postMessage", after=1)  # part 2 is posted, its answer never comes
            first = ServerProcess(config, tmp_path / "first.log")
            await first.start()
            try:
                await harness.send(
                    SimpleNamespace(base_url=first.url, tenant="acme"),  # type: ignore[arg-type]
                    conversation="crash",
                    text="write a lot",
                    event_id="crash-1",
                )
                await asyncio.wait_for(harness.fake.holding.wait(), 60)
                first.kill()
                await first.proc.wait()  # type: ignore[union-attr]
            finally:
                await first.stop()
            assert await harness.replies("crash") == parts[:2]

            second = ServerProcess(config, tmp_path / "second.log")
            await second.start()
            try:

                async def nothing_pending() -> bool:
                    db = Database(db_url)
                    try:
                        async with db.read() as conn:
                            return not await pending_deliveries(conn)
                    finally:
                        await db.close()

                await wait_until(nothing_pending, timeout=60, what="the reply to be delivered after the restart")
                await asyncio.sleep(1.0)  # let a duplicate show itself
            finally:
                assert await second.stop() == 0
    finally:
        await harness.stop()

    assert await harness.replies("crash") == parts, "a part was posted twice or lost"
    looked_up = harness.fake.calls_to("conversations.replies") + harness.fake.calls_to("conversations.history")
    assert looked_up, "the part in flight was not looked up before sending again"
    log = (tmp_path / "second.log").read_text()
    assert "Traceback" not in log
