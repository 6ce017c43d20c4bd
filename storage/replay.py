"""The database side of webhook replay protection (:class:`botframework.replay.NonceStore`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from botframework.errors import StorageError
from storage.db import Database
from storage.tables import WEBHOOK_NONCES

__all__ = ["SqlNonceStore"]

nonces = WEBHOOK_NONCES


class SqlNonceStore:
    """Bindings in ``webhook_nonces``: the unique (tenant, channel, timestamp, nonce) decides the race
    between two processes receiving the same pair at once."""

    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def _bound(self, *, tenant: str, channel: str, timestamp: str, nonce: str) -> str | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(nonces.c.body_sha256).where(
                        nonces.c.tenant == tenant,
                        nonces.c.channel == channel,
                        nonces.c.timestamp == timestamp,
                        nonces.c.nonce == nonce,
                    )
                )
            ).first()
        return None if row is None else str(row.body_sha256)

    async def bind(
        self, *, tenant: str, channel: str, timestamp: str, nonce: str, body_sha256: str, expires_at: datetime
    ) -> str:
        found = await self._bound(tenant=tenant, channel=channel, timestamp=timestamp, nonce=nonce)
        if found is not None:
            return found
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    nonces.insert().values(
                        tenant=tenant,
                        channel=channel,
                        timestamp=timestamp,
                        nonce=nonce,
                        body_sha256=body_sha256,
                        expires_at=expires_at,
                    )
                )
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            found = await self._bound(tenant=tenant, channel=channel, timestamp=timestamp, nonce=nonce)
            if found is None:
                raise
            return found
        return body_sha256

    async def purge(self, *, before: datetime) -> int:
        async with self.db.write() as conn:
            result = await conn.execute(delete(nonces).where(nonces.c.expires_at < before))
        return int(result.rowcount or 0)
