"""A reply split in chunks whose delivery fails half-way resumes after what was sent: no repeats."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botframework.testing import BotHarness, long_markdown_reply, wait_until
from botframework.testing.scripted_model import Step
from storage.deliveries import pending_deliveries
from tests.channels.discord.test_conformance import DiscordHarness


@pytest.fixture
async def discord_bot(db_url: str) -> AsyncIterator[tuple[DiscordHarness, BotHarness]]:
    harness = DiscordHarness("dm")
    await harness.start()
    try:
        async with BotHarness(channel="discord", channel_config=harness.channel_config(), db_url=db_url) as bot:
            await harness.connect(bot)
            yield harness, bot
    finally:
        await harness.stop()


async def test_a_failed_chunk_is_retried_without_resending_earlier_chunks(
    discord_bot: tuple[DiscordHarness, BotHarness],
) -> None:
    harness, bot = discord_bot
    text = long_markdown_reply(7000)
    bot.model.default = lambda _request: Step(text=text)
    harness.fake.fail("POST", "/messages", 503, after=1)  # the second chunk fails once

    await harness.send(bot, conversation="resume", text="write a lot", event_id="resume-1")

    async def finished() -> bool:
        async with bot.runtime.db.read() as conn:
            return not await pending_deliveries(conn) and len(await harness.replies("resume")) >= 4

    await wait_until(finished, timeout=15, what="the retried delivery to finish")
    sent = await harness.replies("resume")
    assert sent[1] == sent[2], "the retry must resend exactly the chunk that failed"
    delivered = [sent[0], *sent[2:]]
    assert len(delivered) == len(set(delivered)), "a chunk was sent twice"
    assert all(len(chunk) <= 2000 for chunk in delivered)
