"""The circuit breaker: growing cooldown, forced trials paced by the probe interval, Retry-After."""

from __future__ import annotations

import pytest

from botframework.errors import RateLimitedError, ServerError
from botframework.models.breaker import CircuitBreaker
from tests.models.helpers import Clock


def _open(breaker: CircuitBreaker, model: str = "m") -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure(model, ServerError("down"))


def test_the_first_cooldown_is_short_and_each_failed_trial_doubles_it_up_to_the_cap() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, first_cooldown_s=2, cooldown_s=10, clock=clock)
    _open(breaker)
    lengths = []
    for _ in range(5):
        assert breaker.state("m") == "open"
        lengths.append(breaker.remaining_s("m"))
        clock.now += breaker.remaining_s("m")
        assert breaker.allow("m") == "trial"
        breaker.record_failure("m", ServerError("still down"), "trial")
    assert lengths == [2, 4, 8, 10, 10]
    clock.now += 10
    assert breaker.allow("m") == "trial"
    breaker.record_success("m")
    _open(breaker)
    assert breaker.remaining_s("m") == 2, "a success resets the growth"


def test_a_forced_trial_is_paced_by_the_probe_interval_one_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30, probe_interval_s=1.0, clock=clock)
    _open(breaker)
    assert breaker.allow("m") is None
    assert breaker.allow("m", force=True) is None, "too soon after the failure"
    assert breaker.wait_s("m") == pytest.approx(1.0)
    clock.now += 1.0
    assert breaker.allow("m") is None, "an unforced call still waits for the cooldown"
    assert breaker.allow("m", force=True) == "trial"
    assert breaker.allow("m", force=True) is None, "only one trial at a time"
    assert breaker.wait_s("m") == pytest.approx(1.0), "look again after a probe interval"
    breaker.record_success("m")
    assert breaker.state("m") == "closed" and breaker.allow("m") == "call"


def test_retry_after_is_honoured_by_every_caller_even_forced() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    breaker.record_failure("m", RateLimitedError("slow down", retry_after=7))
    assert breaker.retry_in("m") == pytest.approx(7)
    clock.now += 6.9
    assert breaker.allow("m", force=True) is None
    assert not breaker.available("m")
    assert breaker.wait_s("m") == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.allow("m", force=True) == "trial"


def test_retry_after_alone_does_not_open_a_healthy_circuit() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=5, clock=clock)
    breaker.record_failure("m", RateLimitedError("slow down", retry_after=2))
    assert breaker.state("m") == "closed"
    assert breaker.allow("m") is None
    clock.now += 2
    assert breaker.allow("m") == "call"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="cooldowns"):
        CircuitBreaker(first_cooldown_s=0)
