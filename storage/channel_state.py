"""The channel state store (:class:`botframework.channel_state.ChannelState`) on the ``channel_state`` table.

One row per (tenant, channel, key), written with an upsert (``INSERT ... ON CONFLICT DO UPDATE`` on
both SQLite and PostgreSQL), each in its own short transaction so a value is durable when ``set``
returns. Values are never logged; errors name the tenant, channel and key only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.tables import CHANNEL_STATE

__all__ = ["SqlChannelState"]

state = CHANNEL_STATE


class SqlChannelState:
    """The state of one (tenant, channel) in the database."""

    def __init__(self, db: Database, *, tenant: str, channel: str) -> None:
        self._db = db
        self.tenant = tenant
        self.channel = channel

    def _where(self, key: str) -> Any:
        return (state.c.tenant == self.tenant) & (state.c.channel == self.channel) & (state.c.key == key)

    async def get(self, key: str) -> Any | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(state.c.value).where(self._where(key)))).first()
        return None if row is None else row.value

    async def set(self, key: str, value: Any) -> None:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"channel state {self.tenant}/{self.channel}/{key}: values must be JSON, got {type(value).__name__}"
            ) from exc
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        now = datetime.now(UTC)
        insert = dialect.insert(state).values(
            tenant=self.tenant, channel=self.channel, key=key, value=value, updated_at=now
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[state.c.tenant, state.c.channel, state.c.key],
            set_={"value": insert.excluded.value, "updated_at": now},
        )
        async with self._db.write() as conn:
            await conn.execute(upsert)

    async def delete(self, key: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(state).where(self._where(key)))
