"""The one-shot model client: candidates and tiers, budget fitting, ledger rows and events, errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from botframework.budget import BudgetEngine
from botframework.config.schema import AgentConfig, BudgetConfig, ModelConfig
from botframework.errors import ContextOverflowError, ModelCallError, ServerError
from botframework.events import EventBus, EventKind, TurnEvent
from botframework.ledger import LedgerWriter
from botframework.modelcalls import ModelGateway, helper_candidates
from botframework.models.router import ModelRouter
from botframework.summarize import SUMMARY_INSTRUCTIONS, ModelSummarizer
from botframework.tools.base import ToolContext
from storage.db import Database
from storage.tables import MODEL_CALLS
from tests.models.helpers import ScriptedClient, Sleeps, ok

CTX = ToolContext(tenant="acme", conversation_id=7, turn_id="turn-1", origin="background:test")


class Label(BaseModel):
    label: str

    @field_validator("label")
    @classmethod
    def lower_case(cls, value: str) -> str:
        if value != value.lower():
            raise ValueError("must be lower case")
        return value


def gateway(db: Database, *clients: ScriptedClient, events: EventBus | None = None) -> ModelGateway:
    return ModelGateway(
        router=ModelRouter(clients={c.name: c for c in clients}, sleep=Sleeps()),
        budget=BudgetEngine(config=BudgetConfig(allow_encoding_download=False), db=db),
        ledger=LedgerWriter(db=db),
        events=events or EventBus(),
        models={c.name: c.config for c in clients},
    )


async def rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(MODEL_CALLS.select().order_by(MODEL_CALLS.c.id))).all())


def models(**tiers: str) -> dict[str, ModelConfig]:
    return {n: ModelConfig.model_validate({"provider": "offline", "tier": t}) for n, t in tiers.items()}


def agent(**kw: Any) -> AgentConfig:
    return AgentConfig.model_validate({"model": "main", **kw})


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"fallback_models": ["mini", "mid"]}, ["main", "mini", "mid"]),
        (
            {"fallback_models": ["mini", "mid"], "structured": {"allowed_tiers": ["small", "standard"]}},
            ["mini", "mid", "main"],
        ),
        (
            {"fallback_models": ["mini"], "structured": {"models": ["mid", "main"], "allowed_tiers": ["standard"]}},
            ["mid", "main"],
        ),
        ({"fallback_models": ["mid"], "structured": {"allowed_tiers": ["small"]}}, ["main", "mid"]),
    ],
)
def test_helper_candidates_follow_the_tier_order_then_the_configured_order(
    config: dict[str, Any], expected: list[str]
) -> None:
    assert helper_candidates(agent(**config), models(main="large", mini="small", mid="standard")) == expected


async def test_parse_fits_the_request_and_writes_a_ledger_row_and_events(db: Database) -> None:
    client = ScriptedClient("mini", [ok('{"label": "bug"}')], context_window=4096, max_output_tokens=512, tier="small")
    events: list[TurnEvent] = []
    bus = EventBus()
    bus.subscribe(events.append)
    calls = gateway(db, client, events=bus).client(CTX, candidates=["mini"], allowed_tiers=["small"])
    label = await calls.parse(
        Label, instructions="Label it.", input="it crashes", purpose="tool:label", max_tokens=2000
    )
    assert label == Label(label="bug")
    [sent] = client.requests
    assert sent.estimated_prompt_tokens > 0, "counted, so calibration learns from this call too"
    assert sent.max_tokens == 512, "capped by the model's max_output_tokens"
    assert sent.system.startswith("Label it.") and '"label"' in sent.system
    [row] = await rows(db)
    assert (row.tenant, row.conversation_id, row.turn_id, row.origin) == ("acme", 7, "turn-1", "background:test")
    assert (row.purpose, row.model, row.outcome, row.input_tokens) == ("tool:label", "mini", "ok", 10)
    kinds = [(e.kind, e.data.get("purpose")) for e in events]
    assert kinds == [(EventKind.MODEL_REQUEST, "tool:label"), (EventKind.MODEL_RESPONSE, "tool:label")]


async def test_a_pydantic_validator_failure_gets_the_stricter_retry(db: Database) -> None:
    client = ScriptedClient("main", [ok('{"label": "BUG"}'), ok('{"label": "bug"}')])
    calls = gateway(db, client).client(CTX, candidates=["main"])
    assert await calls.parse(Label, instructions="Label it.", input="x", purpose="tool:label") == Label(label="bug")
    retry = client.requests[1].messages[-1].text
    assert "does not match Label: label: Value error, must be lower case" in retry


async def test_complete_returns_text_and_failures_raise_model_call_error(db: Database) -> None:
    down = [ServerError("down")] * 3
    main = ScriptedClient("main", [ok("A summary."), *down])
    calls = gateway(db, main).client(CTX, candidates=["main"])
    answer = await calls.complete(instructions="Summarize.", input="text", purpose="summary", max_tokens=100)
    assert (answer.text, answer.model, answer.usage.input_tokens) == ("A summary.", "main", 10)
    with pytest.raises(ModelCallError) as info:
        await calls.complete(instructions="Summarize.", input="text", purpose="summary")
    assert info.value.kind == "llm_unavailable" and "all models failed" in info.value.detail
    assert str(info.value).startswith("the summary model call failed (llm_unavailable):")
    assert [(r.purpose, r.outcome) for r in await rows(db)] == [("summary", "ok")] + [("summary", "server_error")] * 3


async def test_an_overflow_teaches_the_budget_and_the_same_model_is_asked_again_smaller(db: Database) -> None:
    client = ScriptedClient(
        "main",
        [ContextOverflowError("too long", limit=2048), ok("fine")],
        context_window=8192,
        max_output_tokens=4096,
    )
    calls = gateway(db, client).client(CTX, candidates=["main"])
    answer = await calls.complete(instructions="Echo.", input="word " * 1500, purpose="tool:echo", max_tokens=4096)
    assert answer.text == "fine"
    first, second = client.requests
    assert first.max_tokens == 4096 and second.max_tokens < 1024, "fitted to the stated 2048-token limit"


async def test_input_too_large_is_refused_before_sending(db: Database) -> None:
    client = ScriptedClient("main", context_window=512, max_output_tokens=128)
    calls = gateway(db, client).client(CTX, candidates=["main"])
    result = await calls.structured(instructions="Summarize.", input="word " * 2000, purpose="tool:x")
    assert result.error == "input_too_large" and "model 'main'" in result.detail
    assert client.requests == [] and await rows(db) == []


async def test_a_caller_mistake_is_a_value_error(db: Database) -> None:
    calls = gateway(db, ScriptedClient("main")).client(CTX, candidates=["main"])
    with pytest.raises(ValueError, match="purpose must be 1 to 32 characters"):
        await calls.complete(instructions="x", input="y", purpose="tool:" + "x" * 40)


async def test_the_summarizer_uses_the_facade_with_the_summary_model(db: Database) -> None:
    main = ScriptedClient("main")
    small = ScriptedClient("small", [ok("  The summary.  ")], context_window=4096, tier="small")
    gw = gateway(db, main, small)
    summarizer = ModelSummarizer.for_agent(gw, CTX, agent(history={"summary_model": "small"}))
    assert summarizer.context_window == 4096
    text = await summarizer(transcript="user: hi", previous_summary="Before.", max_tokens=200)
    assert text == "The summary." and main.requests == []
    [sent] = small.requests
    assert sent.system == SUMMARY_INSTRUCTIONS
    assert sent.messages[0].text == "Previous summary:\nBefore.\n\nNew transcript:\nuser: hi"
    assert [(r.purpose, r.model) for r in await rows(db)] == [("summary", "small")]



@pytest.mark.parametrize("module", ["summarize", "modelcalls", "structured", "tools/language"])
def test_one_shot_calls_do_not_reach_into_the_invocation_service(module: str) -> None:
    """The seam is one-way: the invocation service uses these modules, never the reverse."""
    import ast
    from pathlib import Path

    import botframework

    source = Path(botframework.__file__).parent / f"{module}.py"
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m and m.startswith(("botframework.invocation", "botframework.runtime"))}
