"""The fallback chain: retries, backoff, Retry-After, overflow, circuit breaker, observer events."""

from __future__ import annotations

import asyncio
from random import Random

import pytest

from botframework.errors import (
    AllModelsFailedError,
    AuthError,
    BadRequestError,
    BillingError,
    ConfigError,
    ContentFilterError,
    ContextOverflowError,
    ErrorKind,
    IncompleteStreamError,
    InputTooLargeError,
    ModelConnectionError,
    ModelError,
    ModelNotFoundError,
    RateLimitedError,
    ServerError,
)
from botframework.models.base import ModelRequest
from botframework.models.breaker import CircuitBreaker
from botframework.models.retry import RetryPolicy
from botframework.models.router import ModelRouter
from tests.models.helpers import (
    Clock,
    Hangs,
    RecordingObserver,
    ScriptedClient,
    Sleeps,
    Streamed,
    ok,
    request,
)


class Harness:
    def __init__(self, *clients: ScriptedClient, threshold: int = 5, cooldown_s: float = 30.0) -> None:
        self.clients = {c.name: c for c in clients}
        self.clock = Clock()
        self.sleeps = Sleeps(self.clock)
        self.breaker = CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown_s, clock=self.clock)
        self.router = ModelRouter(
            clients=self.clients, breaker=self.breaker, sleep=self.sleeps, random=Random(7)
        )
        self.observer = RecordingObserver()
        self.builds: list[str] = []
        self.overflows: list[tuple[str, int | None]] = []
        self.text: list[str] = []

    async def build(self, name: str) -> ModelRequest:
        self.builds.append(name)
        return request(f"for {name} #{len(self.builds)}", estimated_prompt_tokens=100 + len(self.builds))

    async def on_overflow(self, name: str, error: ContextOverflowError, req: ModelRequest) -> None:
        self.overflows.append((name, error.limit))

    async def on_text(self, text: str) -> None:
        self.text.append(text)

    async def call(self, *candidates: str, stream: bool = True, budget_s: float | None = None):  # type: ignore[no-untyped-def]
        return await self.router.call(
            candidates=candidates or tuple(self.clients),
            build=self.build,
            on_overflow=self.on_overflow,
            on_text=self.on_text if stream else None,
            observer=self.observer,
            deadline=self.router.deadline_in(budget_s) if budget_s is not None else None,
        )


def outcomes(h: Harness) -> list[tuple[str, int, str]]:
    return [(r.model_name, r.attempt, r.outcome) for r in h.observer.attempts]


async def test_first_success_records_one_attempt() -> None:
    h = Harness(ScriptedClient("a", [ok("hi")]), ScriptedClient("b"))
    routed = await h.call()
    assert (routed.model_name, routed.response.text) == ("a", "hi")
    [record] = h.observer.attempts
    assert (record.model_name, record.provider_model, record.attempt, record.outcome) == (
        "a",
        "a-id",
        1,
        "ok",
    )
    assert record.error is None and record.usage.input_tokens == 10 and record.estimated_prompt_tokens == 101
    assert h.clients["b"].requests == []
    assert h.text == ["hi"]


async def test_retryable_errors_back_off_then_succeed() -> None:
    h = Harness(ScriptedClient("a", [ServerError("boom", status=500), ModelConnectionError("drop"), ok()]))
    routed = await h.call()
    assert routed.model_name == "a"
    assert outcomes(h) == [("a", 1, "server_error"), ("a", 2, "connection"), ("a", 3, "ok")]
    policy = RetryPolicy()
    assert len(h.sleeps.delays) == 2
    assert policy.base_delay_s * (1 - policy.jitter) <= h.sleeps.delays[0] <= policy.base_delay_s
    assert 2 * policy.base_delay_s * (1 - policy.jitter) <= h.sleeps.delays[1] <= 2 * policy.base_delay_s
    assert [e[0] for e in h.observer.events] == ["attempt", "retry", "attempt", "retry", "attempt"]
    assert h.builds == ["a"], "a retry resends the same request"


async def test_at_most_max_retries_then_next_candidate_in_order() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("1"), ServerError("2"), ServerError("3"), ok("never")]),
        ScriptedClient("b", [IncompleteStreamError("cut")] * 3),
        ScriptedClient("c", [ok("from c")]),
    )
    routed = await h.call("a", "b", "c")
    assert (routed.model_name, routed.response.text) == ("c", "from c")
    assert [o[:2] for o in outcomes(h)] == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 2),
        ("b", 3),
        ("c", 1),
    ]
    assert len(h.clients["a"].script) == 1, "a 4th attempt on a was never made"
    fallbacks = [e for e in h.observer.events if e[0] == "fallback"]
    assert fallbacks == [("fallback", "a", "b", "server_error"), ("fallback", "b", "c", "incomplete_stream")]
    assert h.builds == ["a", "b", "c"], "each candidate gets a request fitted for it"
    assert len(routed.attempts) == 7


