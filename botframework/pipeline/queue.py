"""The queue seam: how an accepted turn reaches the code that runs it.

The runtime stores a message and its turn, then hands the turn to a ``TurnQueue``. Two queues exist:

- ``EmbeddedQueue`` (the default, SQLite or PostgreSQL): today's in-process
  :class:`~botframework.scheduler.ConversationScheduler`; live replies and deliveries stay in the
  process.
- ``ProcrastinateQueue`` (:mod:`botframework.pipeline.scaleout`, PostgreSQL): the turn's job is
  written in the ingest transaction and any worker process runs it; live replies and replies that
  need a client connection travel back to the process holding it.

Everything else (ingest, the turn runner, deliveries) is the same code in both modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.scheduler import ConversationScheduler
from botframework.turn import ReplySink

if TYPE_CHECKING:
    from botframework.channel import ChannelAdapter
    from botframework.runtime import Runtime
    from storage.deliveries import DeliveryRecord

__all__ = ["EmbeddedQueue", "TurnQueue"]


class TurnQueue(Protocol):
    """What the runtime asks of a queue. Every method is cheap unless it says otherwise."""

    name: str
    """``embedded`` or ``procrastinate`` (``/healthz``)."""
    recovers_turns: bool
    """True when this process itself must re-run open turns at start (embedded); a shared queue
    recovers them through its own stalled-job handling instead."""

    async def enqueue(self, conn: AsyncConnection, *, conversation_id: int, turn_id: str) -> None:
        """Record the turn's job on ``conn``, inside the transaction that stores its message."""

    def submitted(self, conversation_id: int, turn_id: str) -> None:
        """The ingest transaction committed: start the turn if this process runs it."""

    async def take_waiting(self, conversation_id: int, running: str) -> list[str]:
        """Steering: the turns of the conversation accepted after ``running`` and not started."""

    def sink(self, turn_id: str, local: ReplySink) -> ReplySink:
        """Where the running turn streams its reply (``local``: this process's attached sinks)."""

    def hands_over(self, adapter: ChannelAdapter[Any]) -> bool:
        """True when this adapter's replies must be sent by another process (the one holding the
        user's connection), so the worker hands them over instead of delivering."""

    async def hand_over(self, delivery: DeliveryRecord) -> None:
        """Tell the processes holding connections that ``delivery`` is ready."""

    async def cancel(self, turn_id: str) -> bool:
        """A user cancel: interrupt the turn if it runs; True when it was found."""

    async def retry_delivery(self, delivery: DeliveryRecord, delay_s: float) -> bool:
        """Schedule another attempt at a pending reply in ``delay_s``; False: the caller retries in process."""

    async def start(self, runtime: Runtime) -> None:
        """Start what the queue runs in the background (after migrations)."""

    async def start_adapter(self, adapter: ChannelAdapter[Any]) -> None:
        """Start ``adapter`` (its outgoing connections), when this process is the one to hold them."""

    async def close(self) -> None:
        """Stop the background work; called before the database closes."""

    async def health(self) -> dict[str, Any]:
        """What ``/healthz`` adds for this queue: a shared queue reports the process's role and the
        queue's state (no tenant names: the endpoint is public)."""


class EmbeddedQueue:
    """One process does everything: turns run in this process's per-conversation scheduler."""

    name = "embedded"
    recovers_turns = True

    def __init__(self, *, scheduler: ConversationScheduler) -> None:
        self.scheduler = scheduler

    async def enqueue(self, conn: AsyncConnection, *, conversation_id: int, turn_id: str) -> None:
        return None

    def submitted(self, conversation_id: int, turn_id: str) -> None:
        self.scheduler.submit(conversation_id, turn_id)

    async def take_waiting(self, conversation_id: int, running: str) -> list[str]:
        return self.scheduler.take_waiting(conversation_id)

    def sink(self, turn_id: str, local: ReplySink) -> ReplySink:
        return local

    def hands_over(self, adapter: ChannelAdapter[Any]) -> bool:
        return False

    async def hand_over(self, delivery: DeliveryRecord) -> None:
        raise AssertionError("the embedded queue delivers in process")

    async def cancel(self, turn_id: str) -> bool:
        return self.scheduler.cancel(turn_id)

    async def retry_delivery(self, delivery: DeliveryRecord, delay_s: float) -> bool:
        return False

    async def start(self, runtime: Runtime) -> None:
        return None

    async def start_adapter(self, adapter: ChannelAdapter[Any]) -> None:
        await adapter.start()

    async def close(self) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        return {}  # one process: ``/healthz`` stays as it always was
