"""``botframework worker``: run turns from the shared queue with procrastinate.

Stalled jobs: each worker heartbeats into ``procrastinate_workers``; a sweeper in every worker puts
back (``retry_job``) the running jobs of a worker whose heartbeat is older than ``stalled_after_s``,
so a killed worker's turns run again elsewhere. The sweeper waits until its own database connection
has been healthy for ``stalled_after_s``: after a database outage every heartbeat looks old, and the
other workers need that long to send a fresh one.

Shutdown (SIGTERM): the worker stops taking jobs, lets running turns finish within the server's
``shutdown_timeout_s``, then cancels the rest; a cancelled turn raises ``HandedBack``, which the
task's retry strategy turns into a job back in the queue, for another worker.

Liveness: a heartbeat alone cannot tell a dead worker from one whose connection pool is still
reconnecting after a database restart, and putting back the job of a live worker runs a turn twice.
So each worker process also holds a session advisory lock named after its procrastinate worker id,
on a connection of its own that reconnects within a second; the server drops it the moment the
process or its machine dies. A stalled job goes back to the queue only when its worker's heartbeat
is old AND that lock is free.

Database outage: procrastinate stops a worker whose heartbeat or listener fails. Its running turns
are cancelled at once (they are then stalled jobs of a worker that no longer heartbeats, which
another sweeper puts back once the database is back), never left running: a turn still running
under a silent worker id would be started a second time elsewhere. The worker is then restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import procrastinate
from procrastinate.job_context import AbortReason, JobContext
from procrastinate.worker import Worker

from botframework.errors import StorageError
from botframework.pipeline.lease import lease_key
from botframework.pipeline.roles import libpq_dsn
from storage.queue import requeue_orphans
from storage.turns import turn_record

if TYPE_CHECKING:
    from botframework.runtime import Runtime

__all__ = ["DELIVER_TASK", "TURN_QUEUE", "TURN_TASK", "HandedBack", "QueueWorker", "TurnNotFinished", "worker_lock_key"]

log = logging.getLogger("botframework.pipeline.worker")

TURN_TASK = "botframework.turn"
TURN_QUEUE = "botframework_turns"
DELIVER_TASK = "botframework.deliver"


def worker_lock_key(worker_id: int) -> int:
    return lease_key(f"botframework:worker:{worker_id}")


class HandedBack(Exception):
    """The worker stopped while the turn ran: the job goes back to the queue."""


class TurnNotFinished(Exception):
    """The turn is still open after running (the database failed throughout): run the job again."""


class QueueWorker:
    """A procrastinate worker running this process's ``Runtime`` turns; restarts after database outages."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        concurrency: int,
        heartbeat_s: float,
        stalled_after_s: float,
        name: str = "botframework",
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self.heartbeat_s = heartbeat_s
        self.stalled_after_s = stalled_after_s
        self.name = name
        self.running = 0
        """Turns this worker runs right now."""
        self._engine: Worker | None = None
        self._dsn = libpq_dsn(runtime.db.url)
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=libpq_dsn(runtime.db.url), min_size=1, max_size=max(4, concurrency + 2), timeout=10
            )
        )
        self.app.task(
            name=TURN_TASK,
            queue=TURN_QUEUE,
            retry=procrastinate.RetryStrategy(wait=1, retry_exceptions={HandedBack, TurnNotFinished}),
            pass_context=True,
        )(self._turn)
        self.app.task(
            name=DELIVER_TASK,
            queue=TURN_QUEUE,
            retry=procrastinate.RetryStrategy(wait=1, max_attempts=30, retry_exceptions={StorageError, OSError}),
        )(self._deliver)
        logging.getLogger("procrastinate").setLevel(max(logging.WARNING, logging.getLogger().level))
        for name in ("procrastinate.utils", "procrastinate.worker", "procrastinate.manager", "procrastinate.periodic"):
            logging.getLogger(name).addFilter(_outage_records)

    async def _turn(self, context: JobContext, conversation_id: int, turn_id: str) -> None:
        self.running += 1
        try:
            try:
                await self.runtime.run_queued_turn(conversation_id, turn_id)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if context.abort_reason() is not AbortReason.USER_REQUEST or task is None:
                    raise
                task.uncancel()  # the user cancelled: the turn ends with "Cancelled.", as in one process
                self.runtime.scheduler.mark_cancelled(turn_id)
                try:
                    await self.runtime.run_queued_turn(conversation_id, turn_id)
                finally:
                    self.runtime.scheduler.mark_cancelled(turn_id, cancelled=False)
            async with self.runtime.db.read() as conn:
                record = await turn_record(conn, turn_id)
        except asyncio.CancelledError:
            log.info("turn %s goes back to the queue: this worker is stopping", turn_id)
            raise HandedBack(turn_id) from None
        except (StorageError, OSError) as exc:  # the database is away: run the job again shortly
            raise TurnNotFinished(f"{turn_id}: {type(exc).__name__}: {exc}") from None
        finally:
            self.running -= 1
        if record is not None and record.status.is_open:
            raise TurnNotFinished(turn_id)

    async def _deliver(self, turn_id: str) -> None:
        """A delivery retry (:meth:`ProcrastinateQueue.retry_delivery`); a new failure schedules the next."""
        await self.runtime.resend(turn_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; then finish or hand back running turns."""
        shutdown_s = self.runtime.config.server.shutdown_timeout_s
        asyncio.get_running_loop().set_exception_handler(_quiet_outages)
        await self._requeue_orphans()
        delay = 0.5
        async with self.app.open_async():
            sweeper = asyncio.create_task(self._recover_stalled(), name="stalled-jobs")
            liveness = asyncio.create_task(self._hold_liveness(), name="worker-liveness")
            try:
                while not stop.is_set():
                    engine = Worker(
                        self.app,
                        queues=[TURN_QUEUE],
                        name=self.name,
                        concurrency=self.concurrency,
                        install_signal_handlers=False,
                        update_heartbeat_interval=self.heartbeat_s,
                        stalled_worker_timeout=self.stalled_after_s,
                        shutdown_graceful_timeout=0,
                        delete_jobs="successful",
                        fetch_job_polling_interval=1.0,
                    )
                    self._engine = engine
                    worker = asyncio.create_task(engine.run(), name="procrastinate-worker")  # type: ignore[no-untyped-call]
                    stopping = asyncio.create_task(stop.wait())
                    await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if stop.is_set():
                        engine.shutdown_graceful_timeout = shutdown_s
                        engine.stop()  # type: ignore[no-untyped-call]
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await worker
                        break
                    try:
                        worker.result()
                        log.warning("the queue worker stopped; restarting it in %ss", delay)
                    except Exception as exc:
                        log.warning(
                            "the queue worker stopped (%s: %s); restarting it in %ss", type(exc).__name__, exc, delay
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    delay = min(delay * 2, 5.0)
            finally:
                for task in (sweeper, liveness):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _recover_stalled(self) -> None:
        healthy_since: float | None = None
        manager = self.app.job_manager
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after_s))
            except Exception as exc:  # the database is away: heartbeats are meaningless until it is back
                if healthy_since is not None:
                    log.warning("stalled-job check failed: %s: %s", type(exc).__name__, exc)
                healthy_since = None
                continue
            now = time.monotonic()
            if healthy_since is None:
                healthy_since = now
            if now - healthy_since < self.stalled_after_s:
                continue
            for job in stalled:
                if job.worker_id is not None and not await self._worker_gone(job.worker_id):
                    continue  # its process still holds its lock: alive, only slow to heartbeat
                try:
                    await manager.retry_job(job)
                except Exception as exc:  # another worker's sweeper was first
                    log.debug("job %s was not put back: %s", job.id, exc)
                    continue
                log.warning(
                    "job %s (%s) of a worker that stopped sending heartbeats goes back to the queue",
                    job.id,
                    job.task_name,
                )

    async def _hold_liveness(self) -> None:
        """Hold the lock of the current procrastinate worker id; reconnect at once when the session drops."""
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
                held: int | None = None
                while True:
                    current = self._engine.worker_id if self._engine is not None else None
                    if current != held:
                        if held is not None:
                            await conn.execute("SELECT pg_advisory_unlock($1)", worker_lock_key(held))
                            held = None
                        if current is not None:
                            await conn.execute("SELECT pg_advisory_lock($1)", worker_lock_key(current), timeout=5)
                            held = current
                    await asyncio.sleep(0.25)
                    await conn.fetchval("SELECT 1", timeout=2)
            except Exception:  # any failure of this session (asyncpg raises several kinds): start over
                pass
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(0.25)

    async def _worker_gone(self, worker_id: int) -> bool:
        """True when no live process holds ``worker_id``'s lock (checked by taking it for a moment)."""
        try:
            conn = await asyncpg.connect(self._dsn, timeout=5)
        except Exception:  # any failure of this session (asyncpg raises several kinds): start over
            return False
        try:
            key = worker_lock_key(worker_id)
            free = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=5))
            if free:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
            return free
        except Exception:  # any failure of this session (asyncpg raises several kinds): start over
            return False
        finally:
            conn.terminate()

    async def _requeue_orphans(self) -> None:
        """Open turns without a job (its job failed on a bug, or the turn was accepted by the embedded
        queue before this deployment scaled out) get one again."""
        try:
            async with self.runtime.db.write() as conn:
                count = await requeue_orphans(conn, queue=TURN_QUEUE, task=TURN_TASK)
        except (StorageError, OSError) as exc:
            log.warning("could not look for open turns without a job: %s", exc)
            return
        if count:
            log.info("%d open turn(s) without a job were queued again", count)

    def state(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "running": self.running}


_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    StorageError,
    procrastinate.exceptions.ConnectorException,
)


def _outage_records(record: logging.LogRecord) -> bool:
    """procrastinate logs a lost database connection with a traceback; during an outage that is
    expected and handled (the worker restarts, stalled jobs are put back): one line instead."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, _OUTAGE_ERRORS):
        record.msg = f"{record.getMessage()} ({type(exc).__name__}: {str(exc).strip()})"
        record.args = None
        record.exc_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def _quiet_outages(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """procrastinate's job tasks can end with a lost connection nobody awaits: log one line for that."""
    exc = context.get("exception")
    if isinstance(exc, _OUTAGE_ERRORS):
        log.warning("%s (%s: %s)", context.get("message", "background task failed"), type(exc).__name__, exc)
        return
    loop.default_exception_handler(context)
