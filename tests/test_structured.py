"""The one-shot structured helper: JSON parsing, the stricter retry, tiers, never raising."""

from __future__ import annotations

from collections.abc import AsyncIterator
from random import Random

import pytest

from botframework.errors import AuthError, BadRequestError, ServerError
from botframework.models.base import Usage
from botframework.models.breaker import CircuitBreaker
from botframework.models.router import ModelRouter
from botframework.structured import StructuredCall, extract_json, run_structured
from providers.openai.client import OpenAIClient
from tests.fakes import Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.models.helpers import RecordingObserver, ScriptedClient, Sleeps, config, ok

SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["bug", "question"]}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
}


def classify(**kw: object) -> StructuredCall:
    defaults: dict[str, object] = {
        "instructions": "Classify the message.",
        "input": "the app crashes on start",
        "candidates": ["main"],
        "schema": SCHEMA,
        "max_tokens": 100,
    }
    defaults.update(kw)
    return StructuredCall(**defaults)  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
async def router(server: FakeOpenAIServer) -> AsyncIterator[ModelRouter]:
    client = OpenAIClient(
        name="main",
        config=config(
            base_url=server.base_url, model="gpt-x", tier="small", max_output_tokens=64, context_window=4096
        ),
    )
    r = ModelRouter(clients={"main": client}, sleep=Sleeps(), random=Random(0))
    yield r
    await client.close()


async def test_fenced_json_is_parsed(server: FakeOpenAIServer, router: ModelRouter) -> None:
    server.push(
        Reply(text='```json\n{"label": "bug", "confidence": 0.9}\n```', input_tokens=50, output_tokens=9)
    )
    result = await run_structured(classify(), router=router)
    assert result.ok and result.error is None
    assert result.data == {"label": "bug", "confidence": 0.9}
    assert (result.model, result.calls) == ("main", 1)
    assert result.usage == Usage(input_tokens=50, output_tokens=9)
    [sent] = server.requests
    system = sent.body["messages"][0]["content"]
    assert system.startswith("Classify the message.") and '"required"' in system and "JSON" in system
    assert sent.body["messages"][1] == {"role": "user", "content": "the app crashes on start"}
    assert sent.body["max_tokens"] == 64, "capped by the model's max_output_tokens"
    assert "stream" not in sent.body


