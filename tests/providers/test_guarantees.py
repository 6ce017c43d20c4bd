"""What every provider guarantees, checked the same way for each (the real SDK over HTTP against a
fake of that vendor's API which refuses what the real one refuses): see ``cases.py``."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from botframework.config.schema import Config, ModelConfig
from botframework.errors import AuthError, IncompleteStreamError, ModelConnectionError, RateLimitedError
from botframework.messages import Message
from botframework.models.base import ModelRequest
from botframework.models.registry import build_client
from botframework.runtime import Runtime
from botframework.tools.base import ToolContext, tool
from botframework.turn import Origin
from storage.tables import MODEL_CALLS
from tests.fakes import Disconnect, Reply, ToolCallSpec, Truncated
from tests.providers.cases import CASES, ProviderCase

BG = Origin.background("test")


@tool(
    name="lookup",
    description="Look a word up.",
    parameters={"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
async def lookup(args: Mapping[str, Any], ctx: ToolContext) -> str:
    return f"{args['word']} means something"


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def runtime_factory(db_url: str) -> AsyncIterator[Any]:
    started: list[Runtime] = []

    async def make(models: dict[str, Any], **agent: Any) -> Runtime:
        cfg = Config.model_validate(
            {"storage": {"url": db_url}, "models": models, "tenants": {"acme": {"agent": {"model": "main", **agent}}}}
        )
        rt = Runtime(config=cfg, channels=False, sleep=_no_sleep)
        await rt.start()
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.stop()


def _client(case: ProviderCase, fake: Any, **overrides: Any) -> Any:
    data = {**case.model(fake), "timeout_s": 10, **overrides}
    return build_client("main", ModelConfig.model_validate(data))


def _request(text: str = "hello") -> ModelRequest:
    return ModelRequest(system="You are terse.", messages=[Message.user(text)], max_tokens=200)


class Collect:
    def __init__(self) -> None:
        self.chunks: list[str] = []

    async def __call__(self, text: str) -> None:
        self.chunks.append(text)


async def test_a_streamed_answer_with_usage(case: ProviderCase) -> None:
    async with case.server() as fake:
        fake.push(Reply(text="Hello there, dear friend.", chunks=4, input_tokens=42, output_tokens=6))
        client = _client(case, fake)
        try:
            sink = Collect()
            response = await client.complete(_request(), on_text=sink)
        finally:
            await client.close()
    assert response.text == "Hello there, dear friend." and "".join(sink.chunks) == response.text
    assert len(sink.chunks) > 1, "the answer must arrive in pieces"
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (42, 6)
    assert fake.auth_errors == [] and fake.protocol_errors == []


async def test_a_tool_round_in_the_vendors_format(case: ProviderCase, runtime_factory: Any) -> None:
    async with case.server() as fake:
        fake.push(
            Reply(text="Checking.", tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "ok"}')]),
            Reply(text="It means something."),
        )
        rt = await runtime_factory({"main": case.model(fake)}, tools=["tests.providers.test_guarantees:lookup"])
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="what does ok mean?")
        follow = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="thanks")
    assert not reply.is_error and reply.text.endswith("It means something.")
    assert follow.text == "ok"
    assert len(fake.requests) == 3
    assert [r for r in case.tool_results(fake.requests[1].body) if "ok means something" in r]
    assert [r for r in case.tool_results(fake.requests[2].body) if "ok means something" in r]
    assert fake.protocol_errors == [] and fake.auth_errors == []


async def test_a_429_carries_retry_after(case: ProviderCase) -> None:
    async with case.server() as fake:
        fake.push(case.rate_limited(7))
        client = _client(case, fake)
        try:
            with pytest.raises(RateLimitedError) as info:
                await client.complete(_request(), on_text=Collect())
        finally:
            await client.close()
    assert info.value.retry_after == 7.0
    assert len(fake.requests) == 1, "the SDK's own retries must be off"


async def test_an_overflow_shrinks_the_history_and_retries(case: ProviderCase, runtime_factory: Any) -> None:
    async with case.server(context_window=3000) as fake:
        model = {**case.model(fake), "context_window": 16384, "max_output_tokens": 1024}
        rt = await runtime_factory({"main": model})
        for n in range(12):
            text = f"message {n}: " + " ".join(f"w{i}" for i in range(300))
            reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text=text)
            assert not reply.is_error, reply.text
    async with rt.db.read() as conn:
        outcomes = [r.outcome for r in (await conn.execute(MODEL_CALLS.select())).all()]
    assert "context_overflow" in outcomes, "the fake never rejected: the test did not exercise overflow"
    assert outcomes.count("ok") == 12, "every turn must end in an answer"
    assert all(a != "context_overflow" or b == "ok" for a, b in itertools.pairwise(outcomes))


async def test_a_dropped_or_unfinished_stream_is_an_error(case: ProviderCase) -> None:
    async with case.server() as fake:
        fake.push(Disconnect(after_chunks=2), Truncated())
        client = _client(case, fake)
        try:
            sink = Collect()
            with pytest.raises(ModelConnectionError):
                await client.complete(_request(), on_text=sink)
            with pytest.raises(IncompleteStreamError):
                await client.complete(_request(), on_text=Collect())
        finally:
            await client.close()
    assert sink.chunks, "part of the answer had arrived before the drop"


async def test_refused_credentials_are_an_auth_error(case: ProviderCase) -> None:
    if not case.bad_credentials:
        pytest.skip(f"the {case.name} fake does not check credentials")
    async with case.server() as fake:
        client = _client(case, fake, **case.bad_credentials)
        try:
            with pytest.raises(AuthError):
                await client.complete(_request(), on_text=Collect())
        finally:
            await client.close()
    assert fake.auth_errors
