"""The router over the real SDKs and the fake servers: fallback order, Retry-After, drops, overflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from random import Random

import pytest

from botframework.errors import AllModelsFailedError, ContextOverflowError, ErrorKind
from botframework.messages import Message
from botframework.models.base import ModelClient, ModelRequest
from botframework.models.breaker import CircuitBreaker
from botframework.models.registry import build_client
from botframework.models.router import ModelRouter
from tests.fakes import Disconnect, Reply, Truncated
from tests.fakes.anthropic_server import FakeAnthropicServer, overloaded
from tests.fakes.openai_server import FakeOpenAIServer, rate_limited, server_error
from tests.models.helpers import Clock, RecordingObserver, Sleeps, config


class Setup:
    def __init__(self, openai: FakeOpenAIServer, anthropic: FakeAnthropicServer) -> None:
        self.openai = openai
        self.anthropic = anthropic
        self.clients: dict[str, ModelClient] = {
            "gpt": build_client("gpt", config(base_url=openai.base_url, model="gpt-fake", timeout_s=5)),
            "claude": build_client(
                "claude", config("anthropic", base_url=anthropic.base_url, model="claude-fake", timeout_s=5)
            ),
        }
        self.clock = Clock()
        self.sleeps = Sleeps(self.clock)
        self.router = ModelRouter(
            clients=self.clients, breaker=CircuitBreaker(clock=self.clock), sleep=self.sleeps, random=Random(1)
        )
        self.observer = RecordingObserver()
        self.streamed: list[str] = []
        self.overflows: list[tuple[str, int | None, int | None]] = []
        self.words = 50

    async def build(self, name: str) -> ModelRequest:
        return ModelRequest(system="Be kind.", messages=[Message.user("word " * self.words)], max_tokens=64)

    async def on_overflow(self, name: str, error: ContextOverflowError, request: ModelRequest) -> None:
        self.overflows.append((name, error.limit, error.requested))
        self.words = 5

    async def on_text(self, text: str) -> None:
        self.streamed.append(text)
        self.observer.events.append(("text", text))

    async def call(self, *candidates: str):  # type: ignore[no-untyped-def]
        return await self.router.call(
            candidates=candidates,
            build=self.build,
            on_overflow=self.on_overflow,
            on_text=self.on_text,
            observer=self.observer,
        )


@pytest.fixture
async def setup(fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer) -> AsyncIterator[Setup]:
    s = Setup(fake_openai, fake_anthropic)
    yield s
    for client in s.clients.values():
        await client.close()


async def test_overloaded_primary_falls_back_to_the_next_provider(setup: Setup) -> None:
    setup.openai.push(server_error(529), server_error(503), server_error(500))
    setup.anthropic.push(Reply(text="Fallback answer.", chunks=2))
    routed = await setup.call("gpt", "claude")
    assert routed.model_name == "claude"
    assert routed.response.text == "Fallback answer."
    assert len(setup.openai.requests) == 3 and len(setup.anthropic.requests) == 1
    assert [(r.model_name, r.outcome) for r in setup.observer.attempts] == [
        ("gpt", "overloaded"),
        ("gpt", "overloaded"),
        ("gpt", "server_error"),
        ("claude", "ok"),
    ]
    assert [r.provider_model for r in setup.observer.attempts] == ["gpt-fake"] * 3 + ["claude-fake"]
    assert len(setup.sleeps.delays) == 2
    assert "".join(setup.streamed) == "Fallback answer."


async def test_rate_limit_retry_after_from_the_header(setup: Setup) -> None:
    setup.openai.push(rate_limited(2), Reply(text="after waiting"))
    routed = await setup.call("gpt", "claude")
    assert routed.model_name == "gpt"
    assert setup.sleeps.delays == [2.0]
    assert setup.anthropic.requests == []


async def test_long_retry_after_goes_straight_to_the_fallback(setup: Setup) -> None:
    setup.openai.push(rate_limited(3600))
    setup.anthropic.push(Reply(text="no wait"))
    routed = await setup.call("gpt", "claude")
    assert routed.model_name == "claude" and setup.sleeps.delays == []


async def test_mid_stream_disconnect_resets_and_retries(setup: Setup) -> None:
    setup.openai.push(
        Disconnect(text="The first try was cut", after_chunks=2), Reply(text="Complete answer.")
    )
    routed = await setup.call("gpt")
    assert routed.response.text == "Complete answer."
    events = [e for e in setup.observer.events if e[0] != "text"]
    assert [e[0] for e in events] == ["attempt", "retry", "reset", "attempt"]
    assert setup.observer.attempts[0].outcome == "connection"
    log = setup.observer.events
    reset = log.index(("reset",))
    before = "".join(e[1] for e in log[:reset] if e[0] == "text")
    after = "".join(e[1] for e in log[reset:] if e[0] == "text")
    assert before and "The first try was cut".startswith(before)
    assert after == "Complete answer."


async def test_truncated_stream_is_retried_not_returned(setup: Setup) -> None:
    setup.anthropic.push(Truncated(text="Half an"), Reply(text="A whole answer."))
    routed = await setup.call("claude")
    assert routed.response.text == "A whole answer."
    assert [r.outcome for r in setup.observer.attempts] == ["incomplete_stream", "ok"]


async def test_real_overflow_goes_back_to_the_budget_and_retries_the_same_model(setup: Setup) -> None:
    setup.openai.context_window = 120
    setup.openai.push(Reply(text="short now"))
    routed = await setup.call("gpt", "claude")
    assert routed.model_name == "gpt" and routed.response.text == "short now"
    [(name, limit, requested)] = setup.overflows
    assert (name, limit) == ("gpt", 120) and requested is not None and requested > 120
    assert setup.anthropic.requests == []
    assert [r.outcome for r in setup.observer.attempts] == ["context_overflow", "ok"]


async def test_all_fail_over_http(setup: Setup) -> None:
    setup.openai.push(*(server_error(500) for _ in range(3)))
    setup.anthropic.push(*(overloaded() for _ in range(3)))
    with pytest.raises(AllModelsFailedError) as caught:
        await setup.call("gpt", "claude")
    assert [e.kind for e in caught.value.attempts] == [ErrorKind.SERVER_ERROR, ErrorKind.OVERLOADED]
    assert len(setup.observer.attempts) == 6
