"""The runtime: one ingestion path for every channel, turn processing, deliveries, recovery.

ingest: dedupe on (tenant, channel, event id) and persist the user message in one transaction,
then schedule; the channel acknowledges after ``ingest`` returns, so an acknowledged message is
always stored. Processing runs per conversation in order (``ConversationScheduler``); the reply is
recorded as a pending delivery in the same transaction that closes the turn, then sent. A restart
re-runs open turns (tools that already ran are not run again) and re-sends pending deliveries, so
every accepted message is answered once; after a database outage the recovery loop
(:mod:`botframework.recovery`) does the same without a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.budget import BudgetEngine
from botframework.channel import ChannelAdapter, EventRef, IngestResult, IngestStatus, Outbound, ReplyClaim
from botframework.channel_state import ChannelState
from botframework.config.schema import Config
from botframework.config.sections import UnavailablePlugin
from botframework.errors import DeliveryError, MediaError, SignatureError, StorageError
from botframework.events import EventBus, log_event
from botframework.health import ChannelHealthCollector
from botframework.held_replies import HeldReplies
from botframework.hooks import HookChain, resolve_hooks
from botframework.invocation import AgentRuntime, InvocationService
from botframework.ledger import LedgerWriter
from botframework.limits import Limits, Refusal
from botframework.media import MediaResolver
from botframework.messages import Message
from botframework.metrics import Metrics
from botframework.models.base import ModelClient
from botframework.models.registry import build_client
from botframework.models.router import ModelRouter
from botframework.pipeline.queue import EmbeddedQueue, TurnQueue
from botframework.plugins import CHANNELS
from botframework.recovery import RecoveryLoop
from botframework.replay import ReplayGuard
from botframework.retention import run_retention
from botframework.safe_rows import safe_transcript
from botframework.scheduler import ConversationScheduler
from botframework.states import DeliveryStatus, TurnFailure, TurnStatus
from botframework.storage_health import StorageHealthCollector, describe
from botframework.tools.mcp.config import MCP_MEDIA_SOURCE
from botframework.tools.mcp.setup import mcp_connections, mcp_toolset
from botframework.tools.registry import resolve_tools
from botframework.turn import Origin, Reply, ReplySink, Turn
from storage.channel_state import SqlChannelState
from storage.conversations import append_messages, find_conversation, get_or_create_conversation
from storage.db import Database
from storage.deliveries import (
    DeliveryJournal,
    DeliveryRecord,
    create_delivery,
    delivery_for_turn,
    mark_delivery,
    pending_deliveries,
)
from storage.keys import deployment_key
from storage.limits import SqlLimitsStore
from storage.replay import SqlNonceStore
from storage.turns import (
    TurnRecord,
    claim_queued_turn,
    create_turn,
    events_of_turn,
    find_event,
    ingest_lookup,
    insert_event,
    merge_turns,
    open_turns,
    set_turn_status,
    start_turn,
)

__all__ = ["DELIVERY_RETRY_DELAYS_S", "Runtime", "delivery_retry_delay"]

log = logging.getLogger("botframework.runtime")

DELIVERY_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)


def delivery_retry_delay(attempt: int, error: BaseException) -> float:
    """Seconds before delivery retry ``attempt`` (1-based): our backoff, or longer if the vendor said so.

    A vendor that answered 429 with a wait of its own would refuse an earlier retry again, so its wait
    wins when it is the longer one."""
    delay = DELIVERY_RETRY_DELAYS_S[min(attempt, len(DELIVERY_RETRY_DELAYS_S)) - 1]
    if isinstance(error, DeliveryError) and error.retry_after_s is not None:
        return max(delay, error.retry_after_s)
    return delay


def _event_ref(turn: Turn) -> EventRef:
    """The event as ``events_of_turn`` reads it back (the reply target as stored: through JSON)."""
    return EventRef(
        event_id=turn.event_id, user_id=turn.user_id, reply_target=json.loads(json.dumps(dict(turn.reply_target)))
    )


class _TurnClose:
    """A turn's delivery and end, written in the transaction that stores its final answer."""

    def __init__(self, record: TurnRecord) -> None:
        self.record = record
        self.delivery_id: int | None = None

    async def write(self, conn: AsyncConnection, reply: Reply) -> None:
        record = self.record
        self.delivery_id = await create_delivery(
            conn, turn_id=record.id, tenant=record.tenant, channel=record.channel, reply=reply
        )
        await set_turn_status(conn, record.id, TurnStatus.DONE)

    def rolled_back(self) -> None:
        self.delivery_id = None