async def test_max_retries_zero_moves_on_at_once() -> None:
    h = Harness(ScriptedClient("a", [ServerError("x")], max_retries=0), ScriptedClient("b"))
    assert (await h.call()).model_name == "b"
    assert h.sleeps.delays == []


async def test_retry_after_is_honoured_exactly() -> None:
    h = Harness(ScriptedClient("a", [RateLimitedError("slow", retry_after=3.5), ok()]))
    await h.call()
    assert h.sleeps.delays == [3.5]
    assert ("retry", "a", 1, "rate_limited", 3.5) in h.observer.events


async def test_retry_after_beyond_the_cap_moves_on_without_waiting() -> None:
    h = Harness(
        ScriptedClient("a", [RateLimitedError("slow", retry_after=600)]), ScriptedClient("b", [ok("b")])
    )
    routed = await h.call()
    assert routed.model_name == "b" and h.sleeps.delays == []
    assert outcomes(h) == [("a", 1, "rate_limited"), ("b", 1, "ok")]


@pytest.mark.parametrize(
    "error",
    [
        AuthError("key", status=401),
        BillingError("quota", status=402),
        ModelNotFoundError("gone", status=404),
        ContentFilterError("no"),
    ],
)
async def test_move_on_at_once_kinds(error: ModelError) -> None:
    h = Harness(ScriptedClient("a", [error, ok("never")]), ScriptedClient("b", [ok("b")]))
    routed = await h.call()
    assert routed.model_name == "b"
    assert outcomes(h) == [("a", 1, error.kind.value), ("b", 1, "ok")]
    assert h.sleeps.delays == []


async def test_content_filter_everywhere_reports_content_filter() -> None:
    h = Harness(
        ScriptedClient("a", [ContentFilterError("no")]), ScriptedClient("b", [ContentFilterError("no")])
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await h.call()
    assert caught.value.last_kind is ErrorKind.CONTENT_FILTER


async def test_bad_request_stops_the_chain() -> None:
    h = Harness(
        ScriptedClient("a", [BadRequestError("invalid temperature", status=400)]), ScriptedClient("b")
    )
    with pytest.raises(BadRequestError, match="invalid temperature"):
        await h.call()
    assert h.clients["b"].requests == []
    assert outcomes(h) == [("a", 1, "bad_request")]


async def test_context_overflow_rebuilds_and_retries_the_same_model_once() -> None:
    h = Harness(
        ScriptedClient("a", [ContextOverflowError("too long", limit=8192, requested=9000), ok("fits")]),
        ScriptedClient("b"),
    )
    routed = await h.call()
    assert routed.model_name == "a"
    assert h.overflows == [("a", 8192)]
    assert h.builds == ["a", "a"]
    assert h.clients["a"].requests[1].messages[0].text == "for a #2", "the rebuilt request was sent"
    assert not any(e[0] in ("retry", "fallback") for e in h.observer.events)
    assert h.sleeps.delays == []


async def test_second_overflow_moves_to_the_next_candidate() -> None:
    h = Harness(
        ScriptedClient("a", [ContextOverflowError("x"), ContextOverflowError("x")]),
        ScriptedClient("b", [ok("bigger window")]),
    )
    routed = await h.call()
    assert routed.model_name == "b"
    assert [o[0] for o in h.overflows] == ["a"]


async def test_all_failed_lists_the_last_error_of_each_candidate_in_order() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("s1"), ServerError("s2"), ServerError("s3")]),
        ScriptedClient("b", [AuthError("bad key")]),
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await h.call()
    assert [(e.model, e.kind) for e in caught.value.attempts] == [
        ("a", ErrorKind.SERVER_ERROR),
        ("b", ErrorKind.AUTH),
    ]
    assert "s3" in str(caught.value.attempts[0])


async def test_budget_error_from_build_propagates() -> None:
    h = Harness(ScriptedClient("a"))

    async def build(name: str) -> ModelRequest:
        raise InputTooLargeError(model=name, needed=9000, available=100)

    with pytest.raises(InputTooLargeError):
        await h.router.call(candidates=["a"], build=build, on_overflow=h.on_overflow)
    assert h.clients["a"].requests == []


async def test_unknown_candidate_is_a_config_error() -> None:
    h = Harness(ScriptedClient("a"))
    with pytest.raises(ConfigError, match="'nope'"):
        await h.call("a", "nope")


async def test_reset_only_after_text_was_streamed() -> None:
    h = Harness(
        ScriptedClient(
            "a",
            [
                ServerError("no text yet"),
                Streamed(["Hel", "lo"], ModelConnectionError("dropped")),
                Streamed(["Hello again"], ok("")),
            ],
        )
    )
    await h.call()
    kinds = [e[0] for e in h.observer.events]
    assert kinds == ["attempt", "retry", "attempt", "retry", "reset", "attempt"]
    assert h.text == ["Hel", "lo", "Hello again"]


