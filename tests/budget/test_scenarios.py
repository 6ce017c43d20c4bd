"""The cases peers get wrong (issue 2), one test each, plus the other behaviours the issue names."""

from __future__ import annotations

import itertools

import pytest

from botframework.budget import (
    BudgetEngine,
    InMemoryHistory,
    alternation_groups,
    alternation_violations,
    prompt_fit_problem,
    system_prompt_problems,
    tool_protocol_violations,
)
from botframework.budget.tokens import IMAGE_NOTE
from botframework.config.schema import Config
from botframework.errors import InputTooLargeError
from botframework.messages import ImagePart, Message, ToolCall, ToolSpec
from storage.db import Database
from tests.budget.helpers import (
    Case,
    DbWriter,
    MemoryWriter,
    agent,
    budget_config,
    check_prepared,
    model,
    words,
)


def setup(
    window: int = 2000, *, max_output: int = 200, tools: tuple[ToolSpec, ...] = (), **model_kw: object
) -> tuple[Case, MemoryWriter]:
    store = InMemoryHistory()
    engine = BudgetEngine(config=budget_config(), source=store)
    m = model(window, max_output=max_output, **model_kw)
    return Case(engine=engine, model=m, agent=agent(), tools=tools), MemoryWriter(engine, m, store)


def tool_turn(i: int, result_size: int) -> list[Message]:
    return [
        Message.assistant("", tool_calls=[ToolCall(f"c{i}", "lookup", "{}")]),
        Message.tool_result(f"c{i}", words(result_size, i)),
        Message.assistant(f"answer {i}"),
    ]


async def test_orphan_tool_result_at_the_start_of_the_kept_window() -> None:
    case, w = setup()
    for i in range(12):  # most of each turn's tokens are in the call's arguments
        await w.append(f"t{i}", [Message.user(f"question {i}")], turn_start=True)
        await w.append(
            f"t{i}",
            [
                Message.assistant("", tool_calls=[ToolCall(f"c{i}", "write", words(300, i))]),
                Message.tool_result(f"c{i}", "saved"),
                Message.assistant(f"answer {i}"),
            ],
        )
    # A stored turn whose call row was lost: its result is an orphan right after the turn start.
    await w.append("broken", [Message.user("broken turn"), Message.tool_result("lost", "orphan")], turn_start=True)
    await w.append("now", [Message.user("and now?")], turn_start=True)
    prepared = await case.prepare("now")
    stored = await w.stored()
    check_prepared(case, prepared, stored, "now")

    # A message-level trimmer keeping the newest messages that fit would start on a tool result:
    history = [m for m in stored if m.turn_id != "now"]
    naive, total = [], 0
    for m in reversed(history):
        if total + (m.token_count or 0) > prepared.history_budget:
            break
        naive.insert(0, m)
        total += m.token_count or 0
    assert naive[0].role == "tool"
    # ...we start at a whole turn, and the orphan is gone.
    assert prepared.messages[0].role == "user" and prepared.messages[0].turn_start
    assert "orphan" not in [m.text for m in prepared.messages]
    assert "broken turn" in [m.text for m in prepared.messages]


async def test_trailing_tool_results_whose_call_would_be_trimmed() -> None:
    case, w = setup(1500, max_output=200)
    for i in range(5):
        await w.append(f"t{i}", [Message.user(words(100, i))], turn_start=True)
        await w.append(f"t{i}", [Message.assistant(words(100, i))])
    await w.append("now", [Message.user("use the tools")], turn_start=True)
    await w.append("now", tool_turn(1, 500)[:2])  # an early round with a big result
    await w.append(
        "now",
        [
            Message.assistant("", tool_calls=[ToolCall("x", "lookup", "{}"), ToolCall("y", "lookup", "{}")]),
            Message.tool_result("x", words(300)),
            Message.tool_result("y", words(300)),
        ],
    )
    prepared = await case.prepare("now")
    check_prepared(case, prepared, await w.stored(), "now")
    tail = prepared.messages[-3:]
    assert [m.role for m in tail] == ["assistant", "tool", "tool"]
    assert [c.id for c in tail[0].tool_calls] == ["x", "y"]
    assert [m.tool_call_id for m in tail[1:]] == ["x", "y"]
    assert not any(m.tool_call_id == "c1" or any(c.id == "c1" for c in m.tool_calls) for m in prepared.messages)
    assert prepared.messages[0].text == "use the tools"  # no room for history: the input stays
    assert prepared.dropped_messages >= 2