class _LateSink:
    """Looks the live sink up when text arrives, so an adapter may attach it after ``ingest`` returns."""

    def __init__(self, sinks: dict[str, ReplySink], turn_id: str) -> None:
        self._sinks = sinks
        self._turn_id = turn_id

    async def delta(self, text: str) -> None:
        sink = self._sinks.get(self._turn_id)
        if sink is not None:
            await sink.delta(text)

    async def reset(self) -> None:
        sink = self._sinks.get(self._turn_id)
        if sink is not None:
            await sink.reset()

    async def notice(self, text: str) -> None:
        sink = self._sinks.get(self._turn_id)
        notice = getattr(sink, "notice", None)  # optional: sinks written before it existed lack it
        if notice is not None:
            await notice(text)


class Runtime:
    """Everything a running bot needs, built from one Config. Implements ``ChannelRuntime``."""

    storage_retry_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    """Waits between attempts to finish a turn while the database is failing."""

    def __init__(
        self,
        *,
        config: Config,
        db: Database | None = None,
        clients: Mapping[str, ModelClient] | None = None,
        channels: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        queue: TurnQueue | None = None,
    ) -> None:
        """``clients`` replaces the configured model clients and ``sleep`` the retry backoff (tests);
        ``channels=False`` builds no adapters (the CLI and background workers); ``queue`` is where
        accepted turns go (default: this process's scheduler, :mod:`botframework.pipeline`)."""
        self.config = config
        self.db = db or Database(config.storage.url, pool_size=config.storage.pool_size)
        self.metrics = Metrics()
        self.events = EventBus()
        self.events.subscribe(log_event)
        self.budget = BudgetEngine(config=config.budget, db=self.db)
        self.clients: dict[str, ModelClient] = (
            dict(clients)
            if clients is not None
            else {name: build_client(name, cfg) for name, cfg in config.models.items()}
        )
        self.router = ModelRouter(clients=self.clients, sleep=sleep)
        media = MediaResolver(
            fetch=self._fetch_media, trusted_hosts=self._image_hosts(), kept_sources=(MCP_MEDIA_SOURCE,)
        )
        self.mcp = mcp_connections(config.mcp_servers)
        """Sessions with MCP servers, opened when a turn first needs them (None: none configured)."""
        agents = {}
        for name, t in config.tenants.items():
            tools = resolve_tools(t.agent.tools)
            agents[name] = AgentRuntime(
                tenant=name,
                agent=t.agent,
                tools=tools,
                hooks=HookChain(resolve_hooks(t.agent.hooks)),
                toolset=mcp_toolset(
                    tenant=name, refs=t.agent.tools, python_tools=tools, connections=self.mcp, media=media
                ),
            )
        self.ledger = LedgerWriter(db=self.db, metrics=self.metrics)
        self.limits = Limits(config=config, store=SqlLimitsStore(db=self.db), metrics=self.metrics)
        self.replay = ReplayGuard(store=SqlNonceStore(db=self.db))
        self.invocation = InvocationService(
            config=config,
            db=self.db,
            budget=self.budget,
            router=self.router,
            agents=agents,
            events=self.events,
            ledger=self.ledger,
            media=media,
            limits=self.limits,
        )
        self.scheduler = ConversationScheduler(process=self._process, on_depth=self.metrics.queue_depth.set)
        self.queue: TurnQueue = queue or EmbeddedQueue(scheduler=self.scheduler)
        self.adapters: dict[tuple[str, str], ChannelAdapter[Any]] = {}
        if channels:
            for tenant_name, tenant in config.tenants.items():
                for channel, channel_cfg in tenant.channels.items():
                    if isinstance(channel_cfg, UnavailablePlugin):
                        log.error(
                            "tenant %s runs without its %s channel: %s", tenant_name, channel, channel_cfg.problem
                        )
                        continue
                    cls = CHANNELS.load(channel)
                    self.adapters[(tenant_name, channel)] = cls(tenant=tenant_name, config=channel_cfg, runtime=self)
        self._sinks: dict[str, ReplySink] = {}
        self._events: dict[str, list[EventRef]] = {}
        """The events a turn answers, kept from ``ingest`` so the delivery need not read them back;
        absent (read from the database) after a restart, in another process, or once turns merged."""
        self._accepted: dict[str, TurnRecord] = {}
        """Turns this process stored and has not started yet, as ``turn_record`` would read them."""
        self._waiters: dict[str, list[asyncio.Future[Reply]]] = defaultdict(list)
        self._background: set[asyncio.Task[Any]] = set()
        self._delivering: set[int] = set()
        """Deliveries being sent right now: a re-scan or a reconnect must not send them a second time."""
        self.recovery = RecoveryLoop(db=self.db, rescan=self.recover)
        self.held = HeldReplies(db=self.db, waiters=self._waiters, metrics=self.metrics)
        self.metrics.registry.register(ChannelHealthCollector(self.adapters))
        self.metrics.registry.register(StorageHealthCollector(self.db.health))

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.storage.auto_migrate:
            await self.db.upgrade()
        # Count with each model's own encoding from the first message on, when it can be had at all.
        await self.budget.encodings.warm_up(self.config.models.values(), timeout_s=10.0)
        for adapter in self.adapters.values():
            await self.queue.start_adapter(adapter)
        await self.queue.start(self)
        if self.queue.recovers_turns:  # a shared queue recovers turns itself (stalled jobs, orphan sweep)
            await self.recover()
            self._spawn(self.recovery.run())
        if self.config.storage.retention_days is not None:
            self._spawn(run_retention(self.db, days=self.config.storage.retention_days))

    async def stop(self) -> None:
        await self.queue.close()  # a shared queue's worker finishes or hands back its turns first
        cancelled = await self.scheduler.close(self.config.server.shutdown_timeout_s)
        if cancelled:
            log.warning("shutdown: %d turn(s) did not finish in time; they resume at the next start", cancelled)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        for adapter in self.adapters.values():
            try:
                await adapter.stop()
            except Exception:
                log.exception("stopping the %s adapter of %s failed", adapter.name, adapter.tenant)
        if self.mcp is not None:
            await self.mcp.close()
        for client in self.clients.values():
            await client.close()
        await self.ledger.close()
        await self.db.close()

    async def recover(self) -> None:
        """Finish what a previous process accepted: open turns run again, pending replies are resent."""
        async with self.db.read() as conn:
            turns = await open_turns(conn)
            pending = await pending_deliveries(conn)
        for d in pending:
            self._spawn(self._deliver(d))
        for t in turns:
            self.scheduler.submit(t.conversation_id, t.id)
        if turns or pending:
            log.info("recovery: %d open turn(s) resumed, %d pending repl(ies) resent", len(turns), len(pending))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(self._guarded(coro))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _guarded(self, coro: Any) -> None:
        """A background task's storage failure is one log line and a re-scan, never a lost task."""
        try:
            await coro
        except StorageError as exc:
            log.warning(
                "background work hit a storage failure (%s); it resumes when the database answers", describe(exc)
            )
            self.recovery.interrupted()
        except Exception:
            log.exception("background task failed")

    # -- ChannelRuntime ----------------------------------------------------------------------

    async def ingest(self, turn: Turn) -> IngestResult:
        if turn.tenant not in self.config.tenants:
            raise LookupError(f"unknown tenant {turn.tenant!r}")
        agent = self.config.tenants[turn.tenant].agent
        refusal = await self.limits.admit(turn, queue=False)  # the queue is counted below, with the lookup
        if refusal is not None:
            return await self._refused(turn, refusal)
        message = Message.user(turn.text, images=turn.images)
        count = await self.budget.acount_message(self.config.models[agent.model], message)
        event = _event_ref(turn)
        try:
            async with self.db.write() as conn:
                seen = await ingest_lookup(
                    conn,
                    tenant=turn.tenant,
                    channel=turn.channel,
                    event_id=turn.event_id,
                    key=turn.conversation_key,
                )
                found = seen.event
                if found is None:
                    refusal = self.limits.queue_refusal(turn, seen.open_turns)
                if found is None and refusal is None:
                    conversation_id = seen.conversation_id or await get_or_create_conversation(
                        conn, tenant=turn.tenant, channel=turn.channel, key=turn.conversation_key
                    )
                    turn_id = str(uuid.uuid4())
                    await create_turn(
                        conn,
                        turn_id=turn_id,
                        conversation_id=conversation_id,
                        tenant=turn.tenant,
                        origin=Origin.channel(turn.channel).label,
                    )
                    [stored] = await append_messages(
                        conn,
                        conversation_id=conversation_id,
                        turn_id=turn_id,
                        items=[(message, count)],
                        turn_start=True,
                    )
                    assert stored.id is not None
                    await insert_event(
                        conn,
                        turn=turn,
                        conversation_id=conversation_id,
                        message_id=stored.id,
                        turn_id=turn_id,
                    )
                    await self.queue.enqueue(conn, conversation_id=conversation_id, turn_id=turn_id)
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            async with self.db.read() as conn:  # a concurrent delivery of the same event won the race
                found = await find_event(conn, tenant=turn.tenant, channel=turn.channel, event_id=turn.event_id)
            if found is None:
                raise
        if found is not None:
            self.metrics.inbound.labels(turn.tenant, turn.channel, "duplicate").inc()
            return IngestResult(status=IngestStatus.DUPLICATE, turn_id=found[0], conversation_id=found[1])
        if refusal is not None:
            return self._refusal(turn, refusal)
        self.metrics.inbound.labels(turn.tenant, turn.channel, "accepted").inc()
        if self.queue.recovers_turns:  # the turn runs in this process: keep what it will need
            self._events[turn_id] = [event]
            self._accepted[turn_id] = TurnRecord(
                id=turn_id,
                conversation_id=conversation_id,
                tenant=turn.tenant,
                origin=Origin.channel(turn.channel).label,
                status=TurnStatus.QUEUED,
                channel=turn.channel,
                conversation_key=turn.conversation_key,
            )
        self.queue.submitted(conversation_id, turn_id)
        return IngestResult(status=IngestStatus.ACCEPTED, turn_id=turn_id, conversation_id=conversation_id)

    async def _refused(self, turn: Turn, refusal: Refusal) -> IngestResult:
        """A refused message is not stored, unless it was already (a vendor's redelivery)."""
        async with self.db.read() as conn:
            found = await find_event(conn, tenant=turn.tenant, channel=turn.channel, event_id=turn.event_id)
        if found is not None:
            return IngestResult(status=IngestStatus.DUPLICATE, turn_id=found[0], conversation_id=found[1])
        return self._refusal(turn, refusal)

    def _refusal(self, turn: Turn, refusal: Refusal) -> IngestResult:
        self.metrics.inbound.labels(turn.tenant, turn.channel, "refused").inc()
        log.info("refused a %s message of tenant %s: %s", turn.channel, turn.tenant, refusal.kind)
        return IngestResult(status=IngestStatus.REFUSED, turn_id="", conversation_id=0, refusal=refusal)

    async def check_replay(
        self, *, tenant: str, channel: str, timestamp: str, nonce: str, body: bytes, window_s: int
    ) -> None:
        try:
            await self.replay.check(
                tenant=tenant, channel=channel, timestamp=timestamp, nonce=nonce, body=body, window_s=window_s
            )
        except SignatureError:
            self.metrics.webhook_rejections.labels(channel).inc()
            raise

    async def deployment_key(self, name: str) -> bytes:
        return await deployment_key(self.db, name)

    def _image_hosts(self) -> tuple[str, ...]:
        """Every configured channel's public image CDN hosts (see ``ChannelAdapter.image_hosts``)."""
        hosts = {
            host
            for tenant in self.config.tenants.values()
            for name, cfg in tenant.channels.items()
            if not isinstance(cfg, UnavailablePlugin)
            for host in CHANNELS.load(name).image_hosts
        }
        return tuple(sorted(hosts))

    async def has_conversation(self, tenant: str, channel: str, conversation_key: str) -> bool:
        async with self.db.read() as conn:
            return await find_conversation(conn, tenant=tenant, channel=channel, key=conversation_key) is not None

    async def transcript(
        self, tenant: str, channel: str, conversation_key: str, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            conversation_id = await find_conversation(conn, tenant=tenant, channel=channel, key=conversation_key)
            if conversation_id is None:
                return []
            return await safe_transcript(conn, conversation_id=conversation_id, limit=limit)

    async def _fetch_media(self, tenant: str, channel: str, ref: str) -> tuple[bytes, str]:
        """An image a channel referenced, fetched by that tenant's adapter (never another tenant's)."""
        adapter = self.adapters.get((tenant, channel))
        if adapter is None:
            raise MediaError(f"tenant {tenant!r} has no {channel} channel to fetch image {ref!r} from")
        return await adapter.fetch_media(ref)

    def attach_sink(self, tenant: str, channel: str, turn_id: str, sink: ReplySink) -> None:
        self._sinks[turn_id] = sink

    async def redeliver(self, tenant: str, channel: str, conversation_key: str) -> int:
        async with self.db.read() as conn:
            pending = await pending_deliveries(conn, tenant=tenant, channel=channel, conversation_key=conversation_key)
        for d in pending:
            await self._deliver(d, retry=False, here=True)
        return len(pending)

    async def acknowledge(self, tenant: str, channel: str, event_id: str) -> bool:
        """The client has the reply to ``event_id``: it is never sent again (a reconnect, a restart)."""
        async with self.db.write() as conn:
            found = await find_event(conn, tenant=tenant, channel=channel, event_id=event_id)
            if found is None:
                return False
            delivery = await delivery_for_turn(conn, found[0])
            if delivery is None or delivery.status is not DeliveryStatus.PENDING:
                return delivery is not None
            await mark_delivery(conn, delivery.id, status=DeliveryStatus.SENT)
        return True

    async def cancel(self, tenant: str, channel: str, event_id: str, *, conversation_key: str | None = None) -> bool:
        async with self.db.read() as conn:
            found = await find_event(conn, tenant=tenant, channel=channel, event_id=event_id)
            if found is not None and conversation_key is not None:
                owner = await find_conversation(conn, tenant=tenant, channel=channel, key=conversation_key)
                if owner != found[1]:
                    return False  # someone else's message: not theirs to cancel
        return found is not None and await self.queue.cancel(found[0])

    def channel_state(self, tenant: str, channel: str) -> ChannelState:
        return SqlChannelState(self.db, tenant=tenant, channel=channel)

    async def wait_reply(self, tenant: str, channel: str, event_id: str, *, timeout: float) -> bool:
        return await self.held.wait(tenant, channel, event_id, timeout=timeout)

    async def held_replies(self, tenant: str, channel: str, conversation_key: str) -> list[Outbound]:
        return await self.held.held(tenant, channel, conversation_key)

    async def claim_replies(self, claims: Sequence[ReplyClaim]) -> bool:
        return await self.held.claim(claims)

    # -- background jobs and the CLI ---------------------------------------------------------

    async def ask(
        self, *, tenant: str, origin: Origin, conversation_key: str, text: str, sink: ReplySink | None = None
    ) -> Reply:
        """Run one turn outside any channel (scheduled jobs, agent-to-agent calls, the CLI).

        Same path as a channel message: persisted, ordered per conversation, budgeted, ledgered.
        """
        if tenant not in self.config.tenants:
            raise LookupError(f"unknown tenant {tenant!r} (configured: {', '.join(self.config.tenants)})")
        agent = self.config.tenants[tenant].agent
        message = Message.user(text)
        count = await self.budget.acount_message(self.config.models[agent.model], message)
        turn_id = str(uuid.uuid4())
        async with self.db.write() as conn:
            conversation_id = await get_or_create_conversation(
                conn, tenant=tenant, channel=origin.label, key=conversation_key
            )
            await create_turn(
                conn, turn_id=turn_id, conversation_id=conversation_id, tenant=tenant, origin=origin.label
            )
            await append_messages(
                conn,
                conversation_id=conversation_id,
                turn_id=turn_id,
                items=[(message, count)],
                turn_start=True,
            )
        self._accepted[turn_id] = TurnRecord(
            id=turn_id,
            conversation_id=conversation_id,
            tenant=tenant,
            origin=origin.label,
            status=TurnStatus.QUEUED,
            channel=origin.label,
            conversation_key=conversation_key,
        )
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters[turn_id].append(future)
        if sink is not None:
            self._sinks[turn_id] = sink
        self.scheduler.submit(conversation_id, turn_id)
        return await future

    # -- processing --------------------------------------------------------------------------

    # -- the connection-holding side of a shared queue (botframework.pipeline) ----------------

    def live_sink(self, turn_id: str) -> ReplySink | None:
        """The sink a channel attached to ``turn_id`` in this process, if any."""
        return self._sinks.get(turn_id)

    def live_turns(self) -> list[str]:
        return list(self._sinks)

    def forget_sink(self, turn_id: str) -> None:
        self._sinks.pop(turn_id, None)

    async def deliver_here(self, delivery: DeliveryRecord) -> None:
        """Send a stored reply through this process's adapter (the one holding the connection)."""
        self._sinks.pop(delivery.turn_id, None)
        await self._deliver(delivery, here=True)

    async def resend(self, turn_id: str) -> None:
        """Try a turn's stored reply again if it is still pending (a queued delivery retry)."""
        async with self.db.read() as conn:
            current = await delivery_for_turn(conn, turn_id)
        if current is not None and current.status is DeliveryStatus.PENDING:
            await self._deliver(current)

    async def run_queued_turn(self, conversation_id: int, turn_id: str) -> None:
        """Run a turn a shared queue handed to this process (a worker)."""
        await self._process(conversation_id, turn_id)

    async def _steer(self, conversation_id: int, turn_id: str) -> int:
        waiting = await self.queue.take_waiting(conversation_id, turn_id)
        if not waiting:
            return 0
        async with self.db.write() as conn:
            await merge_turns(conn, into=turn_id, merged=waiting)
        self._events.pop(turn_id, None)  # the database knows the merged events' arrival order
        for merged in waiting:
            self._events.pop(merged, None)
            self._accepted.pop(merged, None)
            self._waiters[turn_id].extend(self._waiters.pop(merged, []))
            self._sinks.pop(merged, None)
        return len(waiting)

    async def _process(self, conversation_id: int, turn_id: str) -> None:
        """Run a turn; a storage failure is retried with backoff (later turns of the conversation wait).

        Running a turn again is safe: tools that already ran are not run again, and an answer that
        was already stored is reused instead of asking the model twice.
        """
        for attempt, delay in enumerate((*self.storage_retry_delays_s, None), start=1):
            try:
                await self._process_once(conversation_id, turn_id)
                return
            except StorageError as exc:
                if delay is None:
                    self._events.pop(turn_id, None)
                    log.error(
                        "turn %s stays open after %d storage failures (%s); the recovery loop resumes it",
                        turn_id,
                        attempt,
                        describe(exc),
                    )
                    self.recovery.interrupted()
                    return
                log.warning(
                    "turn %s hit a storage failure (%s); retry %d within %ss", turn_id, describe(exc), attempt, delay
                )
                if self.db.health.ok:  # not an outage (one statement failed): the plain backoff
                    await asyncio.sleep(delay)
                else:  # an outage: back at once when the database answers, not after the whole backoff
                    await self.db.health.wait_up(delay)

    async def _process_once(self, conversation_id: int, turn_id: str) -> None:
        accepted = self._accepted.pop(turn_id, None)
        async with self.db.write() as conn:
            if accepted is not None and await claim_queued_turn(conn, turn_id):
                record: TurnRecord | None = accepted  # what ingest stored, still queued: no need to read it
            else:
                record = await start_turn(conn, turn_id)
        if record is None or not record.status.is_open:
            self._events.pop(turn_id, None)
            if record is not None:
                async with self.db.read() as conn:
                    delivery = await delivery_for_turn(conn, turn_id)
                if delivery is not None and delivery.status is DeliveryStatus.PENDING:
                    await self._deliver(delivery)
            return
        started = time.perf_counter()
        origin = Origin.from_label(record.origin)
        status = TurnStatus.DONE
        closing = _TurnClose(record)
        try:
            if self.scheduler.cancelled_by_user(turn_id):
                raise asyncio.CancelledError
            reply = await self.invocation.run_turn(
                tenant=record.tenant,
                conversation_id=conversation_id,
                turn_id=turn_id,
                origin=origin,
                sink=self.queue.sink(turn_id, _LateSink(self._sinks, turn_id)),
                steer=lambda: self._steer(conversation_id, turn_id),
                fresh=record.status is TurnStatus.QUEUED,
                closing=closing,
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.scheduler.cancelled_by_user(turn_id) or task is None:
                raise  # shutdown: the turn stays open and resumes after restart
            task.uncancel()
            stored = None
            if closing.delivery_id is not None:  # cancelled around the answer's commit: the database says
                async with self.db.read() as conn:
                    stored = await delivery_for_turn(conn, turn_id)
            closing.delivery_id = stored.id if stored is not None else None
            if stored is not None:
                reply = stored.reply
            else:
                reply = Reply(text="Cancelled.", error_kind=TurnFailure.CANCELLED)
                status = TurnStatus.CANCELLED
        finally:
            self._sinks.pop(turn_id, None)
        if closing.delivery_id is not None:
            delivery_id = closing.delivery_id  # written with the answer
        else:  # a failure's message for the user, a cancellation, or the answer stored alone
            async with self.db.write() as conn:
                delivery_id = await create_delivery(
                    conn, turn_id=turn_id, tenant=record.tenant, channel=record.channel, reply=reply
                )
                await set_turn_status(conn, turn_id, status)
        outcome = str(reply.error_kind) if reply.error_kind is not None else "ok"
        self.metrics.turns.labels(record.tenant, record.origin, outcome).inc()
        self.metrics.turn_seconds.labels(record.tenant).observe(time.perf_counter() - started)
        await self._deliver(
            DeliveryRecord(
                id=delivery_id,
                turn_id=turn_id,
                tenant=record.tenant,
                channel=record.channel,
                conversation_key=record.conversation_key,
                status=DeliveryStatus.PENDING,
                attempts=0,
                reply=reply,
            )
        )

    async def _deliver(self, delivery: DeliveryRecord, *, retry: bool = True, here: bool = False) -> None:
        """Send a stored reply. ``here``: this process holds the connection it goes out on (a client
        reconnected, or a worker handed the reply over); otherwise a shared queue may hand it over."""
        if delivery.id in self._delivering:
            return  # under way already: a re-scan or a reconnect met it mid-send
        self._delivering.add(delivery.id)
        try:
            await self._deliver_now(delivery, retry=retry, here=here)
        finally:
            self._delivering.discard(delivery.id)

    async def _deliver_now(self, delivery: DeliveryRecord, *, retry: bool, here: bool) -> None:
        known = self._events.pop(delivery.turn_id, None)
        for future in self._waiters.pop(delivery.turn_id, []):
            if not future.done():
                future.set_result(delivery.reply)
        adapter = self.adapters.get((delivery.tenant, delivery.channel))
        if adapter is None:  # background job or CLI: the caller got the reply through its future
            async with self.db.write() as conn:
                await mark_delivery(conn, delivery.id, status=DeliveryStatus.SENT)
            return
        if adapter.holds_replies:
            return  # stays pending until the adapter hands it out itself (botframework.held_replies)
        handed = self.queue.hands_over(adapter)
        if handed and not here:
            await self.queue.hand_over(delivery)  # stays pending until the connection holder sends it
            return
        if known is None:
            async with self.db.read() as conn:
                stored = await events_of_turn(conn, delivery.turn_id)
            known = [EventRef(event_id=e.event_id, user_id=e.user_id, reply_target=e.reply_target) for e in stored]
        outbound = Outbound(
            tenant=delivery.tenant,
            channel=delivery.channel,
            turn_id=delivery.turn_id,
            conversation_key=delivery.conversation_key,
            reply=delivery.reply,
            resume_from=delivery.progress,
            in_flight=delivery.in_flight,
            journal=DeliveryJournal(db=self.db, delivery_id=delivery.id),
            events=known,
        )
        try:
            await adapter.deliver(outbound)
        except Exception as exc:
            retryable = exc.retryable if isinstance(exc, DeliveryError) else True
            if handed and retryable and adapter.replies_on_connection:
                return  # the user is not connected to this process: another one, or a reconnect, sends it
            if not isinstance(exc, DeliveryError):
                log.exception("the %s adapter failed to deliver turn %s", delivery.channel, delivery.turn_id)
            attempt = delivery.attempts + 1
            final = not retryable
            progress = max(delivery.progress, exc.delivered_parts) if isinstance(exc, DeliveryError) else None
            async with self.db.write() as conn:
                await mark_delivery(
                    conn,
                    delivery.id,
                    status=DeliveryStatus.FAILED if final else DeliveryStatus.PENDING,
                    error=str(exc),
                    progress=progress,
                )
            self.metrics.deliveries.labels(delivery.channel, "failed" if final else "retry").inc()
            if retry and not final and attempt <= len(DELIVERY_RETRY_DELAYS_S):
                delay = delivery_retry_delay(attempt, exc)
                if not await self.queue.retry_delivery(delivery, delay):
                    self._spawn(self._retry_delivery(delivery, delay))
            else:
                log.warning(
                    "reply to turn %s via %s %s: %s",
                    delivery.turn_id,
                    delivery.channel,
                    "failed" if final else "stays pending",
                    exc,
                )
            return
        await self._record_sent(delivery)
        self.metrics.deliveries.labels(delivery.channel, "sent").inc()

    async def _record_sent(self, delivery: DeliveryRecord) -> None:
        """Record a sent reply, retrying while the database fails: giving up would send it again."""
        for attempt in itertools.count(1):
            try:
                async with self.db.write() as conn:
                    await mark_delivery(conn, delivery.id, status=DeliveryStatus.SENT)
                return
            except StorageError as exc:
                delay = self.storage_retry_delays_s[min(attempt, len(self.storage_retry_delays_s)) - 1]
                log.warning(
                    "reply to turn %s was sent but not recorded (%s); retry %d within %ss",
                    delivery.turn_id,
                    describe(exc),
                    attempt,
                    delay,
                )
                if self.db.health.ok:
                    await asyncio.sleep(delay)
                else:
                    await self.db.health.wait_up(delay)

    async def _retry_delivery(self, delivery: DeliveryRecord, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        async with self.db.read() as conn:
            current = await delivery_for_turn(conn, delivery.turn_id)
        if current is not None and current.status is DeliveryStatus.PENDING:
            await self._deliver(current)
