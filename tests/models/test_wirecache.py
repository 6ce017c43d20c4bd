"""The wire cache: built once per stored message, never stale, bounded, and JSON equal to a fresh dump."""

from __future__ import annotations

import json
from dataclasses import replace

from botframework.messages import ImagePart, Message
from botframework.models.base import ModelRequest
from botframework.models.wirecache import WireCache, dumps, message_fingerprint
from providers.anthropic.wire import CachedWire as AnthropicWire
from providers.anthropic.wire import messages_body
from providers.openai.wire import CachedWire as OpenAIWire
from providers.openai.wire import chat_completions_body


def stored(message: Message, id: int) -> Message:
    message.id = id
    return message


def test_a_stored_message_is_built_once_and_rebuilt_when_it_changes() -> None:
    cache = WireCache()
    builds: list[str] = []

    def wire(m: Message) -> dict[str, str]:
        builds.append(m.text)
        return {"text": m.text}

    m = stored(Message.user("look", images=[ImagePart(url="https://x.test/a.png")]), 7)
    first = cache.get(m.id, message_fingerprint(m), lambda: wire(m))
    assert cache.get(m.id, message_fingerprint(m), lambda: wire(m)) is first
    stripped = m.without_images("[image omitted]")  # same id, other parts (a model without images)
    assert stripped.id == 7
    assert cache.get(7, message_fingerprint(stripped), lambda: wire(stripped)) == {"text": "look[image omitted]"}
    assert builds == ["look", "look[image omitted]"]
    assert (cache.hits, cache.misses) == (1, 2)


def test_bounded_by_entries_and_by_size() -> None:
    cache = WireCache(max_entries=3, max_chars=10_000)
    for i in range(5):
        cache.get(i, i, lambda i=i: {"n": i})
    assert len(cache) == 3
    cache.get(99, 99, lambda: {"big": "x" * 3000})  # over a quarter of max_chars: returned, not kept
    assert len(cache) == 3
    cache.get("a", "a", lambda: {"t": "y" * 2400})
    cache.get("b", "b", lambda: {"t": "y" * 2400})
    cache.get("c", "c", lambda: {"t": "y" * 2400})
    cache.get("d", "d", lambda: {"t": "y" * 2400})  # 4 x ~2400 > 10_000 chars: the oldest goes
    assert len(cache) == 3


def test_encode_reuses_pieces_and_equals_a_fresh_dump() -> None:
    cache = WireCache()
    piece = cache.get("p", "p", lambda: {"role": "user", "content": 'héllo "quoted"'})
    body = {"model": "m", "messages": [piece, {"role": "assistant", "content": None}], "n": 1.5}
    assert json.loads(cache.encode(body, depth=2)) == body
    assert cache.encode(body, depth=2).decode() == dumps(body)


def _history() -> list[Message]:
    return [
        stored(Message.assistant("prefill  "), 1),
        stored(Message.user("a"), 2),
        stored(Message.user("b", images=[ImagePart(url="data:image/png;base64,AAAA")]), 3),
        stored(Message.assistant("end   "), 4),
    ]


def test_anthropic_merging_never_alters_cached_blocks() -> None:
    wire = AnthropicWire()
    request = ModelRequest(system="s", messages=_history(), max_tokens=10)
    fresh = messages_body(request, model="c", stream=True)
    for _ in range(3):
        body = messages_body(request, model="c", stream=True, wire=wire)
        assert body == fresh
        assert json.loads(wire.encode(body)) == fresh
    assert wire.cache.hits == 8  # 4 stored messages, served from the cache on the 2nd and 3rd call


def test_openai_bodies_from_the_cache_equal_fresh_ones() -> None:
    wire = OpenAIWire()
    history = _history()
    for n in range(1, len(history) + 1):
        request = ModelRequest(system="s", messages=history[:n], max_tokens=10)
        body = chat_completions_body(request, model="gpt-4o", stream=False, wire=wire)
        assert json.loads(wire.encode(body)) == chat_completions_body(request, model="gpt-4o", stream=False)
    changed = replace(history[0], content=Message.assistant("other").content)
    body = chat_completions_body(
        ModelRequest(system="s", messages=[changed], max_tokens=10), model="m", stream=False, wire=wire
    )
    assert body["messages"][1]["content"] == "other"


def test_the_default_bound_holds_a_soak_to_tens_of_megabytes() -> None:
    """Issue 13: one cache per model client kept up to 32M characters of JSON (about 70 MB with the
    wire forms); a soak's memory rose for half an hour as the primary's and the fallback's filled."""
    import tracemalloc

    cache = OpenAIWire()
    text = "soak memory " * 330  # ~4,000 characters
    tracemalloc.start()
    try:
        for i in range(3_000):  # 12M characters offered
            cache.message(stored(Message.user(f"{i} {text}"), i))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert cache.cache._chars <= 8_000_000 == cache.cache.max_chars
    assert held < 24_000_000
