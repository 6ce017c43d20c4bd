"""Token counting: the cookbook's accounting, tool calls, schemas, images, encodings and fallbacks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
import tiktoken

from botframework.budget import BudgetEngine, InMemoryHistory
from botframework.budget.tokens import (
    FALLBACK_ENCODING,
    REPLY_PRIMING,
    TOOL_CALL_OVERHEAD,
    EncodingRegistry,
    TokenCounter,
)
from botframework.messages import ImagePart, Message, TextPart, ToolCall, ToolSpec
from tests.budget.helpers import agent, budget_config, model, words

CL100K = tiktoken.get_encoding(FALLBACK_ENCODING)


def cookbook_count(messages: list[dict[str, str]]) -> int:
    """num_tokens_from_messages from the OpenAI cookbook (gpt-4 / gpt-3.5-turbo-0613 rules)."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(CL100K.encode(value))
            if key == "name":
                n += 1
    return n + 3


def _engine(**kw: object) -> BudgetEngine:
    return BudgetEngine(config=budget_config(**kw), source=InMemoryHistory())


def test_plain_messages_are_counted_like_the_openai_cookbook() -> None:
    engine = _engine()
    gpt4 = model(name="gpt-4")
    neutral = [
        Message(role="system", content=(TextPart("You are a helpful, pattern-following assistant."),)),
        Message.user("New synergies will help drive top-line growth.", name="example_user"),
        Message.assistant("Things working well together will increase revenue."),
        Message.user("This late pivot means we don't have time to boil the ocean for the client deliverable."),
    ]
    wire = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant."},
        {"role": "user", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "assistant", "content": "Things working well together will increase revenue."},
        {"role": "user", "content": neutral[3].text},
    ]
    ours = sum(engine.count_message(gpt4, m) for m in neutral) + REPLY_PRIMING
    assert ours == cookbook_count(wire)
    assert engine.encodings.choose(gpt4).exact  # gpt-4 is cl100k_base: exact offline


def test_images_cost_the_configured_fixed_amount() -> None:
    engine = _engine(image_tokens=765)
    m = model()
    plain = Message.user("look at this")
    two = Message.user(
        "look at this", images=[ImagePart(url="https://x/a.png"), ImagePart(url="data:image/png;base64,AA")]
    )
    assert engine.count_message(m, two) - engine.count_message(m, plain) == 2 * 765


def test_tool_calls_and_results_count_ids_names_and_arguments() -> None:
    engine = _engine()
    m = model()
    short = Message.assistant(tool_calls=[ToolCall(id="call_1", name="clock", arguments="{}")])
    args = '{"city": "Paris", "units": "metric"}'
    longer = Message.assistant(tool_calls=[ToolCall(id="call_1", name="clock", arguments=args)])
    assert engine.count_message(m, longer) - engine.count_message(m, short) == len(CL100K.encode(args)) - 1
    expected = 3 + 1 + TOOL_CALL_OVERHEAD + len(CL100K.encode("call_1")) + 1 + len(CL100K.encode(args))
    assert engine.count_message(m, longer) == expected
    result = Message.tool_result("call_1", "12:00")
    assert engine.count_message(m, result) == 3 + 1 + len(CL100K.encode("12:00")) + len(CL100K.encode("call_1"))
    parallel = Message.assistant(
        tool_calls=[ToolCall(id="a", name="clock", arguments="{}"), ToolCall(id="b", name="clock", arguments="{}")]
    )
    one = Message.assistant(tool_calls=[ToolCall(id="a", name="clock", arguments="{}")])
    assert engine.count_message(m, parallel) > engine.count_message(m, one)


def test_tool_schemas_are_counted_and_cost_more_when_larger() -> None:
    engine = _engine()
    enc = engine.encoding(model())
    small = ToolSpec(name="clock", description="Current time.")
    big = ToolSpec(
        name="search",
        description=words(40),
        parameters={"type": "object", "properties": {"q": {"type": "string", "description": words(30)}}},
    )
    assert engine.counter.tools(enc, ()) == 0
    assert 0 < engine.counter.tools(enc, (small,)) < engine.counter.tools(enc, (small, big))
    assert engine.counter.tools(enc, (big,)) - engine.counter.tools(enc, (small,)) > 60


def test_special_token_text_in_user_input_is_counted_as_text() -> None:
    engine = _engine()
    assert engine.count_text(model(), "<|endoftext|> and <|im_start|>") > 5


