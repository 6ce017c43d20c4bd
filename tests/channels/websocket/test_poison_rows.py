"""A stored row the code cannot read (written by hand, by an old version, by a bug) never locks a
user out: the history replay skips it with a log line, the socket stays open, and the user can
still talk. Rows are inserted directly, on both backends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import text

from botframework.testing import BotHarness
from storage.conversations import find_conversation
from tests.e2e.support import ChatClient


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _broken_contents(dialect: str) -> list[str]:
    """Content values no version of the code writes; PostgreSQL's json type only takes valid JSON."""
    shapes = ['{"not": "a list"}', '[{"type": "text", "text": 5}]', "[1, 2]", '"just a string"']
    return ["this is not json {", "[{", *shapes] if dialect == "sqlite" else shapes


async def test_a_broken_stored_row_is_skipped_and_the_user_can_still_talk(
    db_url: str, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with BotHarness(channel="websocket", channel_config={"identity": "none"}, db_url=db_url) as bot:
        first = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        await first.send("c1", "before the damage")
        await first.wait_for("done", "c1")
        await first.close()

        db = bot.runtime.db
        async with db.write() as conn:
            cid = await find_conversation(conn, tenant=bot.tenant, channel="websocket", key="ann")
            assert cid is not None
            offset = (
                await conn.execute(
                    text('SELECT MAX("offset" + token_count) FROM messages WHERE conversation_id = :cid'), {"cid": cid}
                )
            ).scalar_one()
            for raw in _broken_contents(db.dialect):
                for role in ("user", "assistant"):
                    await conn.execute(
                        text(
                            "INSERT INTO messages (conversation_id, turn_id, turn_start, role, content, is_error, "
                            "token_count, \"offset\", created_at) VALUES (:cid, 'broken', :start, :role, "
                            + ("CAST(:content AS json)" if db.dialect == "postgresql" else ":content")
                            + ", :err, 1, :offset, :at)"
                        ),
                        {
                            "cid": cid,
                            "start": False,
                            "role": role,
                            "content": raw,
                            "err": False,
                            "offset": offset,
                            "at": datetime.now(UTC),
                        },
                    )
                    offset += 1

        caplog.set_level(logging.WARNING)
        again = await ChatClient.connect(http, bot.base_url, bot.tenant, "ann")
        history = (await again.wait_for("history"))["messages"]
        assert [m["text"] for m in history][:2] == ["before the damage", "echo: before the damage"]
        assert all(isinstance(m["text"], str) for m in history)
        await again.send("c2", "after the damage")
        done = await again.wait_for("done", "c2")
        assert done["text"] == "echo: after the damage"
        assert not again.ws.closed
        # the model's history skipped them too
        assert [m.text for m in bot.model.requests[-1].messages] == [
            "before the damage",
            "echo: before the damage",
            "after the damage",
        ]
        await again.close()
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
