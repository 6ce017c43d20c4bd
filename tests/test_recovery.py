"""Storage health, the recovery loop and the 503 net, in process on both backends: an outage is
simulated by a Database whose operations fail like an unreachable server (the real outage, a
stopped PostgreSQL under load, is ``tests/e2e/test_db_outage.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import IntegrityError, OperationalError

from botframework.config.schema import Config
from botframework.errors import StorageError
from botframework.health import health_report
from botframework.runtime import Runtime
from botframework.storage_health import StorageHealth, describe, is_outage
from botframework.testing import ScriptedModel, Step, wait_until
from botframework.turn import Origin
from botframework.unavailable import storage_unavailable_middleware
from storage.db import Database
from tests.e2e.support import metric_value


class FlakyDatabase(Database):
    """Every operation fails like a refused connection while ``down`` is set (reported to health)."""

    down = False

    def _refuse(self, what: str) -> StorageError:
        cause = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        self.health.failed(cause)
        error = StorageError(f"database {what} failed ({self.dialect}): {cause}")
        error.__cause__ = cause
        return error

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        if self.down:
            raise self._refuse("read")
        async with super().read() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        if self.down:
            raise self._refuse("write")
        async with super().write() as conn:
            yield conn


def test_outages_are_told_from_failures_of_one_statement() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    assert is_outage(refused)
    wrapped = StorageError("database write failed (postgresql): ...")
    wrapped.__cause__ = OperationalError("INSERT INTO t VALUES (?)", {"secret": "user text"}, refused)
    assert is_outage(wrapped)
    assert describe(wrapped) == "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5432)"
    assert "user text" not in describe(wrapped) and "INSERT" not in describe(wrapped)
    duplicate = StorageError("database write failed")
    duplicate.__cause__ = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: events.event_id"))
    assert not is_outage(duplicate)
    assert is_outage(OperationalError("BEGIN", {}, Exception("database is locked")))


async def test_health_goes_down_once_reports_the_kind_only_and_wakes_waiters_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = StorageHealth()
    downs: list[int] = []
    health.on_down.append(lambda: downs.append(1))
    assert health.report() is None and await health.wait_up(0)
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        assert health.failed(ConnectionRefusedError(111, "Connect call failed ('10.0.0.7', 5432)"))
    assert not health.ok and downs == [1] and health.failures == 3
    report = health.report()
    assert report is not None and report["status"] == "unavailable"
    assert "ConnectionRefusedError" in report["detail"] and "10.0.0.7" not in str(report)  # public endpoint
    assert health_report([], storage=report)["status"] == "degraded"
    assert health_report([], storage=None) == {"status": "ok"}
    waiter = asyncio.create_task(health.wait_up(30))
    await asyncio.sleep(0.01)
    health.succeeded()
    assert await waiter and health.report() is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("storage unavailable" in m for m in messages) == 1  # one line per outage, not per failure
    assert sum("storage is back" in m for m in messages) == 1
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_storage_error_reaching_the_http_layer_is_a_503_with_retry_after() -> None:
    async def handler(_request: web.Request) -> web.Response:
        error = StorageError("database write failed (postgresql): SELECT secret")
        error.__cause__ = ConnectionRefusedError(111, "refused")
        raise error

    app = web.Application(middlewares=[storage_unavailable_middleware])
    app.router.add_post("/hook", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/hook", data=b"{}")
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert "secret" not in await response.text()


@pytest.fixture
async def flaky(db_url: str) -> AsyncIterator[tuple[Runtime, FlakyDatabase, ScriptedModel]]:
    config = Config.model_validate(
        {
            "storage": {"url": db_url},
            "models": {"main": {"provider": "offline", "model": "scripted"}},
            "tenants": {"acme": {"agent": {"model": "main"}}},
        }
    )
    db = FlakyDatabase(db_url)
    model = ScriptedModel(name="main", config=config.models["main"])
    runtime = Runtime(config=config, db=db, clients={"main": model}, channels=False)
    runtime.storage_retry_delays_s = (0.05, 0.05)  # give up fast: the recovery loop must take over
    await runtime.start()
    try:
        yield runtime, db, model
    finally:
        db.down = False
        await runtime.stop()


async def test_a_turn_that_gave_up_during_an_outage_resumes_when_storage_is_back_without_a_restart(
    flaky: tuple[Runtime, FlakyDatabase, ScriptedModel], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, db, model = flaky
    caplog.set_level(logging.INFO)
    model.default = lambda _r: Step(text="the answer")
    model.steps.append(Step(text="the answer", delay_s=0.3))
    ask = asyncio.create_task(
        runtime.ask(tenant="acme", origin=Origin.background("job"), conversation_key="k", text="question")
    )

    async def model_called() -> bool:
        return bool(model.requests)

    await wait_until(model_called, what="the model called")
    db.down = True  # the turn cannot record its answer; it retries, gives up, and stays open
    await wait_until(lambda: _logged(caplog, "the recovery loop resumes it"), what="the turn giving up")
    assert not ask.done() and not db.health.ok
    await asyncio.sleep(0.3)  # the recovery loop keeps probing; nothing else happens
    db.down = False  # its probe sees the database answer again and re-scans open turns
    reply = await asyncio.wait_for(ask, 10)
    assert reply.text == "the answer"
    assert db.health.report() is None and runtime.recovery.rescans >= 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_a_background_task_hitting_an_outage_is_one_line_and_a_rescan(
    flaky: tuple[Runtime, FlakyDatabase, ScriptedModel], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, db, _model = flaky
    caplog.set_level(logging.WARNING)
    db.down = True
    with pytest.raises(StorageError):
        await runtime.recover()
    runtime._spawn(runtime.recover())
    await wait_until(lambda: _logged(caplog, "background work hit a storage failure"), what="the log line")
    before = runtime.recovery.rescans
    db.down = False

    async def rescanned() -> bool:
        return runtime.recovery.rescans > before

    await wait_until(rescanned, what="a re-scan after the outage")
    assert not [r for r in caplog.records if r.exc_info]


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


async def test_an_outage_with_no_traffic_is_seen_by_the_idle_probe(
    flaky: tuple[Runtime, FlakyDatabase, ScriptedModel],
) -> None:
    runtime, db, _model = flaky
    runtime.recovery.idle_probe_s = 0.05
    before = runtime.recovery.rescans
    runtime.recovery.interrupted()  # wake the loop so it waits with the new interval

    async def rescanned() -> bool:
        return runtime.recovery.rescans > before

    await wait_until(rescanned, what="a re-scan")
    db.down = True

    async def down() -> bool:
        return db.health.report() is not None

    await wait_until(down, what="storage marked down by the idle probe")
    db.down = False

    async def up() -> bool:
        return db.health.report() is None

    await wait_until(up, what="storage marked up again")


async def test_metrics_say_whether_storage_is_up(flaky: tuple[Runtime, FlakyDatabase, ScriptedModel]) -> None:
    runtime, db, _model = flaky
    assert "botframework_storage_up 1.0" in runtime.metrics.render().decode()
    db.down = True
    with pytest.raises(StorageError):
        await runtime.transcript("acme", "web", "k")
    text = runtime.metrics.render().decode()
    assert "botframework_storage_up 0.0" in text
    failures = metric_value(text, "botframework_storage_outage_failures_total")
    assert failures >= 1  # this read, and any probe of the recovery loop since
