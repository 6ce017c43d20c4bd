"""Deployment keys: random secrets created once and shared by every process through the database."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from botframework.errors import StorageError
from storage.db import Database
from storage.tables import DEPLOYMENT_KEYS

__all__ = ["deployment_key"]

keys = DEPLOYMENT_KEYS


async def _read(db: Database, name: str) -> bytes | None:
    async with db.read() as conn:
        row = (await conn.execute(select(keys.c.value).where(keys.c.name == name))).first()
    return None if row is None else bytes.fromhex(row.value)


async def deployment_key(db: Database, name: str) -> bytes:
    """The 32-byte key called ``name``, created on first use; concurrent first uses agree on one."""
    found = await _read(db, name)
    if found is not None:
        return found
    value = secrets.token_bytes(32)
    try:
        async with db.write() as conn:
            await conn.execute(keys.insert().values(name=name, value=value.hex(), created_at=datetime.now(UTC)))
    except StorageError as exc:
        if not isinstance(exc.__cause__, IntegrityError):
            raise
        found = await _read(db, name)
        if found is None:
            raise
        return found
    return value
