"""Build the runtime a process role needs, and run ``botframework worker``."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from botframework.config.schema import Config
from botframework.pipeline.roles import Role, scale_out_refusal
from botframework.pipeline.scaleout import ProcrastinateQueue
from botframework.runtime import Runtime
from storage.db import Database

__all__ = ["build_runtime", "refusal", "run_worker"]

log = logging.getLogger("botframework.pipeline")


def refusal(config: Config, role: Role, *, command: str) -> str | None:
    """Why this role cannot run with this config (one line), or None."""
    if role is Role.ALL and config.queue.engine == "embedded":
        return None
    what = command if role is not Role.ALL else "queue.engine: procrastinate"
    return scale_out_refusal(config.storage.url, what)


def build_runtime(config: Config, role: Role, *, concurrency: int | None = None) -> Runtime:
    """Today's single process for ``serve`` with the embedded queue; otherwise the shared queue."""
    if role is Role.ALL and config.queue.engine == "embedded":
        return Runtime(config=config)
    db = Database(config.storage.url, pool_size=config.storage.pool_size)
    queue = ProcrastinateQueue(db=db, role=role, config=config.queue, concurrency=concurrency)
    return Runtime(config=config, db=db, queue=queue)


async def run_worker(config: Config, *, concurrency: int | None, ready: Callable[[str], None]) -> int:
    """Run turns from the shared queue until SIGINT/SIGTERM, then finish or hand back running ones."""
    runtime = build_runtime(config, Role.WORKER, concurrency=concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    try:
        ready(f"botframework worker running up to {concurrency or config.queue.concurrency} turn(s) at once")
        await stop.wait()
        log.info("worker stopping: finishing running turns (up to %ss)", config.server.shutdown_timeout_s)
    finally:
        await runtime.stop()
    return 0
