"""Scale-out test helpers: a config for several processes, and ``serve``/``worker`` subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BACKEND

needs_postgresql = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="scale-out needs PostgreSQL (several processes share the queue): run with BOTFRAMEWORK_TEST_DB=postgresql",
)


def write_scaleout_config(
    path: Path,
    *,
    db_url: str,
    model_base_url: str,
    engine: str = "procrastinate",
    concurrency: int = 4,
    heartbeat_s: float = 0.5,
    stalled_after_s: float = 2.0,
    extra_channels: dict[str, Any] | None = None,
) -> Path:
    """One websocket tenant; every model request carries ``X-Process: $BF_PROCESS`` (who called it)."""
    config = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout_s": 5},
        "storage": {"url": db_url, "pool_size": 5},
        "logging": {"level": "INFO", "format": "json"},
        "queue": {
            "engine": engine,
            "concurrency": concurrency,
            "heartbeat_s": heartbeat_s,
            "stalled_after_s": stalled_after_s,
        },
        "models": {
            "main": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": model_base_url,
                "api_key": "sk-test-key-123456",
                "max_output_tokens": 256,
                "timeout_s": 30,
                "headers": {"X-Process": "${BF_PROCESS:-unnamed}"},
            }
        },
        "tenants": {
            "acme": {
                "agent": {"model": "main"},
                "channels": {"websocket": {"identity": "none", "rate_limit_per_min": 1000}, **(extra_channels or {})},
            }
        },
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class BotProcess:
    """``python -m botframework <args>``; ready when a stdout line contains ``ready_text``."""

    def __init__(self, args: list[str], *, name: str, log: Path, ready_text: str) -> None:
        self.args = args
        self.name = name
        self.log = log
        self.ready_text = ready_text
        self.proc: asyncio.subprocess.Process | None = None
        self.first_line = ""

    @classmethod
    def ingress(cls, config: Path, log: Path, *, name: str = "ingress", role: str = "ingress") -> BotProcess:
        return cls(["serve", "--config", str(config), "--role", role], name=name, log=log, ready_text="listening on ")

    @classmethod
    def worker(cls, config: Path, log: Path, *, name: str, concurrency: int = 2) -> BotProcess:
        args = ["worker", "--config", str(config), "--concurrency", str(concurrency)]
        return cls(args, name=name, log=log, ready_text="worker running")

    @property
    def url(self) -> str:
        return self.first_line.split("listening on ", 1)[1].split()[0]

    async def start(self, timeout: float = 60) -> BotProcess:
        env = {**os.environ, "BF_PROCESS": self.name}
        log = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "botframework", *self.args, stdout=asyncio.subprocess.PIPE, stderr=log, env=env
        )
        log.close()
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"{self.name} exited early; log:\n{self.log.read_text()[-4000:]}")
                if self.ready_text in line:
                    self.first_line = line
                    break
        asyncio.get_running_loop().create_task(self._drain())
        return self

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc is not None and self.proc.returncode is not None else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def tracebacks(self) -> list[str]:
        """Log lines with a traceback (a traceback in a log is a bug)."""
        return [line for line in self.log.read_text().splitlines() if "Traceback" in line]
