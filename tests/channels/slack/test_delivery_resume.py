"""A reply split in chunks whose delivery fails half-way resumes after what was posted: no repeats."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botframework.testing import BotHarness, long_markdown_reply, wait_until
from botframework.testing.scripted_model import Step
from tests.channels.slack.test_conformance import SlackHarness


@pytest.fixture
async def slack_bot(db_url: str) -> AsyncIterator[tuple[SlackHarness, BotHarness]]:
    harness = SlackHarness("im")
    await harness.start()
    bot = BotHarness(channel="slack", channel_config=harness.channel_config(), db_url=db_url)
    await bot.__aenter__()
    await harness.connect(bot)
    yield harness, bot
    await bot.__aexit__(None, None, None)
    await harness.stop()


async def test_a_failed_chunk_is_retried_without_reposting_earlier_chunks(
        slack_bot: tuple[SlackHarness, BotHarness]) -> None:
    harness, bot = slack_bot
    text = long_markdown_reply(9000)
    bot.model.default = lambda _request: Step(text=text)
    harness.fake.fail("chat.postMessage", "internal_error", after=1)  # chunk 2 fails once

    await harness.send(bot, conversation="resume", text="write a lot", event_id="resume-1")

    async def all_posted() -> bool:
        async with bot.runtime.db.read() as conn:
            from storage.deliveries import pending_deliveries

            return not await pending_deliveries(conn) and len(await harness.replies("resume")) >= 3

    await wait_until(all_posted, timeout=15, what="the retried delivery to finish")
    texts = [call.params["text"] for call in harness.fake.calls_to("chat.postMessage")]
    assert len(texts) >= 4
    assert texts[1] == texts[2], "the retry must resend exactly the chunk that failed"
    delivered = [texts[0], *texts[2:]]
    assert len(delivered) == len(set(delivered)), "a chunk was posted twice"
    assert delivered[0].startswith("Paragraph 1:")
