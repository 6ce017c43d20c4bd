"""The shared queue: turns as procrastinate jobs in PostgreSQL, run by any worker process.

- **Enqueue.** The job row is inserted in the ingest transaction (:func:`storage.queue.insert_job`),
  with ``lock`` = the conversation, so procrastinate never starts a conversation's next turn while
  one runs and starts them in arrival order, on whichever worker is free. The inbound-event dedupe
  runs in that same transaction, so a redelivered event makes no second job; ``queueing_lock`` =
  the turn also refuses a second waiting job for one turn.
- **Steering.** A running turn takes the conversation's turns that are still ``queued`` from the
  database before each model call and merges them (:func:`storage.queue.queued_turns`); their jobs
  then find the turn merged and end at once.
- **Live replies and replies over a connection** go back to the process holding the socket through
  :mod:`botframework.pipeline.relay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.config.schema import QueueConfig
from botframework.errors import StorageError
from botframework.metrics import Metrics
from botframework.pipeline.lease import GatewayLease
from botframework.pipeline.relay import LiveEvent, RelayListener, RelayPublisher, RelaySink
from botframework.pipeline.roles import Role, libpq_dsn
from botframework.pipeline.worker import DELIVER_TASK, TURN_QUEUE, TURN_TASK, QueueWorker
from botframework.states import DeliveryStatus
from botframework.turn import ReplySink
from storage.db import Database
from storage.deliveries import delivery_for_turn, pending_deliveries
from storage.queue import (
    DELIVERY_LOCK_PREFIX,
    LOCK_PREFIX,
    TURN_LOCK_PREFIX,
    QueueState,
    insert_job,
    queue_state,
    queued_turns,
    request_abort,
)
from storage.turns import turn_record

if TYPE_CHECKING:
    from botframework.channel import ChannelAdapter
    from botframework.runtime import Runtime
    from storage.deliveries import DeliveryRecord

__all__ = ["ProcrastinateQueue", "QueueGauges", "conversation_lock"]

log = logging.getLogger("botframework.pipeline")


def conversation_lock(conversation_id: int) -> str:
    return f"{LOCK_PREFIX}{conversation_id}"


class ProcrastinateQueue:
    """The queue of a process in a scale-out deployment (any role)."""

    name = "procrastinate"
    recovers_turns = False

    def __init__(
        self,
        *,
        db: Database,
        role: Role,
        config: QueueConfig,
        concurrency: int | None = None,
        sweep_interval_s: float = 5.0,
    ) -> None:
        self.db = db
        self.role = role
        self.config = config
        self.concurrency = concurrency or config.concurrency
        self.publisher = RelayPublisher(db=db, interval_s=config.live_interval_ms / 1000)
        self._sweep_interval_s = sweep_interval_s
        self.listener: RelayListener | None = None
        self.worker: QueueWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._runtime: Runtime | None = None
        self._gauges: QueueGauges | None = None
        self.leases: dict[tuple[str, str], GatewayLease] = {}
        self._delivering: set[str] = set()
        self._gauge_task: asyncio.Task[None] | None = None

    async def enqueue(self, conn: AsyncConnection, *, conversation_id: int, turn_id: str) -> None:
        await insert_job(
            conn,
            queue=TURN_QUEUE,
            task=TURN_TASK,
            lock=conversation_lock(conversation_id),
            queueing_lock=f"{TURN_LOCK_PREFIX}{turn_id}",
            args={"conversation_id": conversation_id, "turn_id": turn_id},
        )

    def submitted(self, conversation_id: int, turn_id: str) -> None:
        return None  # procrastinate's insert trigger has already woken the workers

    async def take_waiting(self, conversation_id: int, running: str) -> list[str]:
        async with self.db.read() as conn:
            return await queued_turns(conn, conversation_id=conversation_id, running=running)

    def sink(self, turn_id: str, local: ReplySink) -> ReplySink:
        return RelaySink(self.publisher, turn_id)

    def hands_over(self, adapter: ChannelAdapter[Any]) -> bool:
        return adapter.replies_on_connection or adapter.holds_gateway

    async def hand_over(self, delivery: DeliveryRecord) -> None:
        self.publisher.publish(LiveEvent(turn_id=delivery.turn_id, kind="done"))

    async def cancel(self, turn_id: str) -> bool:
        """Ask procrastinate to abort the turn's running job, wherever it runs (its worker answers
        "Cancelled."). A turn still waiting is not cancelled: it runs, as it would when merged."""
        async with self.db.write() as conn:
            return await request_abort(conn, task=TURN_TASK, turn_id=turn_id)

    async def retry_delivery(self, delivery: DeliveryRecord, delay_s: float) -> bool:
        """A job that any worker runs in ``delay_s``: the retry survives this process."""
        async with self.db.write() as conn:
            await insert_job(
                conn,
                queue=TURN_QUEUE,
                task=DELIVER_TASK,
                lock=None,
                queueing_lock=f"{DELIVERY_LOCK_PREFIX}{delivery.turn_id}",
                args={"turn_id": delivery.turn_id},
                scheduled_at=datetime.now(UTC) + timedelta(seconds=delay_s),
                skip_duplicate=True,
            )
        return True

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        if self.role is not Role.WORKER:
            self.listener = RelayListener(
                dsn=libpq_dsn(self.db.url),
                on_event=self._on_event,
                sweep=self._sweep,
                sweep_interval_s=self._sweep_interval_s,
            )
            self.listener.start()
        if self.role is not Role.INGRESS:
            self.worker = QueueWorker(
                runtime=runtime,
                concurrency=self.concurrency,
                heartbeat_s=self.config.heartbeat_s,
                stalled_after_s=self.config.stalled_after_s,
            )
            self._worker_task = asyncio.create_task(self.worker.run(self._stop), name="queue-worker")
        self._gauges = QueueGauges(runtime.metrics)
        self._gauge_task = asyncio.create_task(self._refresh_gauges(), name="queue-gauges")

    async def start_adapter(self, adapter: ChannelAdapter[Any]) -> None:
        """Workers start no adapter; a gateway adapter starts where its lease is held."""
        if self.role is Role.WORKER:
            return
        if not adapter.holds_gateway:
            await adapter.start()
            return
        name = f"botframework:gateway:{adapter.tenant}:{adapter.name}"

        async def acquired() -> None:
            await adapter.start()
            await self._deliver_pending(adapter)

        lease = GatewayLease(dsn=libpq_dsn(self.db.url), name=name, on_acquired=acquired, on_lost=adapter.stop)
        self.leases[(adapter.tenant, adapter.name)] = lease
        lease.start()

    def holds(self, adapter: ChannelAdapter[Any]) -> bool:
        """Whether replies on this adapter may be sent from this process."""
        if adapter.holds_gateway:
            lease = self.leases.get((adapter.tenant, adapter.name))
            return lease is not None and lease.held
        return adapter.replies_on_connection

    async def close(self) -> None:
        """Finish (or hand back) running turns first, then flush what they published."""
        self._stop.set()
        if self._gauge_task is not None:
            self._gauge_task.cancel()
        if self._worker_task is not None:
            await self._worker_task
        await self.publisher.close()
        if self.listener is not None:
            await self.listener.close()
        for lease in self.leases.values():
            await lease.close()

    # -- operations ----------------------------------------------------------------------------

    async def state(self) -> QueueState:
        async with self.db.read() as conn:
            return await queue_state(conn, stale_after_s=self.config.stalled_after_s)

    async def health(self) -> dict[str, Any]:
        queue: dict[str, Any] = {"engine": self.name}
        try:
            queue.update(dataclasses.asdict(await self.state()))
        except StorageError:
            queue["error"] = "the database is unreachable"
        if self.listener is not None:
            queue["relay_connected"] = self.listener.connected
        if self.worker is not None:
            queue["this_worker"] = self.worker.state()
        return {"role": str(self.role), "queue": queue}

    async def _refresh_gauges(self) -> None:
        assert self._gauges is not None
        while True:
            with contextlib.suppress(StorageError):  # the gauges keep their last values meanwhile
                self._gauges.update(await self.state())
            await asyncio.sleep(max(1.0, self.config.heartbeat_s))

    # -- the connection-holding side -----------------------------------------------------------

    async def _on_event(self, event: LiveEvent) -> None:
        assert self._runtime is not None
        if event.kind == "done":
            await self._deliver_stored(event.turn_id)
            return
        sink = self._runtime.live_sink(event.turn_id)
        if sink is None:
            return
        if event.kind == "delta":
            await sink.delta(event.text)
        elif event.kind == "reset":
            await sink.reset()
        elif event.kind == "notice" and (notice := getattr(sink, "notice", None)) is not None:
            await notice(event.text)

    async def _deliver_stored(self, turn_id: str) -> None:
        """Send the stored reply of ``turn_id`` from here if it is pending and this process may send
        it; one attempt at a time per turn (a ``done`` and the sweep can arrive together)."""
        assert self._runtime is not None
        if turn_id in self._delivering:
            return
        self._delivering.add(turn_id)
        try:
            async with self.db.read() as conn:
                delivery = await delivery_for_turn(conn, turn_id)
            if delivery is None or delivery.status is not DeliveryStatus.PENDING:
                return
            adapter = self._runtime.adapters.get((delivery.tenant, delivery.channel))
            if adapter is not None and self.holds(adapter):
                await self._runtime.deliver_here(delivery)
        finally:
            self._delivering.discard(turn_id)

    async def _deliver_pending(self, adapter: ChannelAdapter[Any]) -> None:
        """Replies produced while no process held this gateway go out from its new holder."""
        assert self._runtime is not None
        async with self.db.read() as conn:
            pending = await pending_deliveries(conn, tenant=adapter.tenant, channel=adapter.name)
        for delivery in pending:
            await self._deliver_stored(delivery.turn_id)

    async def _sweep(self) -> None:
        """Turns this process holds a live sink for: send stored replies, forget finished turns."""
        assert self._runtime is not None
        for turn_id in self._runtime.live_turns():
            async with self.db.read() as conn:
                record = await turn_record(conn, turn_id)
                delivery = await delivery_for_turn(conn, turn_id) if record is not None else None
            if delivery is not None and delivery.status is DeliveryStatus.PENDING:
                await self._deliver_stored(turn_id)
            elif record is None or not record.status.is_open:
                self._runtime.forget_sink(turn_id)


class QueueGauges:
    """``/metrics`` for the shared queue, refreshed in the background (a scrape never waits on SQL)."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self._depth = metrics.queue_depth
        self.jobs = Gauge("botframework_queue_jobs", "Turn jobs in the shared queue", ["state"], registry=r)
        self.oldest = Gauge(
            "botframework_queue_oldest_job_seconds", "Age of the oldest turn job not started", registry=r
        )
        self.workers = Gauge("botframework_queue_workers", "Workers with a recent heartbeat", registry=r)
        self.heartbeat = Gauge(
            "botframework_queue_heartbeat_age_seconds", "Seconds since the freshest worker heartbeat", registry=r
        )

    def update(self, state: QueueState) -> None:
        self.jobs.labels("waiting").set(state.waiting)
        self.jobs.labels("running").set(state.running)
        self.oldest.set(state.oldest_waiting_s)
        self.workers.set(state.workers)
        self.heartbeat.set(state.newest_heartbeat_age_s if state.newest_heartbeat_age_s is not None else float("nan"))
        self._depth.set(state.waiting + state.running)