async def test_a_single_history_message_larger_than_the_budget() -> None:
    case, w = setup(2000)
    await w.append("t1", [Message.user("first"), Message.assistant("one")], turn_start=True)
    await w.append("t2", [Message.user(words(5000)), Message.assistant("two")], turn_start=True)
    await w.append("t3", [Message.user("third"), Message.assistant("three")], turn_start=True)
    await w.append("now", [Message.user("now")], turn_start=True)
    prepared = await case.prepare("now")
    check_prepared(case, prepared, await w.stored(), "now")
    assert [m.text for m in prepared.messages] == ["third", "three", "now"]


async def test_a_current_input_larger_than_the_window_is_refused() -> None:
    case, w = setup(2000)
    await w.append("t1", [Message.user("hi"), Message.assistant("hello")], turn_start=True)
    await w.append("now", [Message.user(words(3000))], turn_start=True)
    with pytest.raises(InputTooLargeError) as info:
        await case.prepare("now")
    assert info.value.needed > info.value.available
    assert "tokens" in str(info.value) and "'m'" in str(info.value)


async def test_a_huge_tool_result_in_the_active_tail_is_refused_but_in_an_old_round_dropped() -> None:
    case, w = setup(2000)
    await w.append("now", [Message.user("go")], turn_start=True)
    await w.append("now", tool_turn(1, 3000)[:2])
    await w.append("now", tool_turn(2, 10)[:2])
    prepared = await case.prepare("now")  # the old round goes, the active tail stays
    assert [m.tool_call_id for m in prepared.messages if m.role == "tool"] == ["c2"]
    await w.append("now", tool_turn(3, 3000)[:2])
    with pytest.raises(InputTooLargeError):
        await case.prepare("now")


def test_a_system_prompt_too_large_for_the_window_is_a_config_error() -> None:
    small = model(1024, max_output=256)
    assert prompt_fit_problem(budget_config(), small, agent(system_prompt="Be nice.")) is None
    problem = prompt_fit_problem(budget_config(), small, agent(system_prompt=words(2000)))
    assert problem is not None and "1024" in problem and "output floor (256)" in problem
    config = Config.model_validate(
        {
            "models": {
                "small": {"provider": "offline", "context_window": 1024, "max_output_tokens": 256},
                "big": {"provider": "offline", "context_window": 100_000},
            },
            "tenants": {
                "acme": {"agent": {"model": "big", "fallback_models": ["small"], "system_prompt": words(2000)}}
            },
        }
    )
    problems = list(system_prompt_problems(config))
    assert problems == [("tenants.acme.agent.system_prompt", problems[0][1])]
    assert "models.small" in problems[0][1]


