"""The offline stand-in: labelled, deterministic, streams, counts tokens, exercises the clock tool."""

from __future__ import annotations

from botframework.messages import Message, ToolSpec
from botframework.models.base import ModelRequest
from botframework.models.tokens import count_chat_tokens, encoding
from providers.offline.client import OFFLINE_LABEL, OfflineClient, PromptCounter, asks_for_time
from tests.models.helpers import config

CLOCK = ToolSpec(name="clock", description="The current date and time.")


def client() -> OfflineClient:
    return OfflineClient(name="local", config=config("offline", model="offline-echo"))


async def test_labelled_streamed_and_counted() -> None:
    chunks: list[str] = []

    async def on_text(t: str) -> None:
        chunks.append(t)

    req = ModelRequest(system="Be nice.", messages=[Message.user("Tell me a story")], max_tokens=200)
    response = await client().complete(req, on_text=on_text)
    assert response.text.startswith(OFFLINE_LABEL)
    assert "Tell me a story" in response.text
    assert 2 <= len(chunks) <= 4 and "".join(chunks) == response.text
    enc = encoding()
    assert response.usage.input_tokens == count_chat_tokens(
        enc, [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Tell me a story"}]
    )
    assert response.usage.output_tokens == len(enc.encode(response.text))
    assert response.finish_reason == "stop" and response.model == "offline-echo"
    again = await client().complete(req)
    assert again == response, "deterministic"


async def test_clock_tool_round_trip() -> None:
    c = client()
    history = [Message.user("What time is it in Paris?")]
    first = await c.complete(ModelRequest(system="", messages=history, tools=[CLOCK], max_tokens=100))
    assert first.finish_reason == "tool_calls" and first.text == ""
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("clock", "{}")
    history += [
        Message.assistant(tool_calls=[call]),
        Message.tool_result(call.id, "2026-11-05T10:00:00+00:00 (Thursday, UTC)", name="clock"),
    ]
    second = await c.complete(ModelRequest(system="", messages=history, tools=[CLOCK], max_tokens=100))
    assert second.tool_calls == () and second.finish_reason == "stop"
    assert second.text == f"{OFFLINE_LABEL} The clock tool says: 2026-11-05T10:00:00+00:00 (Thursday, UTC)"


async def test_no_tool_call_when_clock_is_not_offered_or_not_asked() -> None:
    c = client()
    asked = [Message.user("what time is it?")]
    assert (await c.complete(ModelRequest(system="", messages=asked, max_tokens=100))).tool_calls == ()
    other = [Message.user("hello there")]
    assert (await c.complete(ModelRequest(system="", messages=other, tools=[CLOCK], max_tokens=100))).tool_calls == ()


async def test_tool_error_result_is_reported() -> None:
    history = [
        Message.user("time?"),
        Message.tool_result("c1", "unknown time zone 'Mars'", name="clock", is_error=True),
    ]
    r = await client().complete(ModelRequest(system="", messages=history, max_tokens=100))
    assert r.text == f"{OFFLINE_LABEL} The clock tool failed: unknown time zone 'Mars'"


async def test_max_tokens_cuts_with_length() -> None:
    r = await client().complete(ModelRequest(system="", messages=[Message.user("x " * 50)], max_tokens=5))
    assert r.finish_reason == "length" and r.usage.output_tokens == 5
    assert r.text.startswith("[offline")


def test_time_questions() -> None:
    for text in (
        "What time is it?",
        "what's the time",
        "current time please",
        "现在几点",
        "what is the date today",
    ):
        assert asks_for_time(text), text
    for text in ("sometimes I wonder", "tell me a joke", "a long time ago"):
        assert not asks_for_time(text), text


def test_prompt_counter_matches_the_cookbook_count_and_stays_bounded() -> None:
    """The remembered per-value counts add up to exactly what ``count_chat_tokens`` says, also
    once entries were evicted, for a prompt growing the way a conversation's does."""
    enc = encoding()
    counter = PromptCounter(max_entries=5)
    prompt: list[dict[str, str]] = [{"role": "system", "content": "Be nice."}]
    for i in range(12):
        prompt.append({"role": "user", "content": f"question {i}: " + "word " * i})
        prompt.append({"role": "tool", "content": f"result {i}", "name": "clock"})
        assert counter.count(enc, prompt) == count_chat_tokens(enc, prompt)
    assert len(counter._counts) == 5
