"""Replay protection for signed webhooks: a time window, and one body per (timestamp, nonce).

Vendors that sign a timestamp and a nonce (Feishu, WeCom, WeChat) leave it to the receiver to
reject old or repeated requests; WeChat's plaintext mode does not even sign the body. So, after a
request's signature has been verified, a channel makes one call::

    await self.runtime.check_replay(channel=..., timestamp=..., nonce=..., body=raw, window_s=...)

and answers 401 if it raises :class:`~botframework.errors.SignatureError`:

- a timestamp more than ``window_s`` seconds from the server's clock is refused (``window_s: 0``
  turns the window off, for replaying the vendors' old sample vectors only);
- the first request with a (timestamp, nonce) binds that pair to the SHA-256 of its body; the same
  pair again with the same body passes (a vendor retry, which dedupe then absorbs), with any other
  body it is refused. The binding is kept in the database (:class:`NonceStore`, implemented by
  ``storage.replay``), so it holds across restarts and across every process of a deployment.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from botframework.errors import SignatureError

__all__ = ["MemoryNonceStore", "NonceStore", "ReplayGuard"]

MAX_NONCE_CHARS = 128
MAX_TIMESTAMP_CHARS = 32
RETENTION_WITHOUT_WINDOW_S = 86_400
"""How long a binding is kept when the window is off (it cannot expire with it)."""


class NonceStore(Protocol):
    """Where bindings live; the database in a deployment."""

    async def bind(
        self, *, tenant: str, channel: str, timestamp: str, nonce: str, body_sha256: str, expires_at: datetime
    ) -> str:
        """Bind the pair to ``body_sha256`` unless it is bound already; return the hash it is bound to."""

    async def purge(self, *, before: datetime) -> int:
        """Delete bindings that expired before ``before``; how many."""


class MemoryNonceStore:
    """A NonceStore in process memory (tests, and code embedding one process without a database)."""

    def __init__(self) -> None:
        self._bound: dict[tuple[str, str, str, str], tuple[str, datetime]] = {}

    async def bind(
        self, *, tenant: str, channel: str, timestamp: str, nonce: str, body_sha256: str, expires_at: datetime
    ) -> str:
        key = (tenant, channel, timestamp, nonce)
        return self._bound.setdefault(key, (body_sha256, expires_at))[0]

    async def purge(self, *, before: datetime) -> int:
        old = [k for k, (_, expires) in self._bound.items() if expires < before]
        for k in old:
            del self._bound[k]
        return len(old)


class ReplayGuard:
    """Checks one verified webhook request against the window and the stored bindings."""

    purge_every_s: float = 300.0

    def __init__(self, *, store: NonceStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._last_purge = 0.0

    async def check(self, *, tenant: str, channel: str, timestamp: str, nonce: str, body: bytes, window_s: int) -> None:
        """Raise SignatureError if the request is stale or reuses a (timestamp, nonce) for another body."""
        if not timestamp or not nonce:
            raise SignatureError(f"{channel} request without timestamp or nonce")
        if len(timestamp) > MAX_TIMESTAMP_CHARS or len(nonce) > MAX_NONCE_CHARS:
            raise SignatureError(f"{channel} timestamp or nonce is too long")
        now = self._clock()
        if window_s > 0:
            if not (timestamp.isascii() and timestamp.isdigit()):
                raise SignatureError(f"{channel} timestamp {timestamp!r} is not unix seconds")
            skew = abs(now - int(timestamp))
            if skew > window_s:
                raise SignatureError(
                    f"{channel} timestamp {timestamp} is {int(skew)} s from the server's clock "
                    f"(replay_window_s is {window_s}): stale or replayed request"
                )
        keep_s = 2 * window_s if window_s > 0 else RETENTION_WITHOUT_WINDOW_S
        digest = hashlib.sha256(body).hexdigest()
        bound = await self._store.bind(
            tenant=tenant,
            channel=channel,
            timestamp=timestamp,
            nonce=nonce,
            body_sha256=digest,
            expires_at=datetime.fromtimestamp(now, UTC) + timedelta(seconds=keep_s),
        )
        if bound != digest:
            raise SignatureError(
                f"{channel} timestamp {timestamp} and nonce {nonce!r} were already used with another body: replay"
            )
        if now - self._last_purge > self.purge_every_s:
            self._last_purge = now
            await self._store.purge(before=datetime.fromtimestamp(now, UTC))
