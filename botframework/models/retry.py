"""Backoff between retries of one model: bounded, jittered exponential, honouring Retry-After.

Hand-written rather than tenacity/backoff: the router's loop also switches candidates, rebuilds the
request after a context overflow and reports every step to an observer, so only the delay formula
would be reused, and it is two lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from botframework.errors import ModelError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """``base_delay_s * 2**retry`` capped at ``max_delay_s``, times a jitter factor in [1 - jitter, 1].

    A server-stated Retry-After is used as is when it is at most ``max_retry_after_s``; a longer
    one means "not this model for now", so the router moves on to the next candidate instead (and
    comes back to this one only after it, if the turn's time budget reaches that far).
    """

    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    jitter: float = 0.5
    max_retry_after_s: float = 20.0

    def delay(self, retry: int, error: ModelError, random: Random) -> float | None:
        """Seconds before retry number ``retry`` (0-based), or None to give up on this model now."""
        if error.retry_after is not None:
            seconds = float(error.retry_after)
            return None if seconds > self.max_retry_after_s else max(0.0, seconds)
        exp = min(self.max_delay_s, self.base_delay_s * (2.0**retry))
        return exp * (1.0 - self.jitter * random.random())
