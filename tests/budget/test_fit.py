"""Pure fitting arithmetic: the cache-stable cut grid, trimming the running turn, the output reserve."""

from __future__ import annotations

import itertools

from botframework.budget.fit import choose_cut, chunk_size, protected_cost, trim_running_turn
from botframework.budget.reserve import Limits, output_floor, output_reserve
from botframework.messages import Message, ToolCall
from tests.budget.helpers import agent, budget_config, model


def test_everything_fits_keeps_from_the_floor() -> None:
    assert (
        choose_cut(
            history_end=900, tail_tokens=0, budget=1000, chunk=300, floor_offset=0, previous_cut=None, fill_ratio=0.7
        )
        == 0
    )
    assert (
        choose_cut(
            history_end=900, tail_tokens=0, budget=1000, chunk=300, floor_offset=400, previous_cut=None, fill_ratio=0.7
        )
        == 400
    )


def test_overflow_cuts_on_the_grid_and_fill_stays_between_budget_minus_chunk_and_budget() -> None:
    budget, chunk = 1000, 300
    for end in range(1001, 5000, 37):
        cut = choose_cut(
            history_end=end,
            tail_tokens=0,
            budget=budget,
            chunk=chunk,
            floor_offset=0,
            previous_cut=None,
            fill_ratio=0.7,
        )
        assert cut % chunk == 0
        assert budget - chunk < end - cut <= budget


def test_the_cut_moves_only_when_history_outgrows_the_budget() -> None:
    cuts = [
        choose_cut(
            history_end=end, tail_tokens=0, budget=1000, chunk=300, floor_offset=0, previous_cut=None, fill_ratio=0.7
        )
        for end in range(1000, 2000, 50)
    ]
    changes = sum(1 for a, b in itertools.pairwise(cuts) if a != b)
    assert changes <= 4  # ~ one jump per chunk of growth, not one per turn


def test_tails_written_after_the_running_turn_count_against_the_budget() -> None:
    cut = choose_cut(
        history_end=1000, tail_tokens=200, budget=1000, chunk=100, floor_offset=0, previous_cut=None, fill_ratio=0.7
    )
    assert cut == 200


def test_a_previous_cut_is_kept_while_the_fill_is_good() -> None:
    # A long input shrank the budget once (cut moved to 600); next turn the grid would say 300.
    cut = choose_cut(
        history_end=1400, tail_tokens=0, budget=1100, chunk=300, floor_offset=0, previous_cut=600, fill_ratio=0.7
    )
    assert cut == 600
    # ...but not when keeping it would leave history far below the fill ratio.
    cut = choose_cut(
        history_end=1400, tail_tokens=0, budget=1100, chunk=300, floor_offset=0, previous_cut=1200, fill_ratio=0.7
    )
    assert cut == 300


def test_no_budget_means_no_history() -> None:
    assert (
        choose_cut(
            history_end=500, tail_tokens=0, budget=0, chunk=10, floor_offset=0, previous_cut=None, fill_ratio=0.7
        )
        == 500
    )


def test_chunk_is_the_unfilled_share_of_the_nominal_budget() -> None:
    assert chunk_size(100_000, 0.7) == 30_000
    assert chunk_size(-5, 0.7) == 1


def _stamp(m: Message, cost: int) -> Message:
    m.token_count = cost
    return m


def _round(i: int, cost: int) -> list[Message]:
    return [
        _stamp(Message.assistant("", tool_calls=[ToolCall(f"c{i}", "t", "{}")]), cost),
        _stamp(Message.tool_result(f"c{i}", "r"), cost),
    ]


def test_running_turn_drops_old_rounds_first_and_keeps_the_active_tail() -> None:
    turn = [
        _stamp(Message.user("q"), 10),
        *_round(1, 50),
        _stamp(Message.user("steered"), 10),
        *_round(2, 50),
        *_round(3, 20),
    ]
    kept = trim_running_turn(turn, 100)
    assert kept is not None
    assert [
        turn[i].tool_call_id or (turn[i].tool_calls[0].id if turn[i].tool_calls else turn[i].text) for i in kept
    ] == ["q", "steered", "c3", "c3"]
    assert protected_cost(turn) == 10 + 10 + 40
    assert trim_running_turn(turn, 59) is None
    assert trim_running_turn(turn, 1000) == list(range(len(turn)))


def test_a_steered_message_after_the_last_block_keeps_that_block_protected() -> None:
    turn = [_stamp(Message.user("q"), 10), *_round(1, 50), *_round(2, 20), _stamp(Message.user("steered"), 10)]
    kept = trim_running_turn(turn, 70)
    assert kept == [0, 3, 4, 5]


def test_output_reserve_is_the_smallest_cap() -> None:
    cfg = budget_config()
    assert output_reserve(cfg, model(128_000, max_output=16_384), agent(), window=128_000) == 16_384
    assert output_reserve(cfg, model(128_000, max_output=16_384), agent(max_output_tokens=4096), window=128_000) == 4096
    assert output_reserve(cfg, model(8192, max_output=8192), agent(), window=8192) == 4096  # window / 2
    assert (
        output_reserve(
            budget_config(default_output_cap=1000), model(128_000, max_output=16_384), agent(), window=128_000
        )
        == 1000
    )
    assert output_floor(cfg, 16_384) == 256 and output_floor(cfg, 128) == 128


def test_max_tokens_is_what_is_left_after_prompt_and_margin() -> None:
    limits = Limits(window=1000, margin=20, reserve=300, floor=100, ratio=1.25, exact=True)
    assert limits.max_tokens_for(400) == 300
    assert limits.max_tokens_for(600) == 1000 - 20 - 750
    assert limits.fits(704) and not limits.fits(705)  # ceil(705 * 1.25) = 882 -> 98 left
    assert limits.prompt_room_raw == 544 and limits.max_prompt_raw == 704
