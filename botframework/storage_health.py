"""Whether the database answers, as the last operations found it.

Every ``Database.read()``/``write()`` reports its outcome here: a failure that looks like an outage
(connection refused or lost, server shutting down, pool exhausted) marks storage *down* with a
short reason, the next success marks it *up* again. The rest of the process reads this instead of
guessing: ``/healthz`` says ``degraded`` with the reason, turns waiting to retry wake up the moment
the database is back (rather than sleeping out a long backoff), and the recovery loop
(:mod:`botframework.recovery`) knows when to re-scan the work a failure interrupted.

Failures are described in one short line (:func:`describe`): the error's kind and the first line
of its message. SQLAlchemy's own text carries the SQL statement and its parameters (user text), and
a multi-line traceback per failed request is what turned a 5-second outage into a flooded log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["StorageHealth", "StorageHealthCollector", "describe", "is_outage"]

log = logging.getLogger("botframework.storage")

_MAX_DETAIL = 160

_OUTAGE_MARKERS = (
    "connection",
    "connect call failed",
    "could not connect",
    "server closed",
    "terminating",
    "shutting down",
    "starting up",
    "not yet accepting",
    "timeout",
    "timed out",
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "cannot connect",
    "refused",
)


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: the driver's own error rather than the wrappers around it."""
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "orig", None) or current.__cause__
        if not isinstance(inner, BaseException):
            break
        current = inner
    return current


def describe(exc: BaseException) -> str:
    """``Kind: first line of the message`` of the root cause, short, without SQL or parameters."""
    root = _root(exc)
    first = str(root).strip().splitlines()[0] if str(root).strip() else ""
    if len(first) > _MAX_DETAIL:
        first = first[: _MAX_DETAIL - 1] + "…"
    return f"{type(root).__name__}: {first}" if first else type(root).__name__


def is_outage(exc: BaseException) -> bool:
    """A failure of the database itself (unreachable, restarting, locked), not of one statement."""
    from sqlalchemy import exc as sa_exc

    for candidate in (exc, _root(exc), getattr(exc, "__cause__", None)):
        if candidate is None:
            continue
        if isinstance(candidate, sa_exc.IntegrityError | sa_exc.DataError | sa_exc.ProgrammingError):
            return False
        if isinstance(candidate, OSError | ConnectionError | TimeoutError | sa_exc.TimeoutError):
            return True
        if isinstance(candidate, sa_exc.DBAPIError) and candidate.connection_invalidated:
            return True
        if isinstance(candidate, sa_exc.InterfaceError):
            return True
    root = _root(exc)
    text = f"{type(root).__name__} {root}".lower()
    return any(marker in text for marker in _OUTAGE_MARKERS)


class StorageHealth:
    """Up or down, why, and since when; ``wait_up`` wakes as soon as an operation succeeds again."""

    def __init__(self) -> None:
        self._down_since: float | None = None
        self._reason = ""
        self._kind = ""
        self._up = asyncio.Event()
        self._up.set()
        self.on_down: list[Callable[[], None]] = []
        """Called when storage goes down (the recovery loop registers here)."""
        self.failures = 0
        """Outage failures seen since the process started (each one reported, for tests and metrics)."""

    @property
    def ok(self) -> bool:
        return self._down_since is None

    @property
    def reason(self) -> str:
        return self._reason

    def down_for_s(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def failed(self, exc: BaseException) -> bool:
        """Record a failed operation; True when it is an outage (storage is now marked down)."""
        if not is_outage(exc):
            return False
        self.failures += 1
        self._reason = describe(exc)
        self._kind = type(_root(exc)).__name__
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._up.clear()
            log.warning("storage unavailable: %s; work resumes when the database answers", self._reason)
            for listener in list(self.on_down):
                listener()
        return True

    def succeeded(self) -> None:
        """Record a successful operation: storage is up (logged once when it comes back)."""
        if self._down_since is None:
            return
        log.warning("storage is back after %.1fs (%s)", self.down_for_s(), self._reason)
        self._down_since = None
        self._reason = ""
        self._up.set()

    async def wait_up(self, timeout: float) -> bool:
        """Wait until storage is up (at most ``timeout`` s); True when it is."""
        if self.ok:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    def report(self) -> dict[str, Any] | None:
        """The ``/healthz`` entry while storage is down, else None: the error's kind only (the endpoint is
        public; the message may name hosts), the full reason is in the log."""
        if self.ok:
            return None
        return {
            "status": "unavailable",
            "detail": f"the database does not answer ({self._kind}); accepted messages are kept and "
            "resume when it is back",
            "down_for_s": round(self.down_for_s(), 1),
        }


class StorageHealthCollector(Collector):
    """``botframework_storage_up`` (1 or 0) and ``botframework_storage_outage_failures_total``, read at
    scrape time: what an alert on a database outage needs, without probing on every scrape."""

    def __init__(self, health: StorageHealth) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("botframework_storage_up", "1 when the database answers, 0 during an outage")
        up.add_metric([], 1.0 if self._health.ok else 0.0)
        yield up
        failures = CounterMetricFamily(
            "botframework_storage_outage_failures", "Database operations that failed because the database was down"
        )
        failures.add_metric([], float(self._health.failures))
        yield failures
