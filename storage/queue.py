"""SQL for the scale-out queue: a turn's job inserted in the ingest transaction, waiting turns for steering.

The job row goes straight into procrastinate's table on the caller's connection, so it commits or
rolls back together with the stored message: a message is never acknowledged without its job, and a
job never names a message that was not stored. procrastinate's insert trigger notifies its workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.states import TurnStatus
from storage.tables import TURNS

__all__ = ["QueueState", "insert_job", "queue_state", "queued_turns", "request_abort", "requeue_orphans"]

_INSERT = text(
    "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at) "
    "VALUES (:queue, :task, 0, :lock, :queueing_lock, CAST(:args AS jsonb), :scheduled_at)"
)
_INSERT_ONCE = text(_INSERT.text + " ON CONFLICT DO NOTHING")
_ORPHANS = text(
    "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args) "
    "SELECT CAST(:queue AS varchar), CAST(:task AS varchar), 0,"
    " CAST(:lock_prefix AS text) || t.conversation_id, CAST(:turn_prefix AS text) || t.id,"
    " jsonb_build_object('conversation_id', t.conversation_id, 'turn_id', t.id)"
    " FROM turns t WHERE t.status IN ('queued', 'running')"
    " AND t.created_at < now() - make_interval(secs => CAST(:min_age_s AS float8)) AND NOT EXISTS ("
    " SELECT 1 FROM procrastinate_jobs j WHERE j.status IN ('todo', 'doing') AND j.task_name = :task"
    " AND j.args->>'turn_id' = t.id)"
    " ORDER BY t.created_at, t.id ON CONFLICT DO NOTHING"
)
LOCK_PREFIX = "botframework:conversation:"
TURN_LOCK_PREFIX = "botframework:turn:"
DELIVERY_LOCK_PREFIX = "botframework:delivery:"


async def insert_job(
    conn: AsyncConnection,
    *,
    queue: str,
    task: str,
    lock: str | None,
    queueing_lock: str | None,
    args: dict[str, object],
    scheduled_at: object = None,
    skip_duplicate: bool = False,
) -> None:
    """``skip_duplicate``: a job with the same ``queueing_lock`` already waiting wins (no error)."""
    await conn.execute(
        _INSERT_ONCE if skip_duplicate else _INSERT,
        {
            "queue": queue,
            "task": task,
            "lock": lock,
            "queueing_lock": queueing_lock,
            "args": json.dumps(args),
            "scheduled_at": scheduled_at,
        },
    )


async def requeue_orphans(conn: AsyncConnection, *, queue: str, task: str, min_age_s: float = 60.0) -> int:
    """A job for every open turn older than ``min_age_s`` that has none waiting or running (a turn
    another process is still starting, e.g. ``botframework chat``, is younger); returns how many."""
    result = await conn.execute(
        _ORPHANS,
        {
            "queue": queue,
            "task": task,
            "lock_prefix": LOCK_PREFIX,
            "turn_prefix": TURN_LOCK_PREFIX,
            "min_age_s": min_age_s,
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def request_abort(conn: AsyncConnection, *, task: str, turn_id: str) -> bool:
    """Flag the turn's running job for abort (procrastinate's trigger tells its worker); True if one runs."""
    result = await conn.execute(
        text(
            "UPDATE procrastinate_jobs SET abort_requested = true WHERE status = 'doing'"
            " AND task_name = CAST(:task AS varchar) AND args->>'turn_id' = CAST(:turn_id AS text) RETURNING id"
        ),
        {"task": task, "turn_id": turn_id},
    )
    return result.first() is not None


async def queued_turns(conn: AsyncConnection, *, conversation_id: int, running: str) -> list[str]:
    """Turns of the conversation accepted and not started, oldest first (steering takes them)."""
    rows = await conn.execute(
        select(TURNS.c.id)
        .where(
            TURNS.c.conversation_id == conversation_id,
            TURNS.c.status == TurnStatus.QUEUED,
            TURNS.c.id != running,
        )
        .order_by(TURNS.c.created_at, TURNS.c.id)
    )
    return [r.id for r in rows]


@dataclass(frozen=True, kw_only=True)
class QueueState:
    waiting: int
    """Jobs not started (``todo``)."""
    running: int
    """Jobs a worker is running (``doing``)."""
    oldest_waiting_s: float
    """Age of the oldest job not started, 0 when none waits."""
    workers: int
    """Workers registered with a recent heartbeat."""
    newest_heartbeat_age_s: float | None
    """Seconds since the freshest worker heartbeat, None when no worker is registered."""


async def queue_state(conn: AsyncConnection, *, stale_after_s: float) -> QueueState:
    jobs = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE j.status = 'todo') AS waiting,"
                " count(*) FILTER (WHERE j.status = 'doing') AS running,"
                " coalesce(extract(epoch FROM now() - min(e.at) FILTER (WHERE j.status = 'todo')), 0) AS oldest"
                " FROM procrastinate_jobs j"
                " LEFT JOIN LATERAL (SELECT min(at) AS at FROM procrastinate_events"
                " WHERE job_id = j.id AND type = 'deferred') e ON true"
                " WHERE j.status IN ('todo', 'doing')"
            )
        )
    ).one()
    workers = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE last_heartbeat > now() - make_interval(secs => :stale)) AS alive,"
                " extract(epoch FROM now() - max(last_heartbeat)) AS newest FROM procrastinate_workers"
            ),
            {"stale": stale_after_s},
        )
    ).one()
    return QueueState(
        waiting=int(jobs.waiting),
        running=int(jobs.running),
        oldest_waiting_s=float(jobs.oldest or 0),
        workers=int(workers.alive),
        newest_heartbeat_age_s=float(workers.newest) if workers.newest is not None else None,
    )
