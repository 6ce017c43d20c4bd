"""Turns under model faults, end to end (runtime, real SDKs, fake model servers, both backends):
a chaos model with a fallback, an input only the fallback can hold, overflows that must not poison
later turns, recovery after every model was down, and a complete ledger across a database outage."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from botframework.config.schema import Config
from botframework.errors import StorageError
from botframework.models.breaker import CircuitBreaker
from botframework.models.retry import RetryPolicy
from botframework.runtime import Runtime
from botframework.testing import wait_until
from botframework.turn import Origin
from storage.db import Database
from storage.tables import MODEL_CALLS
from tests.fakes import Disconnect, RecordedRequest, Reply, Step
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import Chaos, FakeOpenAIServer, context_length_exceeded, server_error

BG = Origin.background("faults")
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.4)
"""Short backoff so the scenarios run in seconds; Retry-After is still honoured as stated."""


def openai_model(server: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "context_window": 16384,
        "max_output_tokens": 1024,
        "timeout_s": 10,
        **extra,
    }


class FaultyDatabase(Database):
    """A Database whose writes fail like an unreachable server while ``down`` is set."""

    down = False

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        if self.down:
            raise StorageError(f"database write failed ({self.dialect}): connection refused (simulated outage)")
        async with super().write() as conn:
            yield conn


Factory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def runtime_factory(db_url: str) -> AsyncIterator[Factory]:
    started: list[Runtime] = []

    async def make(models: dict[str, Any], *, db: Database | None = None, **agent: Any) -> Runtime:
        cfg = Config.model_validate(
            {
                "storage": {"url": db_url},
                "models": models,
                "tenants": {"acme": {"agent": {"model": "main", **agent}}},
            }
        )
        rt = Runtime(config=cfg, db=db, channels=False)
        rt.router.policy = FAST
        await rt.start()
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.stop()


async def ledger_rows(rt: Runtime) -> list[Any]:
    async with rt.db.read() as conn:
        return list((await conn.execute(select(MODEL_CALLS).order_by(MODEL_CALLS.c.id))).all())


def retries_before_retry_after(chaos: Chaos, requests: list[RecordedRequest]) -> list[str]:
    """Every request that reached the server sooner than the Retry-After of the 429 before it."""
    got = {id(r): outcome for r, outcome in chaos.outcomes}
    early = []
    for before, after in itertools.pairwise(requests):
        if got.get(id(before)) == "429":
            gap = after.received_at - before.received_at
            if gap < chaos.retry_after_s:
                early.append(f"{gap:.3f}s after a 429")
    return early


@pytest.mark.slow
async def test_a_chaos_model_with_one_fallback_answers_every_turn_and_honours_retry_after(
    runtime_factory: Factory,
) -> None:
    primary_chaos, fallback_chaos = Chaos(seed=13), Chaos(seed=31)
    async with FakeOpenAIServer(default=primary_chaos) as primary, FakeOpenAIServer(default=fallback_chaos) as backup:
        rt = await runtime_factory(
            {"main": openai_model(primary), "backup": openai_model(backup)}, fallback_models=["backup"]
        )
        replies = []
        for n in range(100):
            reply = await rt.ask(tenant="acme", origin=BG, conversation_key=f"user-{n % 10}", text=f"question {n}")
            replies.append(reply)
        rows = await ledger_rows(rt)
    answered = [r for r in replies if not r.is_error and r.text == "ok"]
    assert len(answered) == 100, [r.text for r in replies if r.is_error]
    outcomes = [o for _, o in primary_chaos.outcomes]
    assert outcomes.count("429") >= 20 and outcomes.count("drop") >= 5, "the chaos really happened"
    assert retries_before_retry_after(primary_chaos, primary.requests) == []
    assert retries_before_retry_after(fallback_chaos, backup.requests) == []
    assert len(rows) == len(primary.requests) + len(backup.requests), "one ledger row per real call"
    assert sorted(r.outcome for r in rows if r.model == "main") == sorted(
        {"ok": "ok", "429": "rate_limited", "drop": "connection"}[o] for o in outcomes
    )


async def test_an_input_that_fits_only_the_fallback_is_answered_by_the_fallback(runtime_factory: Factory) -> None:
    async with FakeOpenAIServer() as small, FakeOpenAIServer() as large:
        large.push(Reply(text="the large window read it all"))
        rt = await runtime_factory(
            {
                "main": openai_model(small, context_window=2048, max_output_tokens=256),
                "large": openai_model(large, context_window=32768),
            },
            fallback_models=["large"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="word " * 4000)
        again = await rt.ask(tenant="acme", origin=BG, conversation_key="other", text="short")
    assert not reply.is_error, reply.text
    assert (reply.text, reply.model) == ("the large window read it all", "large")
    assert len(small.requests) == 1, "nothing was sent to the small model for the long input"
    assert (again.text, again.model) == ("ok", "main"), "a short input still goes to the primary"


async def test_no_candidate_holding_the_input_gets_the_input_too_large_message(runtime_factory: Factory) -> None:
    async with FakeOpenAIServer() as small, FakeOpenAIServer() as smaller:
        rt = await runtime_factory(
            {
                "main": openai_model(small, context_window=2048, max_output_tokens=256),
                "tiny": openai_model(smaller, context_window=1024, max_output_tokens=256),
            },
            fallback_models=["tiny"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="word " * 4000)
    assert reply.error_kind == "input_too_large" and "'main'" in reply.text
    assert small.requests == [] and smaller.requests == []


async def test_scripted_overflows_do_not_poison_later_turns(runtime_factory: Factory) -> None:
    bogus = context_length_exceeded(limit=16384, messages=60000, completion=1000)
    async with FakeOpenAIServer() as primary, FakeOpenAIServer() as backup:
        primary.push(bogus, bogus, bogus, bogus)
        rt = await runtime_factory(
            {"main": openai_model(primary, max_output_tokens=2048), "backup": openai_model(backup)},
            fallback_models=["backup"],
        )
        first = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hello")
        second = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hello again")
        long = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="word " * 4000)
    assert [(r.text, r.model) for r in (first, second)] == [("ok", "backup")] * 2, "overflowed twice: fallback"
    assert not long.is_error, long.text
    assert long.model == "main", "the primary's window was not shrunk to a sliver by odd overflow figures"
    assert rt.budget.calibration.window("main", 16384) == 16384, "never below what the provider stated"


async def test_answers_resume_within_seconds_after_every_model_recovers(runtime_factory: Factory) -> None:
    healthy = False

    def answer(_request: RecordedRequest) -> Step:
        return Reply(text="we are back") if healthy else server_error(503)

    async with FakeOpenAIServer(default=answer) as primary, FakeOpenAIServer(default=answer) as backup:
        rt = await runtime_factory(
            {"main": openai_model(primary), "backup": openai_model(backup)},
            fallback_models=["backup"],
            turn_timeout_s=60,
        )
        breaker = rt.router.breaker
        turn = asyncio.create_task(rt.ask(tenant="acme", origin=BG, conversation_key="k", text="anyone there?"))

        async def both_open() -> bool:
            return breaker.state("main") == breaker.state("backup") == "open"

        await wait_until(both_open, what="both circuits to open during the outage")
        assert breaker.remaining_s("main") > 0 and not turn.done(), "the turn kept waiting instead of failing"
        healthy = True
        recovered = time.monotonic()
        reply = await asyncio.wait_for(turn, 10)
        waited = time.monotonic() - recovered
    assert (reply.text, reply.is_error) == ("we are back", False)
    assert waited < breaker.probe_interval_s + 1.5, f"answered {waited:.1f}s after recovery"


async def test_an_attempt_cut_by_the_deadline_reports_the_models_own_failure(runtime_factory: Factory) -> None:
    """The user hears why the model failed (500s), not that the turn's clock cut the last try short."""
    calls = 0

    def answer(_request: RecordedRequest) -> Step:
        nonlocal calls
        calls += 1
        return server_error(500) if calls <= 2 else Reply(text="too late", chunks=5, chunk_delay_s=1.0)

    async with FakeOpenAIServer(default=answer) as fake:
        rt = await runtime_factory({"main": openai_model(fake)}, turn_timeout_s=1.5)
        rt.router.breaker = CircuitBreaker(failure_threshold=1000, clock=rt.router.clock)
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hi")
    assert calls >= 3, "the slow third attempt was made"
    assert reply.error_kind == "server_error" and "unavailable" in reply.text


