"""A throwaway PostgreSQL server of the test's own, for fault tests that stop and restart it.

Fault tests must not stop the machine's shared server (other tests and other processes use it), so
each one gets a private cluster: ``initdb`` into a temporary directory, started on a free port,
stopped and removed afterwards. ``stop()``/``start()`` inject the outage. When the process runs as
root the server runs as the ``postgres`` user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["PgCluster", "pg_cluster"]


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    root = Path("/usr/lib/postgresql")
    versions = sorted(root.glob("*/bin/pg_ctl")) if root.is_dir() else []
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """One private PostgreSQL server; ``url`` points at its ``postgres`` database (asyncpg)."""

    bin_dir: Path
    data_dir: Path
    port: int = field(default_factory=_free_port)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.data_dir.parent, "postgres")
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """Start (or restart after ``stop``) on the same port and data."""
        opts = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log_file = str(self.data_dir / "log")
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", opts, "-w", "-t", "30", "-l", log_file, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` is a crash (no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop")

    async def outage(self, seconds: float) -> None:
        """Stop the server, keep it down for ``seconds``, start it again (off the event loop)."""
        await asyncio.to_thread(self.stop)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.start)


@pytest.fixture
async def pg_cluster() -> AsyncIterator[PgCluster]:
    """A running private PostgreSQL server, removed after the test; skipped where none is installed."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
    parent = Path(tempfile.mkdtemp(prefix="bf-pg-"))
    cluster = PgCluster(bin_dir=bin_dir, data_dir=parent / "data")
    await asyncio.to_thread(cluster.init)
    await asyncio.to_thread(cluster.start)
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
            await asyncio.to_thread(cluster.stop, "immediate")
        shutil.rmtree(parent, ignore_errors=True)
