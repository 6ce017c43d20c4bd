"""The shared queue in process, on PostgreSQL: the job is written with the message, steering reads the
database, migrations apply procrastinate's schema, and a stopping worker hands its turn back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from botframework.config.schema import Config
from botframework.errors import StorageError
from botframework.pipeline import Role
from botframework.pipeline.relay import LiveEvent, _coalesce
from botframework.pipeline.scaleout import ProcrastinateQueue, conversation_lock
from botframework.runtime import Runtime
from botframework.testing import wait_until
from botframework.turn import Turn
from storage.db import Database
from storage.tables import INBOUND_EVENTS, MESSAGES, TURNS
from tests.fakes import Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.pipeline.support import needs_postgresql, write_scaleout_config


def _config(db_url: str, model_url: str = "http://127.0.0.1:9/v1") -> Config:
    return Config.model_validate(
        {
            "storage": {"url": db_url},
            "queue": {"engine": "procrastinate", "heartbeat_s": 0.5, "stalled_after_s": 2},
            "server": {"shutdown_timeout_s": 0.5},
            "models": {
                "main": {"provider": "openai", "model": "gpt-4o-mini", "base_url": model_url, "api_key": "sk-test"}
            },
            "tenants": {"acme": {"agent": {"model": "main"}}},
        }
    )


def _head() -> str | None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from storage.db import MIGRATIONS_DIR

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _turn(event_id: str, text: str, user: str = "u1") -> Turn:
    return Turn(tenant="acme", channel="test", event_id=event_id, conversation_key=user, user_id=user, text=text)


def _runtime(config: Config, role: Role) -> Runtime:
    db = Database(config.storage.url)
    return Runtime(
        config=config, db=db, channels=False, queue=ProcrastinateQueue(db=db, role=role, config=config.queue)
    )


@pytest.fixture
async def ingress(db_url: str) -> AsyncIterator[Runtime]:
    runtime = _runtime(_config(db_url), Role.INGRESS)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def _jobs(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list(
            (await conn.execute(text("SELECT lock, queueing_lock, args, status FROM procrastinate_jobs ORDER BY id")))
            .mappings()
            .all()
        )


@pytest.mark.parametrize(
    ("argv", "what"), [(["worker"], "botframework worker"), (["serve", "--role", "ingress"], "serve --role ingress")]
)
def test_worker_and_ingress_refuse_sqlite_with_one_line(tmp_path: Path, argv: list[str], what: str) -> None:
    config = write_scaleout_config(
        tmp_path / "bot.yaml",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        model_base_url="http://127.0.0.1:9/v1",
    )
    result = subprocess.run(
        [sys.executable, "-m", "botframework", *argv, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    *_config_warnings, line = result.stderr.strip().splitlines()  # the config loader may warn first
    assert line.startswith("error: ") and what in line and "PostgreSQL" in line and "postgresql+asyncpg://" in line
    assert result.stdout == ""
    assert not (tmp_path / "bot.db").exists(), "refused before touching the database"


def test_live_deltas_of_one_turn_are_coalesced_and_split_to_fit_a_notify() -> None:
    events = [LiveEvent(turn_id="a", kind="delta", text="x" * 1500) for _ in range(3)]
    events += [LiveEvent(turn_id="b", kind="delta", text="y"), LiveEvent(turn_id="a", kind="done")]
    out = _coalesce(events)
    assert [(e.turn_id, e.kind, len(e.text)) for e in out] == [
        ("a", "delta", 2000),
        ("a", "delta", 2000),
        ("a", "delta", 500),
        ("b", "delta", 1),
        ("a", "done", 0),
    ]
    assert all(len(e.payload().encode()) < 8000 for e in out)


@needs_postgresql
async def test_migrations_apply_procrastinates_schema_once(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.upgrade()
        await db.upgrade()  # idempotent
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == _head()
            assert (await conn.execute(text("SELECT count(*) FROM procrastinate_jobs"))).scalar() == 0
            assert (
                await conn.execute(text("SELECT to_regprocedure('procrastinate_fetch_job_v2(varchar[], bigint)')"))
            ).scalar()
    finally:
        await db.close()


@needs_postgresql
async def test_an_accepted_message_and_its_job_commit_together_and_a_redelivery_makes_no_second_job(
    ingress: Runtime,
) -> None:
    first = await ingress.ingest(_turn("e1", "hello"))
    again = await ingress.ingest(_turn("e1", "hello"))
    assert again.duplicate and again.turn_id == first.turn_id
    [job] = await _jobs(ingress.db)
    assert job["lock"] == conversation_lock(first.conversation_id)
    assert job["args"] == {"conversation_id": first.conversation_id, "turn_id": first.turn_id}
    assert job["status"] == "todo"


@needs_postgresql
async def test_a_failed_enqueue_stores_nothing(ingress: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_a: Any, **_k: Any) -> None:
        raise StorageError("database write failed (postgresql): the queue is gone (simulated)")

    monkeypatch.setattr(ingress.queue, "enqueue", broken)
    with pytest.raises(StorageError):
        await ingress.ingest(_turn("e1", "hello"))
    async with ingress.db.read() as conn:
        for table in (INBOUND_EVENTS, MESSAGES, TURNS):
            assert (await conn.execute(select(func.count()).select_from(table))).scalar() == 0
    assert await _jobs(ingress.db) == []


@needs_postgresql
async def test_steering_takes_the_conversations_queued_turns_from_the_database(ingress: Runtime) -> None:
    t1 = await ingress.ingest(_turn("e1", "one"))
    t2 = await ingress.ingest(_turn("e2", "two"))
    t3 = await ingress.ingest(_turn("e3", "three"))
    other = await ingress.ingest(_turn("e4", "elsewhere", user="u2"))
    waiting = await ingress.queue.take_waiting(t1.conversation_id, t1.turn_id)
    assert waiting == [t2.turn_id, t3.turn_id]
    assert other.turn_id not in waiting


@needs_postgresql
async def test_a_stopping_worker_hands_its_running_turn_back_to_the_queue(db_url: str) -> None:
    async with FakeOpenAIServer(default=lambda _r: Reply(text="slow " * 20, chunks=20, chunk_delay_s=0.5)) as model:
        config = _config(db_url, model.base_url)
        ingress = _runtime(config, Role.INGRESS)
        await ingress.start()
        worker = _runtime(config, Role.WORKER)
        await worker.start()
        try:
            await ingress.ingest(_turn("e1", "hello"))
            await asyncio.wait_for(model.wait_for_requests(1), 20)

            async def running() -> bool:
                return [j["status"] for j in await _jobs(ingress.db)] == ["doing"]

            await wait_until(running, what="the worker to take the job")
            await worker.stop()  # shutdown_timeout_s 0.5: the turn cannot finish
            jobs = await _jobs(ingress.db)
            assert [j["status"] for j in jobs] == ["todo"], jobs
            async with ingress.db.read() as conn:
                assert (await conn.execute(select(TURNS.c.status))).scalar() == "running"
        finally:
            await ingress.stop()


@needs_postgresql
async def test_a_worker_queues_open_turns_that_lost_their_job_again(ingress: Runtime) -> None:
    from botframework.pipeline.worker import TURN_QUEUE, TURN_TASK
    from storage.queue import requeue_orphans

    t1 = await ingress.ingest(_turn("e1", "hello"))
    async with ingress.db.write() as conn:
        await conn.execute(text("UPDATE procrastinate_jobs SET status = 'failed'"))
        assert await requeue_orphans(conn, queue=TURN_QUEUE, task=TURN_TASK) == 0  # too young: maybe starting
        assert await requeue_orphans(conn, queue=TURN_QUEUE, task=TURN_TASK, min_age_s=0) == 1
        assert await requeue_orphans(conn, queue=TURN_QUEUE, task=TURN_TASK, min_age_s=0) == 0
    jobs = await _jobs(ingress.db)
    assert [j["status"] for j in jobs] == ["failed", "todo"]
    assert jobs[1]["lock"] == conversation_lock(t1.conversation_id)
    assert jobs[1]["args"] == {"conversation_id": t1.conversation_id, "turn_id": t1.turn_id}


@needs_postgresql
async def test_a_done_notice_and_the_sweep_together_send_a_stored_reply_once(
    ingress: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from botframework.states import DeliveryStatus
    from botframework.turn import Reply as TurnReply
    from storage.deliveries import DeliveryRecord, create_delivery, mark_delivery

    accepted = await ingress.ingest(_turn("e1", "hello"))
    async with ingress.db.write() as conn:
        await create_delivery(conn, turn_id=accepted.turn_id, tenant="acme", channel="test", reply=TurnReply(text="hi"))
    ingress.adapters[("acme", "test")] = SimpleNamespace(replies_on_connection=True, holds_gateway=False)  # type: ignore[assignment]
    sent: list[str] = []

    async def deliver_here(delivery: DeliveryRecord) -> None:
        sent.append(delivery.turn_id)
        await asyncio.sleep(0.2)  # the socket write, then the row is marked
        async with ingress.db.write() as conn:
            await mark_delivery(conn, delivery.id, status=DeliveryStatus.SENT)

    monkeypatch.setattr(ingress, "deliver_here", deliver_here)
    queue = ingress.queue
    assert isinstance(queue, ProcrastinateQueue)
    try:
        await asyncio.gather(queue._deliver_stored(accepted.turn_id), queue._deliver_stored(accepted.turn_id))
        await queue._deliver_stored(accepted.turn_id)
    finally:
        del ingress.adapters[("acme", "test")]
    assert sent == [accepted.turn_id]


class _FlakyAdapter:
    """A vendor API that refuses the first attempt (retryable) and takes the next."""

    name = "test"
    tenant = "acme"
    holds_replies = False
    holds_gateway = False
    replies_on_connection = False

    def __init__(self) -> None:
        self.attempts = 0

    async def deliver(self, outbound: Any) -> None:
        from botframework.errors import DeliveryError

        self.attempts += 1
        if self.attempts == 1:
            raise DeliveryError("503 from the vendor (simulated)", retryable=True)

    async def stop(self) -> None:
        return None


@needs_postgresql
async def test_a_failed_delivery_is_retried_by_a_queued_job(db_url: str) -> None:
    from storage.deliveries import delivery_for_turn

    async with FakeOpenAIServer(default=lambda _r: Reply(text="the answer")) as model:
        config = _config(db_url, model.base_url)
        ingress = _runtime(config, Role.INGRESS)
        await ingress.start()
        worker = _runtime(config, Role.WORKER)
        adapter = _FlakyAdapter()
        worker.adapters[("acme", "test")] = adapter  # type: ignore[assignment]
        in_process: list[str] = []

        async def no_in_process_retry(delivery: Any, attempt: int) -> None:
            in_process.append(delivery.turn_id)

        worker._retry_delivery = no_in_process_retry  # type: ignore[method-assign]
        await worker.start()
        try:
            accepted = await ingress.ingest(_turn("e1", "hello"))

            async def sent() -> bool:
                async with ingress.db.read() as conn:
                    d = await delivery_for_turn(conn, accepted.turn_id)
                return d is not None and d.status == "sent"

            await wait_until(sent, timeout=20, what="the retried delivery")
            assert adapter.attempts == 2

            async def jobs_done() -> bool:  # the turn's and the delivery's jobs succeeded (and were deleted)
                return await _jobs(ingress.db) == []

            await wait_until(jobs_done, timeout=10, what="the jobs to finish")
            assert in_process == [], "the retry ran from the queue, not from this process's memory"
        finally:
            await worker.stop()
            await ingress.stop()


@needs_postgresql
async def test_healthz_and_metrics_report_the_role_and_the_shared_queue(ingress: Runtime) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from botframework.server import build_app

    await ingress.ingest(_turn("e1", "hello"))
    await ingress.ingest(_turn("e2", "hello", user="u2"))
    queue = ingress.queue
    assert isinstance(queue, ProcrastinateQueue) and queue._gauges is not None
    queue._gauges.update(await queue.state())
    ingress.start = ingress.stop = _noop  # type: ignore[method-assign]  # the fixture owns its lifecycle
    async with TestClient(TestServer(build_app(ingress))) as client:
        health = await (await client.get("/healthz")).json()
        metrics = await (await client.get("/metrics")).text()
    assert health["status"] == "ok" and health["role"] == "ingress"
    assert health["queue"]["engine"] == "procrastinate"
    assert health["queue"]["waiting"] == 2 and health["queue"]["running"] == 0 and health["queue"]["workers"] == 0
    assert health["queue"]["oldest_waiting_s"] >= 0
    assert "acme" not in str(health)
    assert 'botframework_queue_jobs{state="waiting"} 2.0' in metrics
    assert "botframework_queue_oldest_job_seconds" in metrics and "botframework_queue_workers 0.0" in metrics


async def _noop() -> None:
    return None


@needs_postgresql
async def test_a_user_cancel_reaches_the_turn_running_on_a_worker(db_url: str) -> None:
    from storage.deliveries import delivery_for_turn

    async with FakeOpenAIServer(default=lambda _r: Reply(text="slow " * 40, chunks=40, chunk_delay_s=0.25)) as model:
        config = _config(db_url, model.base_url)
        ingress = _runtime(config, Role.INGRESS)
        await ingress.start()
        worker = _runtime(config, Role.WORKER)
        await worker.start()
        try:
            accepted = await ingress.ingest(_turn("e1", "hello"))
            await asyncio.wait_for(model.wait_for_requests(1), 20)
            assert await ingress.cancel("acme", "test", "e1", conversation_key="u1")

            async def cancelled() -> bool:
                async with ingress.db.read() as conn:
                    d = await delivery_for_turn(conn, accepted.turn_id)
                return d is not None

            await wait_until(cancelled, timeout=15, what="the worker to end the turn")
            async with ingress.db.read() as conn:
                d = await delivery_for_turn(conn, accepted.turn_id)
                status = (await conn.execute(select(TURNS.c.status))).scalar()
            assert d is not None and d.reply.text == "Cancelled." and str(d.reply.error_kind) == "cancelled"
            assert status == "cancelled"
            assert not await ingress.cancel("acme", "test", "e1"), "nothing runs any more"

            async def jobs_done() -> bool:  # finished, not put back for a retry
                return await _jobs(ingress.db) == []

            await wait_until(jobs_done, timeout=10, what="the job to end")
            assert len(model.requests) == 1
        finally:
            await worker.stop()
            await ingress.stop()
