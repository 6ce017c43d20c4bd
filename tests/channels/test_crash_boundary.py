"""A process that dies after the vendor took a reply part but before it recorded that: no duplicate.

The first bot freezes right after the vendor call of part 2 of 3 returns (nothing after it runs, as
in a SIGKILL); a second bot on the same database then starts and recovers the pending delivery. What
the user sees is counted at the fake vendor, after its own dedupe: every part exactly once.

- Slack has no idempotency key: the part found in flight is looked up in the thread or DM by its
  metadata marker (``conversations.replies`` / ``conversations.history``) and not sent again.
- Discord: the part is sent again with the same ``nonce`` and ``enforce_nonce``; Discord returns the
  message it already created.
- Feishu: sent again with the same ``uuid``; Feishu returns the first message.
- WeCom: sent again with the duplicate check on, over a window reaching back to the first attempt;
  WeCom drops the repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from botframework.channel import Outbound, part_key
from botframework.testing import BotHarness, ChannelHarness, Step, long_markdown_reply, wait_until
from botframework.testing.harness import TENANT
from storage.deliveries import delivery_for_turn, pending_deliveries
from tests.channels.discord.test_conformance import DiscordHarness
from tests.channels.feishu.test_conformance import FeishuHarness
from tests.channels.slack.test_conformance import SlackHarness
from tests.channels.wecom.test_conformance import WeComHarness
from tests.fakes.wecom_api import FakeWeCom

CRASH_AT = 1
"""The part (0-based) whose vendor call succeeds just before the process dies."""


@dataclass(frozen=True)
class Case:
    make: Callable[[], ChannelHarness]
    seen: Callable[[Any, str], list[str]]
    """What the user sees in ``conversation``: the texts the vendor really posted, after its dedupe."""


def _discord_seen(harness: Any, conversation: str) -> list[str]:
    channel_id = harness._channel_id(conversation)
    return [str(m["content"]) for m in harness.fake.created if m["channel_id"] == channel_id]


def _feishu_seen(harness: Any, conversation: str) -> list[str]:
    chat = harness._chat(conversation)
    return [str(m["content"]) for m in harness.fake.sent if m["chat_id"] == chat]


def _wecom_seen(harness: Any, conversation: str) -> list[str]:
    user = harness.conversation_key(conversation)
    return [str(b["markdown"]["content"]) for b in harness.fake.sent if b.get("touser") == user]


def _slack_posted(harness: Any, conversation: str) -> list[str]:
    channel = harness._channel_id(conversation)
    posted = [p for p in harness.fake.posted if p.get("channel") == channel]
    if harness.kind == "mention":
        posted = [p for p in posted if p.get("thread_ts") == harness._thread_root(conversation)]
    return [str(p.get("text", "")) for p in posted]


CASES = {
    "slack-im": Case(lambda: SlackHarness("im"), _slack_posted),
    "slack-thread": Case(lambda: SlackHarness("mention"), _slack_posted),
    "discord": Case(lambda: DiscordHarness("mention"), _discord_seen),
    "feishu": Case(lambda: FeishuHarness("p2p"), _feishu_seen),
    "wecom": Case(lambda: WeComHarness(), _wecom_seen),
}


def _reply_for(harness: ChannelHarness) -> str:
    assert harness.limit is not None
    return long_markdown_reply(int(harness.limit[0] * 2.4))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_crash_between_sent_and_recorded_sends_no_part_twice(name: str, db_url: str) -> None:
    case = CASES[name]
    harness = case.make()
    await harness.start()
    first = BotHarness(channel=harness.channel, channel_config=harness.channel_config(), db_url=db_url)
    second: BotHarness | None = None
    frozen: list[asyncio.Task[Any]] = []
    try:
        await first.__aenter__()
        await harness.connect(first)
        text = _reply_for(harness)
        parts = first.adapter.render_reply(text)
        assert len(parts) >= 3, f"{name}: the reply must need several parts, got {len(parts)}"
        first.model.default = lambda _request: Step(text=text)
        send_part = first.adapter.send_part

        async def send_then_die(target: Any, part: str, *, index: int, outbound: Outbound) -> None:
            await send_part(target, part, index=index, outbound=outbound)
            if index == CRASH_AT and not frozen:
                task = asyncio.current_task()
                assert task is not None
                frozen.append(task)
                await asyncio.Event().wait()  # the process is gone: nothing after the vendor call runs

        first.adapter.send_part = send_then_die
        await harness.send(first, conversation="boundary", text="write a lot", event_id="boundary-1")

        async def died() -> bool:
            return bool(frozen)

        await wait_until(died, timeout=15, what="the first bot to die mid-send")
        assert case.seen(harness, "boundary") == parts[: CRASH_AT + 1]
        async with first.runtime.db.read() as conn:
            (pending,) = await pending_deliveries(conn)
        assert pending.in_flight is not None and pending.in_flight.index == CRASH_AT, pending

        second = BotHarness(channel=harness.channel, channel_config=harness.channel_config(), db_url=db_url)
        await second.__aenter__()  # recovers the pending delivery
        await _reconnect(harness, second)
        runtime = second.runtime

        async def delivered() -> bool:
            async with runtime.db.read() as conn:
                record = await delivery_for_turn(conn, pending.turn_id)
            return record is not None and str(record.status) == "sent"

        await wait_until(delivered, timeout=20, what="the recovered delivery to finish")
        await asyncio.sleep(0.3)  # let a duplicate show itself
        assert case.seen(harness, "boundary") == parts, f"{name}: a part was lost or repeated"
        _check_vendor_key(name, harness, pending.turn_id)
    finally:
        for task in frozen:
            task.cancel()
        if second is not None:
            await second.__aexit__(None, None, None)
        await first.__aexit__(None, None, None)
        await harness.stop()


async def _reconnect(harness: ChannelHarness, bot: BotHarness) -> None:
    """The second bot's session (the Discord harness's own ``connect`` expects the first identify)."""
    if not isinstance(harness, DiscordHarness):
        await harness.connect(bot)
        return
    client = bot.adapter.client

    async def logged_in() -> bool:
        return client.user is not None and not client.is_closed()

    await wait_until(logged_in, timeout=15, what="the second bot's Discord session")


def _check_vendor_key(name: str, harness: Any, turn_id: str) -> None:
    """The resend carried the part's key where the vendor dedupes on one (or the check was made)."""
    key = part_key(tenant=TENANT, channel=harness.channel, turn_id=turn_id, index=CRASH_AT)
    if name.startswith("slack"):
        reads = harness.fake.calls_to("conversations.replies") + harness.fake.calls_to("conversations.history")
        assert reads, "the part in flight was not looked up"
        assert all(str(r.params.get("include_all_metadata")).lower() in ("1", "true") for r in reads)
        markers = [p.get("metadata") for p in harness.fake.posted]
        assert all(m and m["event_payload"]["key"] for m in markers)
        assert sum(1 for m in markers if m and m["event_payload"]["key"] == key) == 1
    elif name == "discord":
        tries = [r.json or {} for r in harness.fake.sent_messages if (r.json or {}).get("nonce") == key]
        assert len(tries) == 2 and all(t.get("enforce_nonce") is True for t in tries), tries
    elif name == "feishu":
        tries = [c for c in harness.fake.calls if c.kind in ("reply", "create") and c.body.get("uuid") == key]
        assert len(tries) == 2, tries
    elif name == "wecom":
        fake: FakeWeCom = harness.fake
        assert len(fake.deduplicated) == 1, fake.deduplicated
        repeat = fake.deduplicated[0]
        assert repeat["enable_duplicate_check"] == 1 and repeat["duplicate_check_interval"] >= 60
        assert repeat["markdown"] == fake.sent[CRASH_AT]["markdown"]
        assert all("enable_duplicate_check" not in b for b in fake.sent), "first sends must not be deduped"

