"""The turn loop end to end: real SDKs over HTTP against the fake model servers."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from botframework.config.schema import Config
from botframework.hooks import Deny, ToolDecision, TurnHooks
from botframework.messages import Message, ToolCall
from botframework.models.base import ModelRequest
from botframework.runtime import Runtime
from botframework.tools.base import ToolContext, tool
from botframework.turn import Origin
from storage.tables import MODEL_CALLS
from tests.fakes import Fail, RecordedRequest, Reply, ToolCallSpec
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer, server_error

BG = Origin.background("test")
RUNS: list[str] = []
GATE: dict[str, asyncio.Event] = {}
STARTED: dict[str, asyncio.Event] = {}


@tool(
    name="lookup",
    description="Look a word up.",
    parameters={"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
async def lookup(args: Mapping[str, Any], ctx: ToolContext) -> str:
    RUNS.append(args["word"])
    if args["word"] in STARTED:
        STARTED[args["word"]].set()
    gate = GATE.get(args["word"])
    if gate is not None:
        await gate.wait()
    return f"{args['word']} means something"


class DenyLookup(TurnHooks):
    async def approve_tool(self, ctx: ToolContext, call: ToolCall) -> ToolDecision:
        return Deny("lookups are disabled here") if call.name == "lookup" else await super().approve_tool(ctx, call)


class Annotate(TurnHooks):
    async def before_model(self, ctx: ToolContext, request: ModelRequest, model_name: str) -> ModelRequest:
        return ModelRequest(
            system=request.system + " [policy: be brief]",
            messages=request.messages,
            tools=request.tools,
            max_tokens=request.max_tokens,
            estimated_prompt_tokens=request.estimated_prompt_tokens,
        )


def openai_model(server: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "context_window": 16384,
        "max_output_tokens": 2048,
        **extra,
    }


@pytest.fixture
async def runtime_factory(db_url: str) -> AsyncIterator[Any]:
    started: list[Runtime] = []

    async def make(models: dict[str, Any], **agent: Any) -> Runtime:
        """A started runtime for tenant acme; backoff sleeps are skipped."""
        cfg = Config.model_validate(
            {
                "storage": {"url": db_url},
                "models": models,
                "tenants": {"acme": {"agent": {"model": "main", **agent}}},
            }
        )
        rt = Runtime(config=cfg, channels=False, sleep=_no_sleep)
        await rt.start()
        started.append(rt)
        return rt

    RUNS.clear()
    GATE.clear()
    STARTED.clear()
    yield make
    for rt in started:
        await rt.stop()


def last(request: RecordedRequest) -> dict[str, Any]:
    return request.messages[-1]


async def test_a_tool_round_then_an_answer_with_ledger_rows(runtime_factory: Any) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(text="Let me check.", tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "ok"}')]),
            Reply(text="It means something."),
        )
        rt = await runtime_factory({"main": openai_model(fake)}, tools=["tests.test_invocation:lookup"])
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="what does ok mean?")
        second = fake.requests[1].messages
    assert reply.text == "Let me check.\n\nIt means something." and not reply.is_error
    assert RUNS == ["ok"]
    call_id = second[-2]["tool_calls"][0]["id"]
    assert second[-1] == {"role": "tool", "tool_call_id": call_id, "content": "ok means something"}
    assert fake.protocol_errors == []
    async with rt.db.read() as conn:
        rows = (await conn.execute(MODEL_CALLS.select())).all()
    assert [(r.outcome, r.origin, r.purpose) for r in rows] == [("ok", "background:test", "turn")] * 2
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in rows)


@pytest.mark.parametrize(
    ("arguments", "name", "problem"),
    [
        ('{"word": ', "lookup", "not valid JSON"),
        ('{"word": 7}', "lookup", "7 is not of type 'string'"),
        ("{}", "teleport", "unknown tool 'teleport'"),
    ],
)
async def test_bad_tool_calls_become_error_results_the_model_can_fix(
    runtime_factory: Any, arguments: str, name: str, problem: str
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name=name, arguments=arguments)]),
            Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "fixed"}')]),
            Reply(text="done"),
        )
        rt = await runtime_factory({"main": openai_model(fake)}, tools=["tests.test_invocation:lookup"])
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="go")
    assert reply.text == "done"
    error_result = fake.requests[1].messages[-1]
    assert error_result["role"] == "tool" and problem in error_result["content"]
    assert fake.requests[1].messages[-2]["tool_calls"][0]["function"]["arguments"] == arguments
    assert RUNS == ["fixed"]
    assert fake.protocol_errors == []


async def test_a_hook_denies_a_tool_and_another_rewrites_the_request(runtime_factory: Any) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "x"}')]), Reply(text="ok then"))
        rt = await runtime_factory(
            {"main": openai_model(fake)},
            tools=["tests.test_invocation:lookup"],
            hooks=["tests.test_invocation:DenyLookup", "tests.test_invocation:Annotate"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="look up x")
    assert reply.text == "ok then" and RUNS == []
    assert "denied: lookups are disabled here" in fake.requests[1].messages[-1]["content"]
    assert all(r.messages[0]["content"].endswith("[policy: be brief]") for r in fake.requests)


async def test_max_tool_rounds_then_the_model_must_answer(runtime_factory: Any) -> None:
    def answer(request: RecordedRequest) -> Reply:
        if request.body.get("tools"):
            return Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "again"}')])
        return Reply(text="final answer without tools")

    async with FakeOpenAIServer(default=answer) as fake:
        rt = await runtime_factory(
            {"main": openai_model(fake)}, max_tool_rounds=3, tools=["tests.test_invocation:lookup"]
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="loop forever")
    assert reply.text == "final answer without tools"
    assert [bool(r.body.get("tools")) for r in fake.requests] == [True, True, True, False]
    assert RUNS == ["again"] * 3


async def test_a_message_arriving_during_a_tool_round_is_steered_into_the_turn(runtime_factory: Any) -> None:
    GATE["slow"] = asyncio.Event()
    STARTED["slow"] = asyncio.Event()

    def answer(request: RecordedRequest) -> Reply:
        msgs = request.messages
        if msgs[-1]["role"] == "user" and "first" in str(msgs[-1]["content"]):
            return Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "slow"}')])
        users = [str(m["content"]) for m in msgs if m["role"] == "user"]
        return Reply(text="answering: " + " | ".join(users))

    async with FakeOpenAIServer(default=answer) as fake:
        rt = await runtime_factory({"main": openai_model(fake)}, tools=["tests.test_invocation:lookup"])
        first = asyncio.create_task(rt.ask(tenant="acme", origin=BG, conversation_key="k", text="first question"))
        await asyncio.wait_for(STARTED["slow"].wait(), 10)
        second = asyncio.create_task(rt.ask(tenant="acme", origin=BG, conversation_key="k", text="also this"))
        await asyncio.sleep(0.1)
        GATE["slow"].set()
        one, two = await asyncio.gather(first, second)
    assert one.text == two.text == "answering: first question | also this"
    assert len(fake.requests) == 2, "the steered message must not start a second turn"
    roles = [m["role"] for m in fake.requests[1].messages]
    assert roles[-3:] == ["assistant", "tool", "user"]
    assert fake.protocol_errors == []


async def test_a_fallback_never_reruns_a_tool_that_already_ran(runtime_factory: Any) -> None:
    async with FakeOpenAIServer() as primary, FakeOpenAIServer() as backup:
        primary.push(
            Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "once"}')]),
            server_error(500),
            server_error(500),
            server_error(500),
        )
        backup.push(Reply(text="backup finished the job"))
        rt = await runtime_factory(
            {"main": openai_model(primary), "backup": openai_model(backup)},
            fallback_models=["backup"],
            tools=["tests.test_invocation:lookup"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="do it")
    assert reply.text == "backup finished the job" and reply.model == "backup"
    assert RUNS == ["once"]
    assert backup.requests[0].messages[-1]["role"] == "tool"
    assert len(primary.requests) == 4  # the tool call, then the first try and 2 retries
    async with rt.db.read() as conn:
        outcomes = [r.outcome for r in (await conn.execute(MODEL_CALLS.select())).all()]
    assert outcomes == ["ok", "server_error", "server_error", "server_error", "ok"]


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_a_provider_overflow_shrinks_the_budget_and_retries_the_same_model(runtime_factory: Any) -> None:
    async with FakeOpenAIServer(context_window=3000) as fake:
        rt = await runtime_factory({"main": openai_model(fake, context_window=16384)})
        for n in range(12):
            await rt.ask(
                tenant="acme",
                origin=BG,
                conversation_key="k",
                text=f"message {n}: " + " ".join(f"w{i}" for i in range(300)),
            )
        before = len(fake.requests)
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="still fine?")
    assert not reply.is_error
    assert len(fake.requests) >= before + 1
    async with rt.db.read() as conn:
        outcomes = [r.outcome for r in (await conn.execute(MODEL_CALLS.select())).all()]
    assert "context_overflow" in outcomes, "the fake never rejected: the test did not exercise overflow"
    assert outcomes.count("ok") == 13, "every turn must end in an answer"
    assert all(a != "context_overflow" or b == "ok" for a, b in itertools.pairwise(outcomes))


async def test_an_input_larger_than_the_window_gets_a_clear_message_and_sends_nothing(runtime_factory: Any) -> None:
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory({"main": openai_model(fake, context_window=2048, max_output_tokens=512)})
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="word " * 5000)
    assert reply.error_kind == "input_too_large"
    assert "too long" in reply.text
    assert fake.requests == []


async def test_a_failing_ledger_write_never_breaks_the_reply(
    runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("botframework.ledger.record_call", broken)
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory({"main": openai_model(fake)})
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hi")
    assert reply.text == "ok" and not reply.is_error


async def test_all_models_failing_reaches_the_user_as_a_clear_message(runtime_factory: Any) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Fail(
                status=401,
                body={"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}},
            )
        )
        rt = await runtime_factory({"main": openai_model(fake)})
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hi")
        again = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="and now?")
    assert reply.error_kind == "auth" and "api_key" in reply.text
    assert again.text == "ok"
    assert [m["role"] for m in fake.requests[-1].messages] == ["system", "user", "user"]


async def test_anthropic_turn_with_a_tool_keeps_role_alternation(runtime_factory: Any) -> None:
    async with FakeAnthropicServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "hej"}')]), Reply(text="hej means hello")
        )
        model = {
            "provider": "anthropic",
            "model": "claude-test-model",
            "base_url": fake.base_url,
            "api_key": "sk-ant-test",
            "context_window": 200000,
            "max_output_tokens": 4096,
        }
        rt = await runtime_factory({"main": model}, tools=["tests.test_invocation:lookup"])
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="what is hej?")
        follow = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="thanks")
    assert reply.text == "hej means hello" and follow.text == "ok"
    body = fake.requests[-1].body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    tool_use = body["messages"][1]["content"][-1]
    tool_result = body["messages"][2]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"word": "hej"}
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == tool_use["id"]
    assert "hej means something" in json.dumps(tool_result["content"])
    assert fake.protocol_errors == []


def test_json_roundtrip_of_stored_tool_calls_is_verbatim() -> None:
    call = ToolCall("c1", "lookup", '{"word":  "spaces kept"}')
    message = Message.assistant("", tool_calls=[call])
    assert json.loads(message.tool_calls[0].arguments) == {"word": "spaces kept"}
    assert message.tool_calls[0].arguments == '{"word":  "spaces kept"}'


async def test_summarize_strategy_writes_a_summary_through_the_model_and_uses_it(runtime_factory: Any) -> None:
    from botframework.summarize import SUMMARY_INSTRUCTIONS
    from storage.tables import SUMMARIES

    def answer(request: RecordedRequest) -> Reply:
        if request.messages[0]["content"] == SUMMARY_INSTRUCTIONS:
            return Reply(text="SUMMARY: the user listed many numbered facts.")
        return Reply(text="noted " + str(request.messages[-1]["content"])[:40])

    async with FakeOpenAIServer(default=answer, context_window=3000) as fake:
        rt = await runtime_factory(
            {"main": openai_model(fake, context_window=3000, max_output_tokens=256)},
            history={"strategy": "summarize", "summary_max_tokens": 128},
        )
        for n in range(30):
            reply = await rt.ask(
                tenant="acme",
                origin=BG,
                conversation_key="k",
                text=f"fact {n}: " + " ".join(f"w{n}x{i}" for i in range(80)),
            )
            assert not reply.is_error, reply.text
    summary_calls = [r for r in fake.requests if r.messages[0]["content"] == SUMMARY_INSTRUCTIONS]
    assert summary_calls, "the model was never asked to summarize"
    later = [r for r in fake.requests if r.messages[0]["content"] != SUMMARY_INSTRUCTIONS][-1]
    assert "SUMMARY: the user listed many numbered facts." in later.messages[0]["content"]
    async with rt.db.read() as conn:
        summaries = (await conn.execute(SUMMARIES.select())).all()
        purposes = {r.purpose for r in (await conn.execute(MODEL_CALLS.select())).all()}
    assert summaries and all(s.upto_offset > 0 for s in summaries)
    assert purposes == {"turn", "summary"}
    assert fake.protocol_errors == []


async def test_a_storage_failure_mid_turn_is_retried_and_answered_once(
    runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botframework import runtime as runtime_module
    from botframework.errors import StorageError

    real = runtime_module.create_delivery
    failures = [StorageError("database is locked")]

    async def flaky(*args: Any, **kwargs: Any) -> int:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(runtime_module, "create_delivery", flaky)
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory({"main": openai_model(fake)})
        rt.storage_retry_delays_s = (0.01,)
        reply = await asyncio.wait_for(rt.ask(tenant="acme", origin=BG, conversation_key="k", text="hi"), 10)
    assert reply.text == "ok" and not failures
    assert len(fake.requests) == 1, "the stored answer must be reused, not asked for again"


async def test_an_empty_model_answer_becomes_an_explicit_reply_for_every_channel(runtime_factory: Any) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(Reply(text=""))
        rt = await runtime_factory({"main": openai_model(fake)})
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="say nothing")
        again = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="and now?")
    assert reply.text == "(The model returned an empty answer.)" and not reply.is_error
    assert again.text == "ok"
    assert fake.protocol_errors == [], "an empty stored answer must replay as a valid message"