def test_models_without_a_tiktoken_encoding_use_the_fallback_and_say_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("botframework.budget.tokens._LOGGED", set())  # "once" is per process
    engine = _engine()
    _engine()  # a second engine (as config checks + runtime make) must not say it again
    claude = model(provider="anthropic", name="claude-sonnet-4")
    local = model(name="my-local-llama")
    with caplog.at_level(logging.INFO, logger="botframework.budget"):
        for other in (engine, _engine()):
            for _ in range(3):
                other.count_text(claude, "hello")
                other.count_text(local, "hello")
    assert not engine.encodings.choose(claude).exact
    assert engine.encodings.choose(claude).name == FALLBACK_ENCODING
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    # A provider without a local tokenizer is by design (INFO); an unknown model id may be a typo (WARNING).
    assert [level for level, m in said if "claude-sonnet-4" in m] == [logging.INFO]
    assert [level for level, m in said if "my-local-llama" in m] == [logging.WARNING]
    assert any("no local tokenizer" in m for _, m in said if "claude-sonnet-4" in m)
    assert engine.limits(model_name="c", model=claude, agent=agent()).margin == 410  # 10% of 4096


def test_downloads_are_off_when_configured() -> None:
    calls: list[str] = []

    def loader(name: str) -> tiktoken.Encoding:
        calls.append(name)
        return CL100K

    registry = EncodingRegistry(allow_download=False, loader=loader)
    choice = registry.choose(model(name="gpt-4o"))
    assert not choice.exact and calls == []


def test_loading_an_encoding_never_blocks_the_caller() -> None:
    release = threading.Event()
    o200k_standin = tiktoken.Encoding(
        name="o200k_base", pat_str=CL100K._pat_str, mergeable_ranks=CL100K._mergeable_ranks, special_tokens={}
    )

    def slow_loader(name: str) -> tiktoken.Encoding:
        assert name == "o200k_base"
        release.wait(5)
        return o200k_standin

    registry = EncodingRegistry(allow_download=True, loader=slow_loader)
    gpt4o = model(name="gpt-4o")
    started = time.perf_counter()
    first = registry.choose(gpt4o)
    assert time.perf_counter() - started < 0.05
    assert not first.exact and first.name == FALLBACK_ENCODING
    assert not registry.choose(gpt4o).exact  # still loading: still the fallback, no second thread
    release.set()
    deadline = time.monotonic() + 5
    while not registry.choose(gpt4o).exact and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.choose(gpt4o).encoding is o200k_standin


def test_a_failed_load_falls_back_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def failing(name: str) -> tiktoken.Encoding:
        raise ConnectionError("no network")

    registry = EncodingRegistry(allow_download=True, loader=failing)
    gpt4o = model(name="gpt-4o")
    with caplog.at_level(logging.WARNING, logger="botframework.budget"):
        registry.choose(gpt4o)
        for _ in range(100):
            if "o200k_base" in registry._failed:
                break
            time.sleep(0.01)
        for _ in range(3):
            assert not registry.choose(gpt4o).exact
    failures = [r.getMessage() for r in caplog.records if "could not load" in r.getMessage()]
    assert len(failures) == 1 and "no network" in failures[0]


async def test_warm_up_loads_in_a_thread_while_the_loop_runs() -> None:
    def slow_loader(name: str) -> tiktoken.Encoding:
        time.sleep(0.2)
        return CL100K

    registry = EncodingRegistry(allow_download=True, loader=slow_loader)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await registry.warm_up([model(name="gpt-4o")])
    task.cancel()
    assert ticks >= 5
    assert registry.choose(model(name="gpt-4o")).exact


async def test_long_messages_can_be_counted_off_the_loop() -> None:
    engine = _engine()
    m = model()
    big = Message.user(words(30_000))
    assert await engine.acount_message(m, big) == engine.count_message(m, big)


def test_truncate_cuts_on_a_token_boundary() -> None:
    counter = TokenCounter(config=budget_config(), encodings=EncodingRegistry(allow_download=False))
    text = words(500)
    cut = counter.truncate(CL100K, text, 100)
    assert counter.text(CL100K, cut) <= 100 and text.startswith(cut) and len(cut) > 100
    assert counter.truncate(CL100K, "short", 100) == "short"
    assert counter.truncate(CL100K, text, 0) == ""
