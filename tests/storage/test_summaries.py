"""storage.summaries: summary rows and which one is current."""

from __future__ import annotations

from storage.conversations import get_or_create_conversation
from storage.db import Database
from storage.summaries import add_summary, latest_summary


async def test_the_widest_summary_is_the_latest(db: Database) -> None:
    async with db.write() as conn:
        cid = await get_or_create_conversation(conn, tenant="acme", channel="test", key="u")
        other = await get_or_create_conversation(conn, tenant="acme", channel="test", key="v")
    async with db.read() as conn:
        assert await latest_summary(conn, conversation_id=cid) is None
    async with db.write() as conn:
        first = await add_summary(
            conn, conversation_id=cid, upto_offset=500, upto_message_id=12, text="early", token_count=3, model="main"
        )
        wide = await add_summary(
            conn, conversation_id=cid, upto_offset=900, upto_message_id=30, text="wide", token_count=4, model="main"
        )
        await add_summary(
            conn,
            conversation_id=cid,
            upto_offset=700,
            upto_message_id=20,
            text="late but narrower",
            token_count=5,
            model=None,
        )
        await add_summary(
            conn,
            conversation_id=other,
            upto_offset=5000,
            upto_message_id=99,
            text="someone else",
            token_count=2,
            model=None,
        )
    assert first.id != wide.id and wide.text == "wide" and wide.created_at is not None
    async with db.read() as conn:
        found = await latest_summary(conn, conversation_id=cid)
    assert found is not None
    assert (found.id, found.upto_offset, found.upto_message_id, found.text, found.token_count, found.model) == (
        wide.id,
        900,
        30,
        "wide",
        4,
        "main",
    )
