"""A recording ChannelRuntime for adapter unit tests: what the core would be asked, without the core.

It behaves like the real runtime where an adapter can tell the difference: ``ingest`` dedupes on
(tenant, channel, event_id), returns at once and leaves the "model" running in a background task
(which by default never finishes, so a test can prove an adapter's ack does not wait for it);
``has_conversation`` answers from conversations it has seen or was told about. It can be told to fail
(``fail_with``) or to be slow (``ingest_delay``). Every call is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botframework.channel import IngestResult, IngestStatus, Outbound, ReplyClaim
from botframework.channel_state import MemoryChannelState
from botframework.replay import MemoryNonceStore, ReplayGuard
from botframework.turn import ReplySink, Turn

__all__ = ["AttachedSink", "RecordingRuntime"]


@dataclass
class AttachedSink:
    tenant: str
    channel: str
    turn_id: str
    sink: ReplySink


@dataclass
class RecordingRuntime:
    """A ChannelRuntime that records calls. ``turns`` holds every ingested Turn (duplicates too)."""

    fail_with: BaseException | None = None
    fail_times: int | None = None
    """With ``fail_with``: fail only this many ingests, then work (None: always fail)."""
    ingest_delay: float = 0.0
    model: Callable[[Turn], Awaitable[None]] | None = None
    """What runs "in the background" for an accepted turn; default: hang until the test ends."""

    turns: list[Turn] = field(default_factory=list)
    results: list[IngestResult] = field(default_factory=list)
    sinks: list[AttachedSink] = field(default_factory=list)
    membership_checks: list[tuple[str, str, str]] = field(default_factory=list)
    redeliveries: list[tuple[str, str, str]] = field(default_factory=list)
    cancels: list[tuple[str, str, str]] = field(default_factory=list)
    acks: list[tuple[str, str, str]] = field(default_factory=list)
    replies: list[tuple[tuple[str, str, str], str]] = field(default_factory=list)
    conversations: set[tuple[str, str, str]] = field(default_factory=set)
    model_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    states: dict[tuple[str, str], MemoryChannelState] = field(default_factory=dict)
    """Channel state per (tenant, channel), created on first use."""
    claims: list[ReplyClaim] = field(default_factory=list)
    replay: ReplayGuard = field(default_factory=lambda: ReplayGuard(store=MemoryNonceStore()))
    """The real replay check, on bindings kept in memory."""
    replay_checks: list[tuple[str, str, str]] = field(default_factory=list)
    _keys: dict[str, bytes] = field(default_factory=dict)

    _seen: dict[tuple[str, str, str], IngestResult] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _conversation_ids: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _ingested: asyncio.Condition | None = None

    def join_conversation(self, tenant: str, channel: str, conversation_key: str) -> None:
        """Pretend the bot already takes part in a conversation (e.g. a thread it answered)."""
        self.conversations.add((tenant, channel, conversation_key))

    @property
    def accepted(self) -> list[Turn]:
        return [t for t, r in zip(self.turns, self.results, strict=True) if not r.duplicate]

    async def ingest(self, turn: Turn) -> IngestResult:
        if self.ingest_delay:
            await asyncio.sleep(self.ingest_delay)
        if self.fail_with is not None and (self.fail_times is None or self.fail_times > 0):
            if self.fail_times is not None:
                self.fail_times -= 1
            raise self.fail_with
        key = (turn.tenant, turn.channel, turn.event_id)
        conversation = (turn.tenant, turn.channel, turn.conversation_key)
        previous = self._seen.get(key)
        if previous is not None:
            result = IngestResult(
                status=IngestStatus.DUPLICATE,
                turn_id=previous.turn_id,
                conversation_id=previous.conversation_id,
            )
        else:
            conversation_id = self._conversation_ids.setdefault(conversation, len(self._conversation_ids) + 1)
            result = IngestResult(
                status=IngestStatus.ACCEPTED,
                turn_id=f"turn-{next(self._ids)}",
                conversation_id=conversation_id,
            )
            self._seen[key] = result
            self.conversations.add(conversation)
            self.model_tasks.append(asyncio.create_task(self._run_model(turn)))
        self.turns.append(turn)
        self.results.append(result)
        cond = self._condition()
        async with cond:
            cond.notify_all()
        return result

    async def _run_model(self, turn: Turn) -> None:
        if self.model is not None:
            await self.model(turn)
        else:
            await asyncio.Event().wait()

    async def has_conversation(self, tenant: str, channel: str, conversation_key: str) -> bool:
        self.membership_checks.append((tenant, channel, conversation_key))
        return (tenant, channel, conversation_key) in self.conversations

    async def transcript(
        self, tenant: str, channel: str, conversation_key: str, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The accepted user turns of a conversation plus ``replies`` added by the test, oldest first."""
        rows: list[dict[str, Any]] = [
            {"role": "user", "text": t.text, "event_id": t.event_id}
            for t in self.accepted
            if (t.tenant, t.channel, t.conversation_key) == (tenant, channel, conversation_key)
        ]
        rows += [
            {"role": "assistant", "text": text, "event_id": None}
            for key, text in self.replies
            if key == (tenant, channel, conversation_key)
        ]
        return rows[-limit:]

    def attach_sink(self, tenant: str, channel: str, turn_id: str, sink: ReplySink) -> None:
        self.sinks.append(AttachedSink(tenant=tenant, channel=channel, turn_id=turn_id, sink=sink))

    async def redeliver(self, tenant: str, channel: str, conversation_key: str) -> int:
        self.redeliveries.append((tenant, channel, conversation_key))
        return 0

    async def acknowledge(self, tenant: str, channel: str, event_id: str) -> bool:
        self.acks.append((tenant, channel, event_id))
        return any((t.tenant, t.channel, t.event_id) == (tenant, channel, event_id) for t in self.accepted)

    async def cancel(self, tenant: str, channel: str, event_id: str, *, conversation_key: str | None = None) -> bool:
        self.cancels.append((tenant, channel, event_id))
        return False

    def channel_state(self, tenant: str, channel: str) -> MemoryChannelState:
        return self.states.setdefault((tenant, channel), MemoryChannelState())

    async def check_replay(
        self, *, tenant: str, channel: str, timestamp: str, nonce: str, body: bytes, window_s: int
    ) -> None:
        self.replay_checks.append((channel, timestamp, nonce))
        await self.replay.check(
            tenant=tenant, channel=channel, timestamp=timestamp, nonce=nonce, body=body, window_s=window_s
        )

    async def deployment_key(self, name: str) -> bytes:
        return self._keys.setdefault(name, secrets.token_bytes(32))

    async def wait_reply(self, tenant: str, channel: str, event_id: str, *, timeout: float) -> bool:
        """No reply is ever recorded here: waits the timeout and says so."""
        await asyncio.sleep(timeout)
        return False

    async def held_replies(self, tenant: str, channel: str, conversation_key: str) -> list[Outbound]:
        return []

    async def claim_replies(self, claims: Sequence[ReplyClaim]) -> bool:
        self.claims.extend(claims)
        return True

    def _condition(self) -> asyncio.Condition:
        if self._ingested is None:
            self._ingested = asyncio.Condition()
        return self._ingested

    async def wait_for_turns(self, count: int, within: float = 5.0) -> list[Turn]:
        """Wait until ``count`` turns were ingested (for gateway channels, where ingest is not awaited)."""
        cond = self._condition()

        async def reached() -> None:
            async with cond:
                await cond.wait_for(lambda: len(self.turns) >= count)

        await asyncio.wait_for(reached(), within)
        return self.turns

    async def aclose(self) -> None:
        """Cancel the pretend model tasks (call at the end of a test)."""
        for task in self.model_tasks:
            task.cancel()
        await asyncio.gather(*self.model_tasks, return_exceptions=True)
