"""The channel state store on both backends: upsert, isolation per (tenant, channel), JSON only."""

from __future__ import annotations

import pytest

from botframework.channel_state import MemoryChannelState
from storage.channel_state import SqlChannelState
from storage.db import Database


async def test_set_get_replace_delete(db: Database) -> None:
    state = SqlChannelState(db, tenant="acme", channel="wechat_personal")
    assert await state.get("session") is None
    await state.set("session", {"bot_token": "t-1", "bot_id": "b@im.bot"})
    await state.set("cursor", "abc")
    await state.set("session", {"bot_token": "t-2", "bot_id": "b@im.bot"})
    assert await state.get("session") == {"bot_token": "t-2", "bot_id": "b@im.bot"}
    assert await state.get("cursor") == "abc"
    await state.delete("cursor")
    await state.delete("cursor")  # absent: no error
    assert await state.get("cursor") is None


async def test_tenants_and_channels_do_not_see_each_other(db: Database) -> None:
    acme = SqlChannelState(db, tenant="acme", channel="wechat_personal")
    globex = SqlChannelState(db, tenant="globex", channel="wechat_personal")
    other = SqlChannelState(db, tenant="acme", channel="wecom_bot")
    await acme.set("cursor", "acme-cursor")
    await globex.set("cursor", "globex-cursor")
    assert await acme.get("cursor") == "acme-cursor"
    assert await globex.get("cursor") == "globex-cursor"
    assert await other.get("cursor") is None
    await globex.delete("cursor")
    assert await acme.get("cursor") == "acme-cursor"


async def test_survives_a_new_connection_pool(db_url: str) -> None:
    first = Database(db_url)
    await first.upgrade()
    await SqlChannelState(first, tenant="acme", channel="c").set("k", [1, "two", {"three": 3.0}])
    await first.close()
    second = Database(db_url)
    try:
        assert await SqlChannelState(second, tenant="acme", channel="c").get("k") == [1, "two", {"three": 3.0}]
    finally:
        await second.close()


@pytest.mark.parametrize("make", ["sql", "memory"])
async def test_values_must_be_json(db: Database, make: str) -> None:
    state = SqlChannelState(db, tenant="acme", channel="c") if make == "sql" else MemoryChannelState()
    with pytest.raises(TypeError, match="JSON"):
        await state.set("k", {1, 2})
    assert await state.get("k") is None
