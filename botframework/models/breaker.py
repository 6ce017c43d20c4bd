"""A per-model circuit breaker shared by every conversation of the process.

After ``failure_threshold`` consecutive health failures a model is *open*: skipped without a call
for ``cooldown_s``. Then it is *half-open*: one trial call is let through (others still skip it);
success closes the circuit, failure opens it for another cooldown.

Only failures that say something about the endpoint count (server errors, overload, timeouts,
connection drops, incomplete streams, rate limits, auth, billing, unknown model). A context
overflow, a bad request or a content filter is about that one request and leaves the count alone.

Hand-written (about 60 lines) rather than pybreaker/purgatory: those wrap the call and raise their
own exception, have no injectable clock for instant tests, and do not keep the error that opened the
circuit, which the router reports for a skipped candidate.
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
    trial_in_flight: bool = False
    last_error: ModelError | None = None


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def _get(self, model: str) -> _Circuit:
        return self._circuits.setdefault(model, _Circuit())

    def state(self, model: str) -> BreakerState:
        c = self._circuits.get(model)
        if c is None or c.opened_at is None:
            return "closed"
        if self._clock() - c.opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    def remaining_s(self, model: str) -> float:
        """Seconds until an open circuit lets a trial through (0 when not open)."""
        c = self._circuits.get(model)
        if c is None or c.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - c.opened_at))

    def last_error(self, model: str) -> ModelError | None:
        c = self._circuits.get(model)
        return c.last_error if c is not None else None

    def consecutive_failures(self, model: str) -> int:
        c = self._circuits.get(model)
        return c.failures if c is not None else 0

    def allow(self, model: str) -> Permit | None:
        """May a call go to ``model`` now? In half-open state this claims the single trial slot.

        Returns None (skip it), ``"call"`` or ``"trial"``; pass the permit back to ``record_*``.
        """
        state = self.state(model)
        if state == "closed":
            return "call"
        if state == "open":
            return None
        c = self._get(model)
        if c.trial_in_flight:
            return None
        c.trial_in_flight = True
        return "trial"

    def record_success(self, model: str) -> None:
        c = self._get(model)
        c.failures = 0
        c.opened_at = None
        c.trial_in_flight = False
        c.last_error = None

    def record_failure(self, model: str, error: ModelError, permit: Permit = "call") -> None:
        """Count a failure; errors that say nothing about the endpoint only release a trial slot."""
        c = self._get(model)
        if permit == "trial":
            c.trial_in_flight = False
        if error.kind not in HEALTH_KINDS:
            return
        c.failures += 1
        c.last_error = error
        if permit == "trial" or c.failures >= self.failure_threshold:
            c.opened_at = self._clock()

    def release(self, model: str, permit: Permit = "call") -> None:
        """The call ended without a verdict (cancelled, or the request could not be built)."""
        c = self._circuits.get(model)
        if c is not None and permit == "trial":
            c.trial_in_flight = False
