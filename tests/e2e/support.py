"""Run ``botframework serve`` as a real subprocess and talk to it over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import yaml


def write_config(
    path: Path,
    *,
    db_url: str,
    model_base_url: str,
    tenants: dict[str, dict[str, Any]],
    context_window: int = 16384,
    shutdown_timeout_s: float = 5,
) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout_s": shutdown_timeout_s},
        "storage": {"url": db_url},
        "logging": {"level": "INFO", "format": "json"},
        "models": {
            "main": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": model_base_url,
                "api_key": "${TEST_OPENAI_KEY}",
                "context_window": context_window,
                "max_output_tokens": 1024,
                "timeout_s": 30,
            }
        },
        "tenants": tenants,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class ServerProcess:
    """``python -m botframework serve`` on port 0; ``url`` is read from its first stdout line."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout: float = 60) -> str:
        env = {**os.environ, "TEST_OPENAI_KEY": "sk-test-key-123456"}
        log = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botframework",
            "serve",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=env,
        )
        log.close()
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"server exited early; log:\n{self.log.read_text()[-4000:]}")
                if "listening on " in line:
                    self.url = line.split("listening on ", 1)[1].split()[0]
                    break
        asyncio.get_running_loop().create_task(self._drain())
        return self.url

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

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


class ChatClient:
    """One WebSocket connection; every received frame is kept in order."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        base_url: str,
        tenant: str,
        user: str,
        token: str | None = None,
        *,
        resume: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ChatClient:
        """Connect with ``?user=`` (trusted only with identity "none"), or ``resume`` an anonymous user."""
        params = {"user": user, **({"token": token} if token else {}), **({"resume": resume} if resume else {})}
        ws = await session.ws_connect(
            f"{base_url}/t/{tenant}/ws", params=params, heartbeat=None, headers=headers or {}
        )
        return cls(session, ws)

    @property
    def user(self) -> str:
        """Who the server says this connection is (its ``session`` frame)."""
        return str(self.frames[0]["user"]) if self.frames and self.frames[0]["type"] == "session" else ""

    @property
    def resume(self) -> str | None:
        session = self.frames[0] if self.frames and self.frames[0]["type"] == "session" else {}
        return session.get("resume")

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(json.loads(msg.data))
                self._changed.set()
        self._changed.set()

    async def send(self, frame_id: str, text: str) -> None:
        await self.ws.send_json({"type": "message", "id": frame_id, "text": text})

    async def wait_for(self, kind: str, reply_to: str | None = None, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for f in self.frames:
                    if f["type"] == kind and (reply_to is None or f.get("reply_to") == reply_to):
                        return f
                if self.ws.closed and self._reader.done():
                    raise AssertionError(f"socket closed before a {kind} frame for {reply_to}: {self.frames}")
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: str, reply_to: str | None = None) -> list[dict[str, Any]]:
        return [
            f
            for f in self.frames
            if f["type"] == kind and (reply_to is None or f.get("reply_to") == reply_to)
        ]

    async def closed_with(self, timeout: float = 10) -> int | None:
        """Wait until the server closes the socket (the reader owns ``receive``) and return its code."""
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample's values whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def by_reply_to(frames: list[dict[str, Any]], kind: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for f in frames:
        if f["type"] == kind:
            counts[f["reply_to"]] += 1
    return dict(counts)