def test_the_config_loader_reports_an_oversized_system_prompt() -> None:
    from botframework.config.loader import parse_config
    from botframework.errors import ConfigError

    text = (
        "models:\n  small: {provider: offline, context_window: 1024, max_output_tokens: 256}\n"
        f'tenants:\n  acme:\n    agent:\n      model: small\n      system_prompt: "{words(2000)}"\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert any(p.path == "tenants.acme.agent.system_prompt" for p in info.value.problems)


async def test_a_system_prompt_too_large_is_refused_at_prepare() -> None:
    case, w = setup(1024, max_output=256)
    case.agent = agent(system_prompt=words(2000))
    await w.append("now", [Message.user("hi")], turn_start=True)
    with pytest.raises(InputTooLargeError):
        await case.prepare("now")


async def test_messages_arriving_during_a_tool_continuation(db: Database) -> None:
    engine = BudgetEngine(config=budget_config(), db=db)
    m = model(4096)
    w = await DbWriter.create(engine, m, db)
    case = Case(engine=engine, model=m, agent=agent(), conversation_id=w.conversation_id)
    await w.append("t1", [Message.user("what time is it?")], turn_start=True)
    await w.append("t1", [Message.assistant("", tool_calls=[ToolCall("c1", "clock", "{}")])])
    await w.append("t2", [Message.user("and the date?")], turn_start=True)  # arrives mid-call...
    await w.steer("t2", "t1")  # ...and is steered into the running turn
    await w.append("t3", [Message.user("unrelated, later")], turn_start=True)  # queued, not steered
    await w.append("t1", [Message.tool_result("c1", "12:00")])
    prepared = await case.prepare("t1")
    check_prepared(case, prepared, await w.stored(), "t1")
    assert [(x.role, x.text) for x in prepared.messages] == [
        ("user", "what time is it?"),
        ("assistant", ""),
        ("tool", "12:00"),
        ("user", "and the date?"),
    ]

    await w.append("t1", [Message.assistant("It is noon on Monday.")])  # written after t3's message
    later = await case.prepare("t3")
    check_prepared(case, later, await w.stored(), "t3")
    assert [x.text for x in later.messages] == [
        "what time is it?",
        "",
        "12:00",
        "and the date?",
        "It is noon on Monday.",
        "unrelated, later",
    ]


async def test_an_exact_fit_keeps_all_history_and_one_token_more_cuts() -> None:
    case, w = setup(3000, max_output=300)
    for i in range(6):
        await w.append(f"t{i}", [Message.user(words(40, i)), Message.assistant(words(60, i))], turn_start=True)
    await w.append("now", [Message.user("now")], turn_start=True)
    history_tokens = sum(x.token_count or 0 for x in await w.stored() if x.turn_id != "now")
    pad = 0
    while True:
        case.agent = agent(system_prompt=("Pad" + " a" * pad))
        prepared = await case.prepare("now")
        if prepared.history_budget <= history_tokens:
            break
        pad += 1
    assert prepared.history_budget == history_tokens, "padding by one token at a time must hit the boundary"
    limits = case.engine.limits(model_name="m", model=case.model, agent=case.agent)
    assert prepared.history_tokens == history_tokens and prepared.max_tokens == limits.reserve
    assert prepared.estimated_prompt_tokens + prepared.max_tokens + limits.margin <= limits.window
    check_prepared(case, prepared, await w.stored(), "now")

    case.agent = agent(system_prompt=("Pad" + " a" * (pad + 1)))
    case.engine._last_cuts.clear()
    tighter = await case.prepare("now")
    assert tighter.history_budget == history_tokens - 1
    assert tighter.history_tokens < history_tokens and tighter.history_start_offset > 0
    check_prepared(case, tighter, await w.stored(), "now")


async def test_the_output_floor_boundary() -> None:
    case, w = setup(1000, max_output=400)
    limits = case.engine.limits(model_name="m", model=case.model, agent=case.agent)
    fixed = case.engine.count_text(case.model, case.agent.system_prompt) + 3
    target = limits.window - limits.margin - limits.floor - fixed  # the input cost that leaves exactly the floor
    n = 1
    while case.engine.count_message(case.model, Message.user(words(n + 1))) <= target:
        n += 1
    text = words(n)
    while case.engine.count_message(case.model, Message.user(text)) < target:
        text += " a"
    assert case.engine.count_message(case.model, Message.user(text)) == target
    assert case.engine.count_message(case.model, Message.user(text + " a")) == target + 1
    await w.append("now", [Message.user(text)], turn_start=True)
    prepared = await case.prepare("now")
    assert prepared.max_tokens == limits.floor
    await w.append("next", [Message.user(text + " a")], turn_start=True)
    with pytest.raises(InputTooLargeError):
        await case.prepare("next")


async def test_anthropic_role_alternation() -> None:
    case, w = setup(8000, provider="anthropic", name="claude-sonnet-4")
    await w.append(
        "t1", [Message.user("hi"), Message.user("are you there?"), Message.assistant("yes")], turn_start=True
    )
    await w.append(
        "t2",
        [
            Message.user("check"),
            Message.assistant("", tool_calls=[ToolCall("a", "x", "{}")]),
            Message.user("steered"),
            Message.tool_result("a", "res"),
            Message.assistant("done"),
        ],
        turn_start=True,
    )
    await w.append(
        "t3",
        [
            Message.user("broken"),
            Message.assistant("", tool_calls=[ToolCall("b", "x", "{}")]),
            Message.assistant("gave up"),
        ],
        turn_start=True,
    )
    await w.append(
        "now",
        [
            Message.user("go"),
            Message.assistant("", tool_calls=[ToolCall("c", "x", "{}"), ToolCall("d", "x", "{}")]),
            Message.tool_result("d", "D"),
            Message.tool_result("c", "C"),
        ],
        turn_start=True,
    )
    prepared = await case.prepare("now")
    check_prepared(case, prepared, await w.stored(), "now")
    assert alternation_violations(prepared.messages) == []
    groups = alternation_groups(prepared.messages)
    assert [g[0] for g in groups] == ["user", "assistant"] * 5 + ["user"]
    assert [m.text for m in groups[0][1]] == ["hi", "are you there?"]
    assert [m.tool_call_id or m.text for m in groups[4][1]] == ["a", "steered"]
    assert [m.tool_call_id for m in groups[-1][1]] == ["c", "d"]


async def test_fitting_runs_before_every_call_of_the_tool_loop() -> None:
    case, w = setup(3000, max_output=300)
    for i in range(10):
        await w.append(f"t{i}", [Message.user(words(80, i)), Message.assistant(words(80, i))], turn_start=True)
    await w.append("now", [Message.user("research this")], turn_start=True)
    budgets = []
    for r in range(6):
        prepared = await case.prepare("now")
        check_prepared(case, prepared, await w.stored(), "now")
        budgets.append(prepared.history_budget)
        await w.append("now", tool_turn(r, 150)[:2])
    assert budgets == sorted(budgets, reverse=True) and budgets[-1] < budgets[0]


async def test_images_are_replaced_for_models_without_image_support() -> None:
    case, w = setup(4000, supports_images=False)
    await w.append("now", [Message.user("what is this?", images=[ImagePart(url="https://x/a.png")])], turn_start=True)
    prepared = await case.prepare("now")
    assert prepared.messages[0].images == () and IMAGE_NOTE in prepared.messages[0].text
    assert prepared.estimated_prompt_tokens < 765  # the image's fixed cost is no longer counted
    check_prepared(case, prepared, await w.stored(), "now")


async def test_models_without_tool_support_get_no_tools_and_no_tool_messages() -> None:
    spec = ToolSpec(name="clock", description="time")
    case, w = setup(4000, supports_tools=False, tools=(spec,))
    await w.append("now", [Message.user("time?")], turn_start=True)
    await w.append("now", tool_turn(1, 5)[:2])
    prepared = await case.prepare("now")
    assert prepared.tools == ()
    assert tool_protocol_violations(prepared.messages) == []
    assert "[called tool lookup" in prepared.messages[1].text
    check_prepared(case, prepared, await w.stored(), "now")


async def test_the_kept_prefix_is_stable_across_turns_and_drops_in_chunks() -> None:
    case, w = setup(4000, max_output=400)
    starts = []
    for i in range(80):
        await w.append(f"t{i}", [Message.user(words(30, i))], turn_start=True)
        prepared = await case.prepare(f"t{i}")
        check_prepared(case, prepared, await w.stored(), f"t{i}")
        starts.append(prepared.history_start_offset)
        assert prepared.history_tokens <= prepared.history_budget
        if prepared.history_start_offset > 0:
            assert prepared.history_tokens >= 0.5 * prepared.history_budget
        await w.append(f"t{i}", [Message.assistant(words(40, i))])
    moves = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert 0 < moves <= 80 * 75 / (0.3 * 3000) + 2  # about one move per chunk of growth


async def test_an_unknown_turn_is_an_error() -> None:
    case, _ = setup()
    with pytest.raises(LookupError):
        await case.prepare("nope")
