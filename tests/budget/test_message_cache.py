"""The decoded-history cache stays bounded in memory, not only in tokens (issue 13)."""

from __future__ import annotations

from dataclasses import replace

from botframework.budget.sources import MessageCache
from botframework.messages import Message


def _short(i: int) -> Message:
    return replace(Message.user(f"hi {i}"), id=i, turn_id=f"t{i}", token_count=5, offset=i)


def test_many_short_messages_are_bounded_by_count_not_only_by_tokens() -> None:
    """25,000 chat-sized messages are 125k tokens, far under the 2M-token bound: before the count
    bound every one stayed (about 0.5 KB each: a soak's memory kept rising for half an hour)."""
    cache = MessageCache()
    for i in range(25_000):
        cache.put(_short(i))
    assert len(cache) == cache.max_entries == 20_000
    newest, oldest = _short(24_999), _short(0)
    assert cache.get((24_999, newest.turn_id, newest.turn_start, 5, 24_999)) is not None
    assert cache.get((0, oldest.turn_id, oldest.turn_start, 5, 0)) is None


def test_the_token_bound_still_applies_and_a_hit_is_kept_longest() -> None:
    cache = MessageCache(max_tokens=20, max_entries=100)
    for i in range(6):
        cache.put(_short(i))  # 30 tokens: the two oldest go
    assert len(cache) == 4
    first = _short(2)
    assert cache.get((2, first.turn_id, first.turn_start, 5, 2)) is not None  # now most recent
    cache.put(_short(6))
    assert cache.get((3, "t3", first.turn_start, 5, 3)) is None
    assert cache.get((2, first.turn_id, first.turn_start, 5, 2)) is not None
