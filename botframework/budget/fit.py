"""Pure fitting arithmetic: where history starts (cache-stable cuts) and trimming the running turn.

**Cache-stable cut.** History is cut on a fixed grid of token offsets: the chunk
``C = (1 - fill_ratio) x nominal history budget`` depends only on the model and the agent, and
the cut ``s`` is the smallest multiple of ``C`` that leaves at most the budget ``B`` of history
(never before the summary's coverage). The loader snaps ``s`` forward to the next turn start.
Consecutive turns therefore send a byte-identical prefix until history has grown by about ``C``,
then the cut jumps a whole chunk — dropping ``C`` tokens at once rather than one turn per
request — and the kept history stays between ``B - C`` (about ``fill_ratio x B``) and ``B``.
A per-conversation memory of the last cut stops the grid from stepping back when one turn's
budget was briefly smaller (a long input), as long as the fill stays at or above ``fill_ratio``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from botframework.budget.normalize import tool_blocks
from botframework.messages import Message

__all__ = ["choose_cut", "chunk_size", "message_cost", "protected_cost", "trim_running_turn"]


def message_cost(message: Message) -> int:
    """The counted tokens of a stored (or recounted) message."""
    return message.token_count or 0


def chunk_size(nominal_budget: int, fill_ratio: float) -> int:
    """The grid step: what is dropped at once when history overflows."""
    return max(1, int((1.0 - fill_ratio) * max(1, nominal_budget)))


def choose_cut(
    *,
    history_end: int,
    tail_tokens: int,
    budget: int,
    chunk: int,
    floor_offset: int,
    previous_cut: int | None,
    fill_ratio: float,
) -> int:
    """The token offset from which history may be kept.

    ``history_end`` is the offset where the running turn starts; ``tail_tokens`` counts history
    written after that (tails of earlier turns still running then). Everything from the returned
    offset to the end costs at most ``budget`` counted tokens; ``history_end`` means "no history".
    """
    if budget <= 0:
        return history_end
    total = history_end + tail_tokens
    if total - floor_offset <= budget:
        cut = floor_offset
    else:
        cut = max(floor_offset, chunk * math.ceil((total - budget) / chunk))
    if previous_cut is not None and cut < previous_cut <= history_end and total - previous_cut >= fill_ratio * budget:
        cut = previous_cut
    return min(cut, history_end)


def trim_running_turn(messages: Sequence[Message], budget: int, costs: Sequence[int] | None = None) -> list[int] | None:
    """Fit the running turn into ``budget`` counted tokens: the indexes kept, or None if its
    protected core cannot fit.

    ``messages`` is the repaired turn (its tool structure decides what is protected); ``costs``
    are what each message will cost as sent (default: its stored count). Protected: every user
    message (the input and anything steered in), the last unit, and the active tool tail (the
    last tool block, if only user messages follow it). Earlier completed tool rounds and
    intermediate assistant messages go first, oldest first, as whole blocks.
    """
    if costs is None:
        costs = [message_cost(m) for m in messages]
    total = sum(costs)
    if total <= budget:
        return list(range(len(messages)))
    units = _unit_ranges(messages)
    protected = _protected_units(messages, units)
    dropped: set[int] = set()
    for k, (lo, hi) in enumerate(units):
        if total <= budget:
            break
        if protected[k]:
            continue
        dropped.add(k)
        total -= sum(costs[lo:hi])
    if total > budget:
        return None
    return [i for k, (lo, hi) in enumerate(units) if k not in dropped for i in range(lo, hi)]


def _unit_ranges(messages: Sequence[Message]) -> list[tuple[int, int]]:
    ranges = []
    lo = 0
    for unit in tool_blocks(messages):
        ranges.append((lo, lo + len(unit)))
        lo += len(unit)
    return ranges


def _protected_units(messages: Sequence[Message], units: Sequence[tuple[int, int]]) -> list[bool]:
    protected = [messages[lo].role == "user" for lo, _ in units]
    if units:
        protected[-1] = True
        for k in range(len(units) - 1, -1, -1):
            first = messages[units[k][0]]
            if first.role == "user":
                continue
            if first.tool_calls:
                protected[k] = True
            break
    return protected


def protected_cost(messages: Sequence[Message], costs: Sequence[int] | None = None) -> int:
    """Counted tokens of the part of the running turn that is never dropped."""
    if costs is None:
        costs = [message_cost(m) for m in messages]
    units = _unit_ranges(messages)
    keep = _protected_units(messages, units)
    return sum(sum(costs[lo:hi]) for (lo, hi), k in zip(units, keep, strict=True) if k)