async def test_reset_before_fallback_after_streamed_text() -> None:
    h = Harness(ScriptedClient("a", [Streamed(["partial"], AuthError("x"))]), ScriptedClient("b", [ok("b")]))
    await h.call()
    kinds = [e[0] for e in h.observer.events]
    assert kinds == ["attempt", "fallback", "reset", "attempt"]


async def test_reset_before_raising_after_streamed_text() -> None:
    h = Harness(ScriptedClient("a", [Streamed(["half an"], AuthError("x"))]))
    with pytest.raises(AllModelsFailedError):
        await h.call()
    assert [e[0] for e in h.observer.events] == ["attempt", "reset"]
    h2 = Harness(ScriptedClient("a", [Streamed(["half an"], BadRequestError("x"))]))
    with pytest.raises(BadRequestError):
        await h2.call()
    assert [e[0] for e in h2.observer.events] == ["attempt", "reset"]


async def test_each_attempt_is_bounded_by_timeout_s() -> None:
    h = Harness(ScriptedClient("a", [Hangs(), ok("second try")], timeout_s=0.05))
    routed = await h.call()
    assert routed.response.text == "second try"
    assert outcomes(h)[0] == ("a", 1, "timeout")
    assert "timeout_s=0.05" in str(h.observer.attempts[0].error)


async def test_cancellation_propagates_and_frees_a_half_open_trial() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("x"), Hangs()], max_retries=0), threshold=1, cooldown_s=10
    )
    with pytest.raises(AllModelsFailedError):
        await h.call()
    h.clock.now += 11
    assert h.breaker.state("a") == "half_open"
    task = asyncio.create_task(h.call())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.breaker.allow("a") == "trial", "the cancelled trial gave its slot back"


async def test_breaker_opens_after_consecutive_failures_shared_across_calls() -> None:
    h = Harness(ScriptedClient("a", [ServerError("x")] * 3, max_retries=0), ScriptedClient("b"), threshold=3)
    for _ in range(3):
        assert (await h.call()).model_name == "b"
    assert h.breaker.state("a") == "open"
    before = len(h.clients["a"].requests)
    routed = await h.call()
    assert routed.model_name == "b"
    assert len(h.clients["a"].requests) == before, "an open circuit is skipped without a call"
    assert ("fallback", "a", "b", "server_error") in h.observer.events


async def test_open_circuit_everywhere_fails_fast_with_the_last_errors() -> None:
    h = Harness(ScriptedClient("a", [AuthError("bad key")], max_retries=0), threshold=1)
    with pytest.raises(AllModelsFailedError):
        await h.call()
    with pytest.raises(AllModelsFailedError) as caught:
        await h.call()
    [skipped] = caught.value.attempts
    assert skipped.kind is ErrorKind.AUTH
    assert "circuit open" in str(skipped) and "bad key" in str(skipped)
    assert len(h.clients["a"].requests) == 1


async def test_half_open_trial_success_closes_failure_reopens() -> None:
    h = Harness(
        ScriptedClient("a", [ServerError("1"), ServerError("2"), ok("back")], max_retries=0),
        ScriptedClient("b", [ok("b")] * 5),
        threshold=1,
        cooldown_s=30,
    )
    assert (await h.call()).model_name == "b"
    assert h.breaker.state("a") == "open"
    h.clock.now += 31
    assert h.breaker.state("a") == "half_open"
    assert (await h.call()).model_name == "b", "the trial failed"
    assert h.breaker.state("a") == "open"
    h.clock.now += 31
    assert (await h.call()).model_name == "a"
    assert h.breaker.state("a") == "closed" and h.breaker.consecutive_failures("a") == 0


def test_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5, clock=clock)
    breaker.record_failure("m", ServerError("x"))
    assert breaker.state("m") == "closed"
    breaker.record_failure("m", ServerError("y"))
    assert breaker.state("m") == "open" and breaker.allow("m") is None
    clock.now += 5
    assert breaker.allow("m") == "trial"
    assert breaker.allow("m") is None, "only one trial at a time"
    breaker.record_failure("m", BadRequestError("not about health"), "trial")
    assert breaker.allow("m") == "trial", "a non-health outcome only frees the slot"
    breaker.record_success("m")
    assert breaker.state("m") == "closed"


def test_overflow_and_bad_request_do_not_count_as_health_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=Clock())
    breaker.record_failure("m", ContextOverflowError("long"))
    breaker.record_failure("m", BadRequestError("bad"))
    breaker.record_failure("m", ContentFilterError("no"))
    assert breaker.state("m") == "closed"
