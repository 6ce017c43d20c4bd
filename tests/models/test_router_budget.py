"""The router's time budget: passes until the deadline, Retry-After across calls, half-open trials
when every candidate is down, fallbacks that fit, attempts cut by the deadline, usage of failures."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from botframework.errors import (
    AllModelsFailedError,
    AuthError,
    ErrorKind,
    InputTooLargeError,
    ModelConnectionError,
    ModelNotFoundError,
    RateLimitedError,
    ServerError,
)
from botframework.models.base import ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.router import ModelRouter
from tests.models.helpers import Clock, Hangs, ScriptedClient, ok
from tests.models.test_router import Harness


class TimedClient(ScriptedClient):
    """A scripted client that notes the (fake) time of every call."""

    def __init__(self, name: str, clock: Clock, script: Any = (), **cfg: Any) -> None:
        super().__init__(name, script, **cfg)
        self.clock = clock
        self.times: list[float] = []

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        self.times.append(self.clock.now)
        return await super().complete(request, on_text=on_text)


async def test_a_call_keeps_trying_past_one_pass_until_a_candidate_answers() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("a down")] * 7 + [ok("a is back")]),
        ScriptedClient("b", [ServerError("b down")] * 50),
        threshold=1000,
    )
    routed = await h.call(budget_s=120)
    assert (routed.model_name, routed.response.text) == ("a", "a is back")
    order = [r.model_name for r in h.observer.attempts]
    assert order[:6] == ["a", "a", "a", "b", "b", "b"], "one pass: the primary with its retries, then the fallback"
    assert order.count("a") == 8
    assert h.clock.now - 1000 < 120
    retries = [e for e in h.observer.events if e[0] == "retry"]
    assert all(e[4] > 0 for e in retries)


async def test_without_a_deadline_one_pass_is_made() -> None:
    h = Harness(ScriptedClient("a", [ServerError("a")] * 10), ScriptedClient("b", [ServerError("b")] * 10))
    with pytest.raises(AllModelsFailedError):
        await h.call()
    assert len(h.observer.attempts) == 6


async def test_the_deadline_ends_the_call_with_the_last_error_of_each_candidate() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("a down")] * 1000),
        ScriptedClient("b", [ModelConnectionError("b unreachable")] * 1000),
        threshold=1000,
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await h.call(budget_s=30)
    assert [(e.model, e.kind) for e in caught.value.attempts] == [
        ("a", ErrorKind.SERVER_ERROR),
        ("b", ErrorKind.CONNECTION),
    ]
    assert len(h.observer.attempts) > 6, "more than one pass was made"
    assert h.clock.now - 1000 <= 30, "no wait runs past the deadline"


async def test_permanent_failures_end_the_call_at_once_despite_time_left() -> None:
    h = Harness(ScriptedClient("a", [AuthError("bad key")]), ScriptedClient("b", [ModelNotFoundError("no such")]))
    with pytest.raises(AllModelsFailedError) as caught:
        await h.call(budget_s=120)
    assert [e.kind for e in caught.value.attempts] == [ErrorKind.AUTH, ErrorKind.MODEL_NOT_FOUND]
    assert h.sleeps.delays == [] and len(h.observer.attempts) == 2


async def test_retry_after_holds_for_every_call_and_is_never_undercut() -> None:
    a = TimedClient("a", Clock(), [RateLimitedError("slow down", retry_after=5)], max_retries=0)
    b = TimedClient("b", Clock(), [ok("b answers")] + [ServerError("b down")] * 100)
    h = Harness(a, b, threshold=1000)
    a.clock = b.clock = h.clock
    limited_at = h.clock.now
    assert (await h.call(budget_s=120)).model_name == "b"
    routed = await h.call(budget_s=120)
    assert routed.model_name == "a", "b kept failing, so the call waited for a's Retry-After"
    assert a.times[0] == limited_at and len(a.times) == 2
    assert a.times[1] >= limited_at + 5, "a was not called again before the provider allowed it"
    assert len(b.times) > 1


async def test_an_open_circuit_gets_a_trial_when_every_candidate_is_down() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("a down")] * 3 + [ok("a recovered")]),
        ScriptedClient("b", [ServerError("b down")] * 100),
        threshold=2,
        cooldown_s=30,
    )
    with pytest.raises(AllModelsFailedError):
        await h.call()
    assert h.breaker.state("a") == h.breaker.state("b") == "open"
    started = h.clock.now
    routed = await h.call(budget_s=120)
    assert routed.model_name == "a" and routed.response.text == "a recovered"
    assert h.clock.now - started <= 2.0, "answered within a probe interval, not after the cooldown"
    assert h.breaker.state("a") == "closed"


async def test_a_recovered_primary_is_back_after_the_first_short_cooldown() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("blip")], max_retries=0),
        ScriptedClient("b", [ok("b")] * 5),
        threshold=1,
        cooldown_s=30,
    )
    assert (await h.call(budget_s=120)).model_name == "b"
    assert h.breaker.state("a") == "open"
    h.clock.now += h.breaker.first_cooldown_s
    assert (await h.call(budget_s=120)).model_name == "a"


async def test_an_input_too_large_for_the_primary_goes_to_a_fallback_that_holds_it() -> None:
    h = Harness(ScriptedClient("a"), ScriptedClient("b"), ScriptedClient("c", [ok("c holds it")]))

    async def build(name: str) -> ModelRequest:
        if name in ("a", "b"):
            raise InputTooLargeError(model=name, needed=9000, available=4000)
        return await h.build(name)

    routed = await h.router.call(candidates=["a", "b", "c"], build=build, on_overflow=h.on_overflow)
    assert (routed.model_name, routed.response.text) == ("c", "c holds it")
    assert h.clients["a"].requests == [] and h.clients["b"].requests == []


async def test_an_input_no_candidate_holds_reports_the_primarys_limit() -> None:
    h = Harness(ScriptedClient("a"), ScriptedClient("b"))

    async def build(name: str) -> ModelRequest:
        raise InputTooLargeError(model=name, needed=9000, available=4000 if name == "a" else 6000)

    with pytest.raises(InputTooLargeError) as caught:
        await h.router.call(
            candidates=["a", "b"], build=build, on_overflow=h.on_overflow, deadline=h.router.deadline_in(120)
        )
    assert caught.value.model == "a"
    assert h.sleeps.delays == []


async def test_the_deadline_cuts_an_attempt_without_blaming_the_model() -> None:
    h = Harness(ScriptedClient("a", [Hangs()], timeout_s=60))
    with pytest.raises(AllModelsFailedError) as caught:
        await h.call(budget_s=0.05)
    [error] = caught.value.attempts
    assert error.kind is ErrorKind.TIMEOUT and "time budget" in str(error)
    assert h.breaker.consecutive_failures("a") == 0


async def test_a_failed_attempt_keeps_the_usage_the_provider_reported() -> None:
    dropped = ModelConnectionError("dropped mid-stream")
    dropped.usage = Usage(input_tokens=1200, output_tokens=40)
    h = Harness(ScriptedClient("a", [dropped, ok("second try")]))
    await h.call()
    first, second = h.observer.attempts
    assert (first.outcome, first.usage) == ("connection", Usage(input_tokens=1200, output_tokens=40))
    assert second.outcome == "ok"


def test_a_router_measures_its_deadline_on_the_breakers_clock() -> None:
    h = Harness(ScriptedClient("a"))
    assert h.router.deadline_in(10) == h.clock.now + 10
    assert ModelRouter(clients={}).clock is not None


class Outage(TimedClient):
    """Fails with 503 until the (fake) clock reaches ``until``, then answers."""

    def __init__(self, name: str, until: float) -> None:
        super().__init__(name, Clock())
        self.until = until

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        self.times.append(self.clock.now)
        if self.clock.now < self.until:
            raise ServerError("service unavailable", status=503, overloaded=True)
        return ok(f"{self.name} is back")


async def test_answers_resume_within_a_probe_interval_once_the_models_recover() -> None:
    recovery = 1000 + 40.0
    a, b = Outage("a", recovery), Outage("b", recovery + 3600)
    h = Harness(a, b, threshold=2, cooldown_s=30)
    a.clock = b.clock = h.clock
    routed = await h.call(budget_s=120)
    assert routed.response.text == "a is back"
    assert h.breaker.consecutive_failures("a") == 0
    assert a.times[-1] - recovery <= h.breaker.probe_interval_s + 0.1, "not the cooldown, not a long backoff"
    during = [t for t in a.times if 1010 < t < recovery]
    assert len(during) >= 20, "a dead model was probed about once a second"
    assert all(y - x >= h.breaker.probe_interval_s - 1e-9 for x, y in itertools.pairwise(during))
