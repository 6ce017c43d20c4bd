"""The adapter conformance suite: every channel runs it with its own harness.

Usage, in ``tests/channels/<name>/test_conformance.py``::

    class TestSlackConformance(ConformanceSuite):
        @pytest.fixture
        def harness(self) -> ChannelHarness:
            return SlackHarness()

Override the ``bot_db_url`` fixture to run against another database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from botframework.errors import ErrorKind
from botframework.models.base import ModelRequest
from botframework.testing.harness import BotHarness, ChannelHarness, wait_until
from botframework.testing.scripted_model import Step

__all__ = ["ConformanceSuite", "long_markdown_reply"]

_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def long_markdown_reply(chars: int = 6000) -> str:
    """Paragraphs and code blocks, long enough to need several chunks on any channel with a limit."""
    parts: list[str] = []
    n = 0
    while sum(len(p) for p in parts) < chars:
        n += 1
        parts.append(f"Paragraph {n}: " + "the quick brown fox jumps over the lazy dog. " * 6)
        parts.append("```python\n" + "\n".join(f"def f{n}_{i}(x):\n    return x * {i}" for i in range(12)) + "\n```")
    return "\n\n".join(parts)


class ConformanceSuite:
    """Pytest test class; subclass it and provide the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> ChannelHarness:
        raise NotImplementedError("override the 'harness' fixture with your channel's ChannelHarness")

    @pytest.fixture
    def bot_db_url(self, tmp_path: Path) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / 'conformance.db'}"

    @pytest.fixture
    async def bot(self, harness: ChannelHarness, bot_db_url: str) -> AsyncIterator[BotHarness]:
        await harness.start()
        try:
            async with BotHarness(
                channel=harness.channel, channel_config=harness.channel_config(), db_url=bot_db_url
            ) as bot:
                await harness.connect(bot)
                yield bot
        finally:
            await harness.stop()

    async def _replies(self, harness: ChannelHarness, conversation: str, n: int) -> list[str]:
        async def enough() -> bool:
            return len(await harness.replies(conversation)) >= n

        await wait_until(enough, what=f"{n} repl(ies) in conversation {conversation!r}")
        return await harness.replies(conversation)

    def test_recorded_payloads_parse_to_the_expected_turn(self, harness: ChannelHarness) -> None:
        cases = harness.recorded_cases()
        if not cases:
            pytest.skip(f"{harness.channel}: no recorded payloads")
        for case in cases:
            turn = case.parse()
            if case.expected is None:
                assert turn is None, f"{case.name}: expected to be ignored, got {turn}"
                continue
            assert turn is not None, f"{case.name}: expected a Turn, got None"
            for key, value in case.expected.items():
                assert getattr(turn, key) == value, f"{case.name}: {key} = {getattr(turn, key)!r}, want {value!r}"

    async def test_history_far_larger_than_the_window_still_gets_a_reply(
        self, harness: ChannelHarness, bot: BotHarness
    ) -> None:
        stored = await bot.preload_history(harness.conversation_key("big"), turns=150, words_per_message=120)
        assert stored > 10 * bot.config.models["main"].context_window
        await harness.send(bot, conversation="big", text="still there?", event_id="big-1")
        [reply] = await self._replies(harness, "big", 1)
        assert "still there?" in reply
        assert bot.model.rejected == 0, "a request exceeded the model's window"

    async def test_the_same_event_delivered_several_times_gets_one_reply(
        self, harness: ChannelHarness, bot: BotHarness
    ) -> None:
        for _ in range(3):
            await harness.send(bot, conversation="dup", text="only once please", event_id="dup-1")
        await self._replies(harness, "dup", 1)
        await harness.send(bot, conversation="dup", text="second message", event_id="dup-2")
        replies = await self._replies(harness, "dup", 2)
        assert len(replies) == 2 and "second message" in replies[1]
        assert sum("only once please" in r.messages[-1].text for r in bot.model.requests if r.messages) == 1

    async def test_a_bad_signature_is_rejected_with_no_side_effect(
        self, harness: ChannelHarness, bot: BotHarness
    ) -> None:
        before = await bot.side_effects()
        status = await harness.send_forged(bot, conversation="forged", text="let me in", event_id="forged-1")
        if status is None:
            pytest.skip(f"{harness.channel}: no signature or token to forge")
        assert status == 401
        assert await bot.side_effects() == before
        assert bot.model.requests == []
        assert await harness.replies("forged") == []

    async def test_a_long_reply_arrives_in_chunks_within_the_limit(
        self, harness: ChannelHarness, bot: BotHarness
    ) -> None:
        text = long_markdown_reply()

        def reply(_request: ModelRequest) -> Step:
            return Step(text=text)

        bot.model.default = reply
        await harness.send(bot, conversation="long", text="write a lot", event_id="long-1")
        if harness.limit is None:
            [whole] = await self._replies(harness, "long", 1)
            assert whole == text
            return
        limit, unit = harness.limit
        expected_chunks = 2 if unit == "chars" and len(text) > limit * 2 else 1
        await self._replies(harness, "long", expected_chunks)
        await wait_until(_stable(harness, "long"), what="chunks to stop arriving")
        chunks = await harness.replies("long")
        assert len(chunks) >= 2
        for chunk in chunks:
            size = len(chunk) if unit == "chars" else len(chunk.encode("utf-8"))
            assert size <= limit, f"a chunk of {size} {unit} exceeds {limit}"
            assert len(_FENCE.findall(chunk)) % 2 == 0, f"unbalanced code fence in chunk: {chunk[:80]!r}"
        joined = re.sub(r"\s+", "", "".join(chunks).replace("```python", "").replace("```", ""))
        for word in ("Paragraph1:", "deff1_11(x):", "returnx*11"):
            assert word in joined

    async def test_a_model_failure_reaches_the_user_as_a_clear_message(
        self, harness: ChannelHarness, bot: BotHarness
    ) -> None:
        bot.model.steps.append(Step(error=ErrorKind.AUTH))
        await harness.send(bot, conversation="fail", text="hello?", event_id="fail-1")
        [reply] = await self._replies(harness, "fail", 1)
        assert "authenticate" in reply and "api_key" in reply


def _stable(harness: ChannelHarness, conversation: str) -> Callable[[], Awaitable[bool]]:
    seen: list[int] = []

    async def check() -> bool:
        seen.append(len(await harness.replies(conversation)))
        return len(seen) >= 10 and len(set(seen[-10:])) == 1

    return check
