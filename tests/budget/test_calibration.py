"""Calibration from usage reports and learning from "context length exceeded"."""

from __future__ import annotations

import math

import pytest

from botframework.budget import BudgetEngine, Calibration, InMemoryHistory
from botframework.budget.calibration import MAX_OVERFLOW_RATIO, RECOVERY_HALF_LIFE_S, RECOVERY_HOLD_S
from botframework.errors import ContextOverflowError
from botframework.messages import Message
from tests.budget.helpers import Case, MemoryWriter, agent, budget_config, check_prepared, model, words


def test_ratio_rises_fast_falls_slowly_and_is_bounded() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.observe("m", estimated=1000, reported=1200)
    assert cal.ratio("m") == pytest.approx(1.1)
    cal.observe("m", estimated=1000, reported=1000)
    assert cal.ratio("m") == pytest.approx(1.09)
    for _ in range(50):
        cal.observe("m", estimated=1000, reported=3000)
    assert cal.ratio("m") == 1.5
    for _ in range(500):
        cal.observe("m", estimated=1000, reported=100)
    assert cal.ratio("m") == 0.8
    assert cal.ratio("other") == 1.0


def test_tiny_prompts_and_empty_reports_are_not_samples() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.observe("m", estimated=10, reported=30)
    cal.observe("m", estimated=1000, reported=0)
    assert cal.ratio("m") == 1.0


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="calibration_bounds"):
        Calibration(bounds=(1.2, 1.5))


def test_a_stated_limit_becomes_the_window() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=128_000, estimated=100_000, limit=64_000, requested=None)
    assert cal.window("m", 128_000) == 64_000
    assert cal.ratio("m") == 1.0


def test_a_stated_size_raises_the_ratio_beyond_the_calibration_bounds_if_needed() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=8000, estimated=4000, limit=8000, requested=9000)
    assert cal.ratio("m") == pytest.approx(9000 / 4000 * 1.02)
    cal.learn_overflow("m", configured_window=8000, estimated=2000, limit=None, requested=7900)
    assert cal.ratio("m") == pytest.approx(min(MAX_OVERFLOW_RATIO, 7900 / 2000 * 1.02))


def test_the_output_reserve_is_taken_out_of_a_stated_total() -> None:
    """OpenAI states prompt + max_tokens as "you requested": only the prompt part says how we count."""
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=8000, estimated=4000, limit=8000, requested=6800, max_tokens=2000)
    assert cal.ratio("m") == pytest.approx((6800 - 2000) / 4000 * 1.02)


def test_an_implausible_stated_size_is_not_taken_for_a_count_error() -> None:
    """A scripted or odd overflow message ("you requested 100000 tokens" for a 100-token prompt) must
    not shrink the model's usable window to a sliver: it counts as an overflow without figures."""
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=8000, estimated=100, limit=None, requested=100_000, max_tokens=50)
    assert cal.ratio("m") == pytest.approx(1.15)
    assert cal.ratio("m") < MAX_OVERFLOW_RATIO


def test_the_learned_window_is_never_below_what_the_provider_stated() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=128_000, estimated=100_000, limit=32_000, requested=None)
    assert cal.window("m", 128_000) == 32_000
    cal.learn_overflow("m", configured_window=128_000, estimated=50_000, limit=64_000, requested=None)
    assert cal.window("m", 128_000) == 64_000, "the provider's latest figure is the authority"
    cal.learn_overflow("m", configured_window=128_000, estimated=50_000, limit=None, requested=None)
    assert cal.window("m", 128_000) == 64_000, "an overflow without a limit leaves the window alone"
    cal.learn_overflow("m", configured_window=128_000, estimated=50_000, limit=200_000, requested=None)
    assert cal.window("m", 128_000) == 128_000


def test_what_an_overflow_taught_holds_then_decays_back() -> None:
    now = [0.0]
    cal = Calibration(bounds=(0.8, 1.5), clock=lambda: now[0])
    cal.learn_overflow("m", configured_window=16_000, estimated=4000, limit=8000, requested=9000)
    ratio, window = cal.ratio("m"), cal.window("m", 16_000)
    assert (ratio, window) == (pytest.approx(9000 / 4000 * 1.02), 8000)
    now[0] += RECOVERY_HOLD_S
    assert (cal.ratio("m"), cal.window("m", 16_000)) == (pytest.approx(ratio), 8000)
    now[0] += RECOVERY_HALF_LIFE_S
    assert cal.ratio("m") == pytest.approx(1 + (ratio - 1) / 2)
    assert cal.window("m", 16_000) == 12_000
    now[0] += 10 * RECOVERY_HALF_LIFE_S
    assert cal.ratio("m") == pytest.approx(1.0, abs=0.01)
    assert cal.window("m", 16_000) >= 15_990


