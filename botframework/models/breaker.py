"""A per-model circuit breaker shared by every conversation of the process.

After ``failure_threshold`` consecutive health failures a model is *open*: skipped without a call.
The first opening lasts ``first_cooldown_s``; each failed trial doubles it, up to ``cooldown_s``,
so a short blip costs seconds and a long outage is probed rarely. Then it is *half-open*: one
trial call is let through (others still skip it); success closes the circuit, failure opens it
again.

A caller with nothing else left (every other candidate is down too) may *force* a trial of an
open model: one at a time, at most every ``probe_interval_s``. That is what makes answers resume
within seconds of a recovery when every model was down, instead of after the cooldown.

A server-stated ``Retry-After`` is kept per model and honoured by every caller: no call (forced or
not) goes to that model before it has passed.

Only failures that say something about the endpoint count (server errors, overload, timeouts,
connection drops, incomplete streams, rate limits, auth, billing, unknown model). A context
overflow, a bad request or a content filter is about that one request and leaves the count alone.

Hand-written (about 100 lines) rather than pybreaker/purgatory: those wrap the call and raise their
own exception, have no injectable clock for instant tests, no forced trial and no Retry-After, and
do not keep the error that opened the circuit, which the router reports for a skipped candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from botframework.errors import ErrorKind, ModelError

__all__ = ["HEALTH_KINDS", "BreakerState", "CircuitBreaker", "Permit"]

BreakerState = Literal["closed", "open", "half_open"]
Permit = Literal["call", "trial"]

HEALTH_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.INCOMPLETE_STREAM,
        ErrorKind.AUTH,
        ErrorKind.BILLING,
        ErrorKind.MODEL_NOT_FOUND,
    }
)


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    open_for: float = 0.0
    openings: int = 0
    """Openings since the last success: the cooldown doubles with each."""
    trial_in_flight: bool = False
    last_failure_at: float | None = None
    retry_at: float = 0.0
    """No call before this time: the provider's Retry-After."""
    last_error: ModelError | None = None


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        first_cooldown_s: float = 5.0,
        probe_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if first_cooldown_s <= 0 or cooldown_s <= 0:
            raise ValueError(f"cooldowns must be positive, got {first_cooldown_s} and {cooldown_s}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.first_cooldown_s = min(first_cooldown_s, cooldown_s)
        self.probe_interval_s = probe_interval_s
        self.clock = clock
        """The breaker's time source; the router measures its deadline on the same clock."""
        self._circuits: dict[str, _Circuit] = {}

    def _get(self, model: str) -> _Circuit:
        return self._circuits.setdefault(model, _Circuit())

    def state(self, model: str) -> BreakerState:
        c = self._circuits.get(model)
        if c is None or c.opened_at is None:
            return "closed"
        if self.clock() - c.opened_at < c.open_for:
            return "open"
        return "half_open"

    def remaining_s(self, model: str) -> float:
        """Seconds until an open circuit lets a trial through (0 when not open)."""
        c = self._circuits.get(model)
        if c is None or c.opened_at is None:
            return 0.0
        return max(0.0, c.open_for - (self.clock() - c.opened_at))

    def retry_in(self, model: str) -> float:
        """Seconds the provider still asked us to wait (Retry-After), 0 when none."""
        c = self._circuits.get(model)
        return max(0.0, c.retry_at - self.clock()) if c is not None else 0.0

    def last_error(self, model: str) -> ModelError | None:
        c = self._circuits.get(model)
        return c.last_error if c is not None else None

    def consecutive_failures(self, model: str) -> int:
        c = self._circuits.get(model)
        return c.failures if c is not None else 0

    def available(self, model: str) -> bool:
        """Would :meth:`allow` (unforced) let a call through now? Claims nothing."""
        c = self._circuits.get(model)
        if c is None:
            return True
        if self.clock() < c.retry_at:
            return False
        state = self.state(model)
        return state == "closed" or (state == "half_open" and not c.trial_in_flight)

    def wait_s(self, model: str) -> float:
        """Seconds until a forced :meth:`allow` could succeed (0: now). A trial in flight elsewhere
        has no known end: the probe interval is the time to look again."""
        c = self._circuits.get(model)
        if c is None:
            return 0.0
        now = self.clock()
        wait = max(0.0, c.retry_at - now)
        if c.opened_at is None:
            return wait
        if c.trial_in_flight:
            return max(wait, self.probe_interval_s)
        if self.state(model) == "open" and c.last_failure_at is not None:
            wait = max(wait, c.last_failure_at + self.probe_interval_s - now)
        return wait

    def allow(self, model: str, *, force: bool = False) -> Permit | None:
        """May a call go to ``model`` now? In half-open state this claims the single trial slot.

        ``force``: the caller has no other candidate left, so an open circuit lets a trial through
        too (one at a time, at most every ``probe_interval_s``). Retry-After is never overridden.
        Returns None (skip it), ``"call"`` or ``"trial"``; pass the permit back to ``record_*``.
        """
        c = self._circuits.get(model)
        if c is None:
            return "call"
        now = self.clock()
        if now < c.retry_at:
            return None
        state = self.state(model)
        if state == "closed":
            return "call"
        if c.trial_in_flight:
            return None
        if state == "open":
            if not force:
                return None
            if c.last_failure_at is not None and now - c.last_failure_at < self.probe_interval_s:
                return None
        c.trial_in_flight = True
        return "trial"

    def record_success(self, model: str) -> None:
        c = self._get(model)
        c.failures = 0
        c.opened_at = None
        c.openings = 0
        c.trial_in_flight = False
        c.last_error = None

    def record_failure(self, model: str, error: ModelError, permit: Permit = "call") -> None:
        """Count a failure; errors that say nothing about the endpoint only release a trial slot."""
        c = self._get(model)
        now = self.clock()
        if permit == "trial":
            c.trial_in_flight = False
        if error.retry_after is not None and error.retry_after > 0:
            c.retry_at = max(c.retry_at, now + error.retry_after)
        if error.kind not in HEALTH_KINDS:
            return
        c.failures += 1
        c.last_error = error
        c.last_failure_at = now
        if permit == "trial" or (c.opened_at is None and c.failures >= self.failure_threshold):
            c.openings += 1
            c.open_for = min(self.cooldown_s, self.first_cooldown_s * 2.0 ** (c.openings - 1))
            c.opened_at = now
        elif c.opened_at is not None:
            c.opened_at = now  # a call that was already running when the circuit opened

    def release(self, model: str, permit: Permit = "call") -> None:
        """The call ended without a verdict (cancelled, or the request could not be built)."""
        c = self._circuits.get(model)
        if c is not None and permit == "trial":
            c.trial_in_flight = False
