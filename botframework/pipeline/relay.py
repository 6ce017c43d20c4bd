"""Live replies across processes: PostgreSQL LISTEN/NOTIFY between workers and the processes holding sockets.

A worker running a turn publishes what the turn streams (``delta``, ``reset``, ``notice``) and, once
the reply is stored, ``done``. Every process that holds client connections listens and forwards to
the sink attached to the turn, or sends the stored reply. Deltas are coalesced for ``interval_s``
(one NOTIFY per turn per interval, not one per token). A notification is best effort: a lost
``done`` (the listener was reconnecting) is caught by the listener's sweep, which looks up the
stored reply of every turn it has a socket waiting for; a lost delta only makes the stream jumpier,
since the final reply carries the whole text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text

from botframework.errors import StorageError
from storage.db import Database

__all__ = ["CHANNEL", "LiveEvent", "RelayListener", "RelayPublisher", "RelaySink"]

log = logging.getLogger("botframework.pipeline.relay")

CHANNEL = "botframework_live"
"""The NOTIFY channel."""
MAX_PAYLOAD_CHARS = 2000
"""NOTIFY payloads are limited to 8000 bytes: long deltas are split (4 UTF-8 bytes a character at worst)."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    turn_id: str
    kind: str
    """``delta``, ``reset``, ``notice`` or ``done``."""
    text: str = ""

    def payload(self) -> str:
        return json.dumps({"t": self.turn_id, "k": self.kind, "x": self.text}, ensure_ascii=False)

    @classmethod
    def parse(cls, payload: str) -> LiveEvent | None:
        try:
            data = json.loads(payload)
            return cls(turn_id=str(data["t"]), kind=str(data["k"]), text=str(data.get("x", "")))
        except (ValueError, KeyError, TypeError):
            return None


def _coalesce(events: list[LiveEvent]) -> list[LiveEvent]:
    """Adjacent deltas of one turn become one; long ones are split to fit a NOTIFY payload."""
    merged: list[LiveEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if event.kind == "delta" and last is not None and last.kind == "delta" and last.turn_id == event.turn_id:
            merged[-1] = LiveEvent(turn_id=event.turn_id, kind="delta", text=last.text + event.text)
        else:
            merged.append(event)
    out: list[LiveEvent] = []
    for event in merged:
        if event.kind == "delta" and len(event.text) > MAX_PAYLOAD_CHARS:
            for start in range(0, len(event.text), MAX_PAYLOAD_CHARS):
                out.append(
                    LiveEvent(turn_id=event.turn_id, kind="delta", text=event.text[start : start + MAX_PAYLOAD_CHARS])
                )
        else:
            out.append(event)
    return out


class RelayPublisher:
    """Sends live events from this process, in order, at most once per ``interval_s``."""

    def __init__(self, *, db: Database, interval_s: float = 0.05) -> None:
        self._db = db
        self._interval_s = interval_s
        self._pending: list[LiveEvent] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def publish(self, event: LiveEvent) -> None:
        """Queue ``event``; deltas wait up to ``interval_s`` to be coalesced, anything else (a reset,
        a notice, ``done``) goes out at once, after what was queued before it."""
        self._pending.append(event)
        if event.kind != "delta":
            self._urgent.set()
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="relay-publisher")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._interval_s)
            self._wake.clear()
            self._urgent.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._send(_coalesce(batch))
            if not self._pending:
                self._idle.set()

    async def _send(self, events: list[LiveEvent]) -> None:
        try:
            async with self._db.write() as conn:
                for event in events:
                    await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": event.payload()})
        except (StorageError, OSError) as exc:
            log.warning("could not relay %d live event(s) (the stored replies still go out): %s", len(events), exc)

    async def flush(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RelaySink:
    """A turn's ``ReplySink`` on a worker: everything goes to the publisher."""

    def __init__(self, publisher: RelayPublisher, turn_id: str) -> None:
        self._publisher = publisher
        self._turn_id = turn_id

    async def delta(self, text: str) -> None:
        self._publisher.publish(LiveEvent(turn_id=self._turn_id, kind="delta", text=text))

    async def reset(self) -> None:
        self._publisher.publish(LiveEvent(turn_id=self._turn_id, kind="reset"))

    async def notice(self, text: str) -> None:
        self._publisher.publish(LiveEvent(turn_id=self._turn_id, kind="notice", text=text))


class RelayListener:
    """LISTENs on a dedicated connection, reconnecting with backoff; ``sweep`` runs after every
    (re)connect and every ``sweep_interval_s``, to catch what was published while not listening."""

    def __init__(
        self,
        *,
        dsn: str,
        on_event: Callable[[LiveEvent], Awaitable[None]],
        sweep: Callable[[], Awaitable[None]],
        sweep_interval_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._on_event = on_event
        self._sweep = sweep
        self._sweep_interval_s = sweep_interval_s
        self._events: asyncio.Queue[LiveEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="relay-listener"),
            loop.create_task(self._dispatch(), name="relay-dispatch"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = LiveEvent.parse(payload)
        if event is not None:
            self._events.put_nowait(event)

    async def _dispatch(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._on_event(event)
            except Exception as exc:  # one bad event must not stop the relay
                log.warning(
                    "relaying a %s event of turn %s failed: %s: %s", event.kind, event.turn_id, type(exc).__name__, exc
                )

    async def _run_sweep(self) -> None:
        try:
            await self._sweep()
        except (StorageError, OSError) as exc:
            log.warning("the reply sweep failed (retried shortly): %s", exc)

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            conn: asyncpg.Connection[Any] | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._received)
                self.connected = True
                delay = 0.2
                await self._run_sweep()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._sweep_interval_s)
                    if not lost.is_set():
                        await conn.execute("SELECT 1")  # notices a dead server between sweeps
                        await self._run_sweep()
                log.warning("lost the live-reply connection to the database; reconnecting")
            except Exception as exc:  # any failure of this session (asyncpg raises several kinds)
                if self.connected:
                    log.warning("live-reply listener: %s: %s; reconnecting", type(exc).__name__, exc)
            finally:
                self.connected = False
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
