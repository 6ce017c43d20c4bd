"""The decoded-history cache stays bounded in memory, not only in tokens (issue 13)."""

from __future__ import annotations

from dataclasses import replace

from botframework.budget.sources import MessageCache
from botframework.messages import Message


def _short(i: int) -> Message:
    return replace(Message.user(f"hi {i}"), id=i, turn_id=f"t{i}", turn_start=False, token_count=5, offset=i)


def _key(i: int) -> tuple[int, str, bool, int, int]:
    """The stored row's key of ``_short(i)``."""
    return (i, f"t{i}", False, 5, i)


def test_many_short_messages_are_bounded_by_count_not_only_by_tokens() -> None:
    """25,000 chat-sized messages are 125k tokens, far under the 2M-token bound: before the count
    bound every one stayed (about 0.5 KB each: a soak's memory kept rising for half an hour)."""
    cache = MessageCache()
    for i in range(25_000):
        cache.put(_short(i))
    assert len(cache) == cache.max_entries == 20_000
    assert cache.get(_key(24_999)) is not None
    assert cache.get(_key(0)) is None


def test_the_token_bound_still_applies_and_a_hit_is_kept_longest() -> None:
    cache = MessageCache(max_tokens=20, max_entries=100)
    for i in range(6):
        cache.put(_short(i))  # 30 tokens: the two oldest go
    assert len(cache) == 4
    assert cache.get(_key(2)) is not None  # now the most recent
    cache.put(_short(6))
    assert cache.get(_key(3)) is None
    assert cache.get(_key(2)) is not None