async def test_malformed_json_retries_once_with_a_stricter_prompt(
    server: FakeOpenAIServer, router: ModelRouter
) -> None:
    server.push(
        Reply(text="Sure! It is a bug, I think.", input_tokens=40, output_tokens=8),
        Reply(text='{"label": "bug", "confidence": 0.7}', input_tokens=70, output_tokens=10),
    )
    result = await run_structured(classify(), router=router)
    assert result.ok and result.data == {"label": "bug", "confidence": 0.7}
    assert result.calls == 2
    assert result.usage == Usage(input_tokens=110, output_tokens=18)
    retry = server.requests[1].body["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "Sure! It is a bug, I think."
    assert "not valid JSON" in retry[3]["content"] and "only the JSON" in retry[3]["content"]


async def test_schema_mismatch_counts_as_malformed(server: FakeOpenAIServer, router: ModelRouter) -> None:
    server.push(
        Reply(text='{"label": "feature", "confidence": 1}'),
        Reply(text='{"label": "question", "confidence": 0.5}'),
    )
    result = await run_structured(classify(), router=router)
    assert result.data == {"label": "question", "confidence": 0.5}
    assert "does not match the schema at label" in server.requests[1].body["messages"][3]["content"]


async def test_malformed_twice_is_reported_not_raised(server: FakeOpenAIServer, router: ModelRouter) -> None:
    server.push(Reply(text="no json here"), Reply(text="still { not json"))
    result = await run_structured(classify(), router=router)
    assert result.error == "malformed_json" and result.data is None
    assert result.text == "still { not json" and result.calls == 2
    assert "not valid JSON" in result.detail
    assert len(server.requests) == 2, "exactly one stricter retry"


async def test_text_mode_makes_one_call_and_does_not_parse(
    server: FakeOpenAIServer, router: ModelRouter
) -> None:
    server.push(Reply(text="A short summary."))
    result = await run_structured(classify(schema=None, instructions="Summarize."), router=router)
    assert (result.text, result.data, result.error, result.calls) == ("A short summary.", None, None, 1)
    assert server.requests[0].body["messages"][0]["content"] == "Summarize."


async def test_tier_not_allowed(server: FakeOpenAIServer, router: ModelRouter) -> None:
    result = await run_structured(classify(allowed_tiers={"large"}), router=router)
    assert result.error == "tier_not_allowed" and "small" in result.detail
    assert server.requests == []


async def test_allowed_tier_filters_candidates() -> None:
    big = ScriptedClient("big", [ok('{"label": "bug", "confidence": 1}')], tier="large")
    small = ScriptedClient("small", [ok('{"label": "question", "confidence": 0.2}')], tier="small")
    r = ModelRouter(clients={"big": big, "small": small}, sleep=Sleeps())
    result = await run_structured(classify(candidates=["big", "small"], allowed_tiers=["small"]), router=r)
    assert result.model == "small" and result.data == {"label": "question", "confidence": 0.2}
    assert big.requests == []


@pytest.mark.parametrize(
    "errors",
    [
        [ServerError("down"), ServerError("down"), ServerError("down")],
        [AuthError("bad key")],
        [BadRequestError("refused")],
    ],
)
async def test_llm_unavailable_never_raises(errors: list[Exception]) -> None:
    client = ScriptedClient("main", list(errors))  # type: ignore[arg-type]
    observer = RecordingObserver()
    r = ModelRouter(clients={"main": client}, breaker=CircuitBreaker(), sleep=Sleeps())
    result = await run_structured(classify(), router=r, observer=observer)
    assert result.error == "llm_unavailable" and result.data is None
    assert result.detail
    assert len(observer.attempts) == len(errors), "every real call reached the observer (ledger)"


async def test_no_configured_candidate_is_unavailable() -> None:
    r = ModelRouter(clients={}, sleep=Sleeps())
    result = await run_structured(classify(candidates=["ghost"]), router=r)
    assert result.error == "llm_unavailable"


async def test_fit_hook_adjusts_the_request() -> None:
    client = ScriptedClient("main", [ok('{"label": "bug", "confidence": 1}')])
    r = ModelRouter(clients={"main": client}, sleep=Sleeps())

    async def fit(name: str, request):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        return replace(request, max_tokens=17, estimated_prompt_tokens=99)

    result = await run_structured(classify(), router=r, fit=fit)
    assert result.ok
    assert (client.requests[0].max_tokens, client.requests[0].estimated_prompt_tokens) == (17, 99)


def test_invalid_schema_is_a_caller_bug() -> None:
    import asyncio

    with pytest.raises(ValueError, match="invalid JSON schema"):
        asyncio.run(run_structured(classify(schema={"type": 12}), router=ModelRouter(clients={})))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ("```json\n[1, 2]\n```", [1, 2]),
        ('```\n{"a": "```"}\n```', {"a": "```"}),
        ('Here you go: {"a": {"b": 2}} hope it helps', {"a": {"b": 2}}),
        ('Result:\n```JSON\n{"ok": true}\n```\nDone.', {"ok": True}),
    ],
)
def test_extract_json(text: str, value: object) -> None:
    assert extract_json(text) == (value, None)


def test_extract_json_problems() -> None:
    assert extract_json("")[1] == "the reply is empty"
    value, problem = extract_json("nothing")
    assert value is None and problem is not None and problem.startswith("not valid JSON")


async def test_a_reply_cut_off_at_the_output_limit_says_so(server: FakeOpenAIServer, router: ModelRouter) -> None:
    server.push(
        Reply(text='{"label": "bug", "confid', finish_reason="length"),
        Reply(text='{"label": "bug", "conf', finish_reason="length"),
    )
    result = await run_structured(classify(), router=router)
    assert result.error == "malformed_json" and result.calls == 2
    assert result.detail.startswith("the reply was cut off at the output limit, so not valid JSON")
