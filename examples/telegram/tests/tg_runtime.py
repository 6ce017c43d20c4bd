"""The core as an adapter sees it (``ChannelRuntime``), recording what the adapter hands over.

``ingest`` dedupes on (tenant, channel, event_id) like the real runtime and can be told to fail or
to be slow, so adapter tests can show an update is stored before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from botframework.channel import IngestResult, IngestStatus
from botframework.turn import ReplySink, Turn

__all__ = ["RecordingRuntime"]


@dataclass
class RecordingRuntime:
    fail_with: BaseException | None = None
    fail_times: int = 1
    """With ``fail_with``: how many ingests fail before they work again."""
    ingest_delay: float = 0.0
    turns: list[Turn] = field(default_factory=list)
    results: list[IngestResult] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    """Event ids whose ingest returned (a test compares it with the moment the ack went out)."""
    sinks: list[tuple[str, ReplySink]] = field(default_factory=list)
    _seen: dict[str, IngestResult] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def accepted(self) -> list[Turn]:
        return [t for t, r in zip(self.turns, self.results, strict=True) if not r.duplicate]

    async def ingest(self, turn: Turn) -> IngestResult:
        if self.ingest_delay:
            await asyncio.sleep(self.ingest_delay)
        if self.fail_with is not None and self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail_with
        key = f"{turn.tenant}/{turn.channel}/{turn.event_id}"
        previous = self._seen.get(key)
        if previous is not None:
            result = IngestResult(
                status=IngestStatus.DUPLICATE, turn_id=previous.turn_id, conversation_id=previous.conversation_id
            )
        else:
            result = IngestResult(status=IngestStatus.ACCEPTED, turn_id=f"turn-{next(self._ids)}", conversation_id=1)
            self._seen[key] = result
        self.turns.append(turn)
        self.results.append(result)
        self.completed.append(turn.event_id)
        return result

    async def has_conversation(self, tenant: str, channel: str, conversation_key: str) -> bool:
        return False

    async def transcript(
        self, tenant: str, channel: str, conversation_key: str, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        return []

    def attach_sink(self, tenant: str, channel: str, turn_id: str, sink: ReplySink) -> None:
        self.sinks.append((turn_id, sink))

    async def redeliver(self, tenant: str, channel: str, conversation_key: str) -> int:
        return 0

    async def cancel(self, tenant: str, channel: str, event_id: str) -> bool:
        return False
