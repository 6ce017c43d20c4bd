"""Property tests: random conversations, every prepared request satisfies the budget invariants.

Histories mix parallel and chained tool calls, broken blocks (missing, orphan, duplicate and
reordered results, reused call ids), steered messages, images, huge single messages, later
queued turns and tails of earlier turns, on tiny to unknown windows. The running turn is
written step by step and prepared before every "model call", as the tool loop does. The
in-memory run is large; the database run (SQLite or PostgreSQL) is smaller.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from botframework.budget import BudgetEngine, InMemoryHistory, PreparedRequest
from botframework.errors import ContextOverflowError, InputTooLargeError
from botframework.messages import ImagePart, Message, ToolCall, ToolSpec
from storage.db import Database
from tests.budget.helpers import (
    Case,
    DbWriter,
    MemoryWriter,
    Writer,
    agent,
    budget_config,
    check_prepared,
    check_too_large,
    model,
    words,
)

IMAGE = ImagePart(url="https://example.test/cat.png")
BREAKAGES = ("ok", "ok", "ok", "ok", "missing", "orphan", "steered", "duplicate", "reversed")


@dataclass
class Scenario:
    window: int | None
    provider: str
    model_id: str
    max_output: int
    supports_images: bool
    supports_tools: bool
    system_words: int
    agent_output: int | None
    fill_ratio: float
    tools: tuple[ToolSpec, ...]
    ratio: float
    overflow: bool
    reuse_ids: bool
    history: list[list[tuple[str, object]]] = field(default_factory=list)
    current: list[tuple[str, object]] = field(default_factory=list)


@st.composite
def sizes(draw: st.DrawFn, scale: int, huge: int) -> int:
    if draw(st.integers(0, 24)) == 0:
        return huge
    return draw(st.integers(1, scale))


@st.composite
def rounds(draw: st.DrawFn, scale: int, huge: int, *, broken: bool) -> list[tuple[str, object]]:
    """One tool round: the call, maybe a steered-in user message, the results (maybe broken)."""
    n = draw(st.integers(1, 3))
    args = [json.dumps({"q": words(draw(st.integers(0, 4)))}) for _ in range(n)]
    text = words(draw(st.integers(0, scale // 2))) if draw(st.booleans()) else ""
    results = [draw(sizes(scale, huge)) for _ in range(n)]
    breakage = draw(st.sampled_from(BREAKAGES)) if broken else "ok"
    steered = draw(st.booleans()) if not broken else breakage == "steered"
    return [("round", (n, args, text, results, breakage, steered))]


@st.composite
def scenarios(draw: st.DrawFn, *, max_turns: int = 8) -> Scenario:
    window = draw(st.sampled_from([256, 400, 700, 1200, 2048, 4096, 16384, None]))
    effective = window or 32768
    provider, model_id = draw(
        st.sampled_from(
            [
                ("openai", "gpt-4"),
                ("openai", "gpt-4o"),
                ("anthropic", "claude-x"),
                ("offline", "offline-echo"),
                ("openai", "some-local-model"),
            ]
        )
    )
    max_output = draw(st.integers(16, max(16, min(effective, 4096))))
    scale = max(3, effective // 50)
    huge = effective * 2 if effective <= 4096 else effective + effective // 2
    n_tools = draw(st.integers(0, 2))
    tools = tuple(
        ToolSpec(
            name=f"tool{i}",
            description=words(5, i),
            parameters={"type": "object", "properties": {"q": {"type": "string"}}},
        )
        for i in range(n_tools)
    )
    sc = Scenario(
        window=window,
        provider=provider,
        model_id=model_id,
        max_output=max_output,
        supports_images=draw(st.booleans()),
        supports_tools=draw(st.booleans()),
        system_words=draw(st.integers(0, scale)),
        agent_output=draw(st.one_of(st.none(), st.integers(16, 8192))),
        fill_ratio=draw(st.sampled_from([0.5, 0.7, 0.9])),
        tools=tools,
        ratio=draw(st.sampled_from([0.8, 1.0, 1.0, 1.2, 1.5])),
        overflow=draw(st.integers(0, 9)) == 0,
        reuse_ids=draw(st.booleans()),
    )
    for _ in range(draw(st.integers(0, max_turns))):
        turn: list[tuple[str, object]] = [("user", (draw(sizes(scale, huge)), draw(st.integers(0, 2))))]
        for _ in range(draw(st.integers(0, 3))):
            turn += draw(rounds(scale, huge, broken=True))
        if draw(st.integers(0, 5)):
            turn.append(("final", draw(st.integers(0, scale))))
        sc.history.append(turn)
    sc.current = [("user", (draw(sizes(scale, huge)), draw(st.integers(0, 1))))]
    if sc.history and draw(st.integers(0, 3)) == 0:
        sc.current.append(("straggler", draw(st.integers(1, scale))))
    for _ in range(draw(st.integers(0, 3))):
        sc.current += draw(rounds(scale, huge, broken=False))
        if draw(st.integers(0, 4)) == 0:
            sc.current.append(("queued", draw(st.integers(1, scale))))
    return sc


def _engine(sc: Scenario, store: InMemoryHistory | None = None, db: Database | None = None) -> Case:
    engine = BudgetEngine(config=budget_config(), db=db, source=store)
    m = model(
        sc.window,
        max_output=min(sc.max_output, sc.window or 32768),
        provider=sc.provider,
        name=sc.model_id,
        supports_images=sc.supports_images,
        supports_tools=sc.supports_tools,
    )
    if sc.window is None:
        assert m.context_window == 32768  # "unknown": the config default
    ag = agent(
        system_prompt=("Be brief. " + words(sc.system_words)).strip(),
        max_output_tokens=sc.agent_output,
        history={"fill_ratio": sc.fill_ratio},
    )
    engine.observe_usage(
        model_name="m", model=m, estimated_prompt_tokens=10_000, reported_input_tokens=int(10_000 * sc.ratio)
    )
    if sc.overflow:
        engine.learn_overflow(
            model_name="m",
            model=m,
            estimated_prompt_tokens=1000,
            error=ContextOverflowError("too long", limit=None, requested=None),
        )
    return Case(engine=engine, model=m, agent=ag, tools=sc.tools)


class _Ids:
    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self.n = 0

    def __call__(self, i: int) -> str:
        self.n += 1
        return f"call_{i}" if self.reuse else f"call_{self.n}"


async def _write_round(writer: Writer, tid: str, spec: object, ids: _Ids, *, queued_steer: bool) -> None:
    n, args, text, results, breakage, steered = spec  # type: ignore[misc]
    calls = [ToolCall(id=ids(i), name=f"tool{i % 2}", arguments=args[i]) for i in range(n)]
    out: list[Message] = [Message.assistant(text, tool_calls=calls)]
    res = [
        Message.tool_result(c.id, words(size, i), name=c.name)
        for i, (c, size) in enumerate(zip(calls, results, strict=False))
    ]
    if breakage == "missing":
        res = res[:-1]
    elif breakage == "orphan":
        res.append(Message.tool_result("ghost", "no call made this"))
    elif breakage == "duplicate":
        res.append(res[0])
    elif breakage == "reversed":
        res.reverse()
    if steered and queued_steer:
        await writer.append(tid, out)
        qid = f"q-{uuid.uuid4().hex[:8]}"
        await writer.append(qid, [Message.user("also: " + words(3))], turn_start=True)
        await writer.steer(qid, tid)
        await writer.append(tid, res)
        return
    if steered:
        out.append(Message.user("by the way " + words(3)))
    await writer.append(tid, out + res)


async def _run(sc: Scenario, case: Case, writer: Writer, store: InMemoryHistory | None = None) -> int:
    """Write the scenario; prepare before every model call of the running turn; check each. Returns calls."""
    ids = _Ids(sc.reuse_ids)
    for t, turn in enumerate(sc.history):
        tid = f"h{t}"
        for kind, spec in turn:
            if kind == "user":
                size, images = spec  # type: ignore[misc]
                await writer.append(tid, [Message.user(words(size, t), images=[IMAGE] * images)], turn_start=True)
            elif kind == "final":
                await writer.append(tid, [Message.assistant(words(spec, t))])  # type: ignore[arg-type]
            else:
                await _write_round(writer, tid, spec, ids, queued_steer=False)

    tid = "current"
    calls = 0
    for kind, spec in sc.current:
        if kind == "user":
            size, images = spec  # type: ignore[misc]
            await writer.append(tid, [Message.user(words(size, 7), images=[IMAGE] * images)], turn_start=True)
        elif kind == "straggler":
            await writer.append(f"h{len(sc.history) - 1}", [Message.assistant("late " + words(spec))])  # type: ignore[arg-type]
            continue
        elif kind == "queued":
            await writer.append(
                f"later-{uuid.uuid4().hex[:8]}",
                [Message.user(words(spec))],  # type: ignore[arg-type]
                turn_start=True,
            )
            continue
        else:
            await _write_round(writer, tid, spec, ids, queued_steer=True)
        await _prepare_and_check(case, writer, tid, store)
        calls += 1
    return calls


async def _prepare_and_check(case: Case, writer: Writer, tid: str, store: InMemoryHistory | None) -> None:
    stored = await writer.stored()
    before = store.rows_read if store is not None else 0
    try:
        prepared = await case.prepare(tid)
    except InputTooLargeError as exc:
        check_too_large(case, exc, stored, tid)
        event("input too large")
        return
    check_prepared(case, prepared, stored, tid)
    event("history cut" if prepared.history_start_offset > 0 else "history from the start")
    event("messages left out" if prepared.dropped_messages else "nothing left out")
    event(
        "max_tokens below reserve"
        if prepared.max_tokens < case.engine.limits(model_name="m", model=case.model, agent=case.agent).reserve
        else "full reserve"
    )
    again = await case.prepare(tid)
    assert again.messages == prepared.messages and again.system == prepared.system, "not deterministic"
    if store is not None:
        _check_bounded_reads(prepared, stored, tid, store.rows_read - before, case.model.context_window)


def _check_bounded_reads(prepared: PreparedRequest, stored: list[Message], tid: str, rows: int, window: int) -> None:
    """Invariant 6: the rows read for a request are the tail plus a window-sized stretch before it."""
    start = min(m.id or 0 for m in stored if m.turn_id == tid)
    start_offset = next(m.offset or 0 for m in stored if m.id == start)
    tail = sum(1 for m in stored if (m.id or 0) >= start)
    reach = start_offset - prepared.history_budget - window
    nearby = sum(1 for m in stored if (m.id or 0) < start and (m.offset or 0) >= reach)
    assert rows <= 2 * (tail + nearby), (rows, tail, nearby)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios())
async def test_invariants_hold_in_memory(sc: Scenario) -> None:
    store = InMemoryHistory()
    case = _engine(sc, store=store)
    writer = MemoryWriter(case.engine, case.model, store)
    await _run(sc, case, writer, store)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(sc=scenarios(max_turns=5))
async def test_invariants_hold_on_the_database(db: Database, sc: Scenario) -> None:
    case = _engine(sc, db=db)
    writer = await DbWriter.create(case.engine, case.model, db, key=uuid.uuid4().hex)
    case.conversation_id = writer.conversation_id
    await _run(sc, case, writer)