def test_a_success_as_large_as_the_overflow_drops_the_floor() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=8000, estimated=4000, limit=None, requested=None)
    assert cal.ratio("m") == pytest.approx(1.15)
    cal.observe("m", estimated=1000, reported=1000)
    assert cal.ratio("m") > 1.05, "a smaller success only relaxes the floor a little"
    cal.observe("m", estimated=4000, reported=4040)
    assert cal.ratio("m") == pytest.approx(1.0, abs=0.01)


def test_a_success_beyond_the_stated_window_drops_it() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=16_000, estimated=1000, limit=2000, requested=None)
    assert cal.window("m", 16_000) == 2000
    cal.observe("m", estimated=2500, reported=2500)
    assert cal.window("m", 16_000) == 16_000


def test_an_unexplained_overflow_steps_the_ratio_up_and_success_relaxes_it() -> None:
    cal = Calibration(bounds=(0.8, 1.5))
    cal.learn_overflow("m", configured_window=8000, estimated=4000, limit=None, requested=None)
    assert cal.ratio("m") == pytest.approx(1.15)
    for _ in range(20):
        cal.observe("m", estimated=1000, reported=1000)
    assert cal.ratio("m") == pytest.approx(1.0)


def _conversation(window: int) -> tuple[Case, MemoryWriter]:
    store = InMemoryHistory()
    engine = BudgetEngine(config=budget_config(), source=store)
    m = model(window, max_output=1000)
    return Case(engine=engine, model=m, agent=agent()), MemoryWriter(engine, m, store)


async def test_after_an_overflow_the_retry_fits_the_limit_the_provider_stated() -> None:
    case, w = _conversation(16_000)
    for i in range(60):
        await w.append(f"t{i}", [Message.user(words(150, i)), Message.assistant(words(150, i))], turn_start=True)
    await w.append("now", [Message.user("go on")], turn_start=True)
    first = await case.prepare("now")
    # The provider counts 20% more than we do and its real window is 12k: it refuses.
    requested = int(first.estimated_prompt_tokens * 1.2) + first.max_tokens
    error = ContextOverflowError(
        "This model's maximum context length is 12000 tokens", limit=12_000, requested=requested
    )
    case.engine.learn_overflow(
        model_name="m", model=case.model, error=error, estimated_prompt_tokens=first.estimated_prompt_tokens
    )
    retry = await case.prepare("now")
    check_prepared(case, retry, await w.stored(), "now")
    true_prompt = math.ceil(retry.estimated_prompt_tokens * 1.2)
    assert true_prompt + retry.max_tokens <= 12_000
    assert retry.estimated_prompt_tokens < first.estimated_prompt_tokens


async def test_an_overflow_without_figures_still_shrinks_the_next_request() -> None:
    case, w = _conversation(16_000)
    for i in range(60):
        await w.append(f"t{i}", [Message.user(words(150, i)), Message.assistant(words(150, i))], turn_start=True)
    await w.append("now", [Message.user("go on")], turn_start=True)
    first = await case.prepare("now")
    case.engine.learn_overflow(
        model_name="m",
        model=case.model,
        error=ContextOverflowError("prompt is too long"),
        estimated_prompt_tokens=first.estimated_prompt_tokens,
    )
    retry = await case.prepare("now")
    assert retry.estimated_prompt_tokens * 1.15 <= first.estimated_prompt_tokens + 50
    check_prepared(case, retry, await w.stored(), "now")


async def test_calibration_shrinks_the_history_budget() -> None:
    case, w = _conversation(16_000)
    await w.append("now", [Message.user("hi")], turn_start=True)
    before = await case.prepare("now")
    case.engine.observe_usage(
        model_name="m", model=case.model, estimated_prompt_tokens=1000, reported_input_tokens=1300
    )
    after = await case.prepare("now")
    assert after.ratio == pytest.approx(1.15)
    assert after.history_budget < before.history_budget / 1.1
    other = await case.engine.prepare(
        conversation_id=1, turn_id="now", model_name="other", model=case.model, agent=case.agent, tools=()
    )
    assert other.history_budget == before.history_budget  # per model