async def test_a_turn_that_runs_out_of_time_tells_the_user(runtime_factory: Factory) -> None:
    async with FakeOpenAIServer(default=lambda _r: server_error(500)) as fake:
        rt = await runtime_factory({"main": openai_model(fake)}, turn_timeout_s=1.5)
        rt.router.breaker = CircuitBreaker(failure_threshold=1000, clock=rt.router.clock)
        started = time.monotonic()
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hi")
        took = time.monotonic() - started
    assert reply.error_kind == "server_error" and "unavailable" in reply.text
    assert len(fake.requests) > 3, "more than one pass was made"
    assert took < 1.5 + 3.0, "the turn's time budget bounds it (slack for a loaded 2-core machine)"


async def test_the_ledger_is_complete_after_a_database_outage_and_keeps_failed_stream_usage(
    runtime_factory: Factory, db_url: str
) -> None:
    db = FaultyDatabase(db_url)
    steps: list[Step] = [Disconnect(text="cut off after the prompt was billed", after_chunks=1), Reply(text="fine")]

    def answer(_request: RecordedRequest) -> Step:
        step = steps.pop(0)
        db.down = isinstance(step, Disconnect)  # the outage starts with the dropped stream, ends with the retry
        return step

    async with FakeAnthropicServer(default=answer) as fake:
        model = {
            "provider": "anthropic",
            "model": "claude-test",
            "base_url": fake.base_url,
            "api_key": "sk-ant-test",
            "context_window": 200000,
            "max_output_tokens": 1024,
        }
        rt = await runtime_factory({"main": model}, db=db)
        rt.ledger.retry_delays_s = (0.05,)
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hello")

        async def drained() -> bool:
            return rt.ledger.backlog == 0

        await wait_until(drained, what="the buffered ledger rows to be written")
        rows = await ledger_rows(rt)
    assert reply.text == "fine"
    assert [r.outcome for r in rows] == ["connection", "ok"]
    assert rows[0].input_tokens > 0 and rows[0].input_tokens == rows[1].input_tokens, "the failed stream's usage"
    assert rows[0].created_at <= rows[1].created_at


async def test_a_database_failure_mid_turn_is_retried_not_answered_with_an_error(
    runtime_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botframework import invocation

    real = invocation.append_messages
    failures = [StorageError("database write failed (simulated): connection reset")]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(invocation, "append_messages", flaky)
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory({"main": openai_model(fake)})
        rt.storage_retry_delays_s = (0.01,)
        reply = await asyncio.wait_for(rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hi"), 10)
    assert (reply.text, reply.is_error) == ("ok", False)
    assert not failures
