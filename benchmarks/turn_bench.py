"""The turn hot path end to end (issue 9): framework CPU per turn as a conversation grows, send->done
latency, throughput with many users, and SQL statements and transactions per turn. Prints tables.

Every turn is a real one: a WebSocket client (aiohttp, in this process) sends a ``message`` frame
to the server (``build_app``, in this process, listening on 127.0.0.1) and waits for its ``done``
frame; the turn goes through ``Runtime.ingest``, the scheduler, the invocation service, the model
provider and the delivery back over the socket, with logging configured as ``serve`` does it (INFO,
JSON lines, to a file) and the Prometheus metrics updated. The fake OpenAI and Anthropic servers
(``tests/fakes``) run in a child process, so their CPU is not counted; the offline model runs in
process (it is part of what a deployment without a model runs).

Scenarios, on SQLite (a file in a temporary directory) and PostgreSQL (a scratch database on the
local server, dropped afterwards):

- **conversation**: one user, 205 sequential turns through the OpenAI provider, the Anthropic
  provider and the offline model; the prompt grows to ~400 messages (~9k tokens). CPU per turn is
  ``time.process_time()`` of this process (server and client) over each turn's send->done window,
  averaged over turns 6-25 and 186-205; the ratio is their quotient. p50/p99 are send->done over
  turns 6-205.
- **50 users x 40 turns** (offline model): 50 sockets, each sending its next message when the
  previous one is answered. Turns per second over the whole run; each of the 2,000 messages must
  get exactly one ``done`` frame (checked, plus one sent delivery per turn in the database).

SQL statements (``before_cursor_execute``) and transactions (``begin``) are counted with
SQLAlchemy engine events over the measured turns and divided by the number of turns.

PostgreSQL: the server of ``BOTFRAMEWORK_TEST_PG_URL`` (default the local one), in a scratch database
``bf_bench_<random>`` dropped at the end; unreachable means SQLite only.

Usage: ``python benchmarks/turn_bench.py [--no-pg] [--turns N] [--users N --user-turns N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from botframework.config.schema import Config  # noqa: E402
from botframework.events import TurnEvent  # noqa: E402
from botframework.logs import setup_logging  # noqa: E402
from botframework.runtime import Runtime  # noqa: E402
from botframework.server import build_app  # noqa: E402
from botframework.testing.databases import scratch_database  # noqa: E402

PG_ADMIN_URL = os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TENANT = "bench"
ANSWER = "Sure, here is a short answer about that topic, in a few words."
EARLY = (6, 25)
LATE = (186, 205)


def serve() -> None:  # pragma: no cover - runs in the child process
    from tests.fakes import Reply
    from tests.fakes.anthropic_server import FakeAnthropicServer
    from tests.fakes.openai_server import FakeOpenAIServer

    async def main() -> None:
        answer = Reply(text=ANSWER, chunks=6)
        async with (
            FakeOpenAIServer(default=lambda _: answer, validate=False) as oai,
            FakeAnthropicServer(default=lambda _: answer, validate=False) as ant,
        ):
            oai.requests = _Forgetful()
            ant.requests = _Forgetful()
            print(json.dumps({"openai": oai.base_url, "anthropic": ant.base_url}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


class _Forgetful(list[Any]):
    """The fakes record every request; a long benchmark need not keep them."""

    def append(self, item: Any) -> None:
        return None


def model_config(kind: str, urls: dict[str, str]) -> dict[str, Any]:
    common = {"context_window": 128_000, "max_output_tokens": 1024}
    if kind == "offline":
        return {"provider": "offline", **common}
    model = "gpt-4o-mini" if kind == "openai" else "claude-sonnet-4-5"
    return {"provider": kind, "model": model, "base_url": urls[kind], "api_key": "bench-key", "timeout_s": 30, **common}


def config(db_url: str, kind: str, urls: dict[str, str]) -> Config:
    return Config.model_validate(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "storage": {"url": db_url},
            "logging": {"level": "INFO", "format": "json"},
            "models": {"main": model_config(kind, urls)},
            "tenants": {
                TENANT: {
                    "agent": {"model": "main", "system_prompt": "You are a helpful assistant.", "tools": ["clock"]},
                    "channels": {"websocket": {"identity": "none", "rate_limit_per_min": 10_000}},
                }
            },
        }
    )


@dataclass
class SqlCounter:
    """Statements and transactions the engine ran since the last ``reset``."""

    statements: int = 0
    transactions: int = 0

    def attach(self, engine: Any) -> None:
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _begin(self, *_: Any) -> None:
        self.transactions += 1

    def reset(self) -> None:
        self.statements = 0
        self.transactions = 0


@dataclass
class Client:
    """One user's socket: terminal frames (``done``/``error``) counted per message id."""

    ws: aiohttp.ClientWebSocketResponse
    finals: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("type") in ("done", "error") and frame.get("reply_to"):
                self.finals[frame["reply_to"]].append(frame)
                future = self.waiting.pop(frame["reply_to"], None)
                if future is not None and not future.done():
                    future.set_result(frame)

    async def turn(self, frame_id: str, text_: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[frame_id] = future
        await self.ws.send_str(json.dumps({"type": "message", "id": frame_id, "text": text_}))
        return await asyncio.wait_for(future, timeout=60)


@contextlib.asynccontextmanager
async def running(cfg: Config, log_path: Path) -> AsyncIterator[tuple[Runtime, str, SqlCounter]]:
    with log_path.open("a", encoding="utf-8") as log_stream:
        setup_logging(cfg, stream=log_stream)
        runtime = Runtime(config=cfg)
        counter = SqlCounter()
        counter.attach(runtime.db.engine.sync_engine)
        runner = web.AppRunner(build_app(runtime, host="127.0.0.1"), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield runtime, f"http://127.0.0.1:{runner.addresses[0][1]}", counter
        finally:
            await runner.cleanup()
            logging.getLogger().handlers.clear()


async def connect(session: aiohttp.ClientSession, url: str, user: str) -> Client:
    ws = await session.ws_connect(f"{url}/t/{TENANT}/ws", params={"user": user}, heartbeat=None)
    client = Client(ws=ws)
    client.start()
    return client


def question(i: int) -> str:
    words = " ".join(f"word{(i * 7 + j) % 101}" for j in range(8))
    return f"Question {i}: tell me about {words}?"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class ConversationRow:
    backend: str
    model: str
    turns: int
    cpu_early: float
    cpu_late: float
    p50: float
    p99: float
    statements: float
    transactions: float
    prompt_messages: int
    prompt_tokens: int


async def conversation(
    db_url: str, backend: str, kind: str, urls: dict[str, str], turns: int, log_path: Path
) -> ConversationRow:
    cfg = config(db_url, kind, urls)
    last_request: dict[str, Any] = {}

    def on_event(ev: TurnEvent) -> None:
        if ev.kind == "model_request":
            last_request.update(ev.data)

    async with running(cfg, log_path) as (runtime, url, counter), aiohttp.ClientSession() as session:
        runtime.events.subscribe(on_event)
        client = await connect(session, url, f"user-{uuid.uuid4().hex[:8]}")
        cpu: list[float] = []
        wall: list[float] = []
        for i in range(1, turns + 1):
            if i == EARLY[0]:
                counter.reset()
            c0, t0 = time.process_time(), time.perf_counter()
            frame = await client.turn(f"m{i}", question(i))
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            if frame["type"] != "done":
                raise SystemExit(f"{backend}/{kind}: turn {i} failed: {frame}")
        await asyncio.sleep(0.3)  # the last delivery is marked sent after its frame went out
        measured = turns - EARLY[0] + 1
        row = ConversationRow(
            backend=backend,
            model=kind,
            turns=turns,
            cpu_early=statistics.fmean(cpu[EARLY[0] - 1 : EARLY[1]]),
            cpu_late=statistics.fmean(cpu[LATE[0] - 1 : LATE[1]]) if turns >= LATE[1] else float("nan"),
            p50=pct(wall[EARLY[0] - 1 :], 0.50),
            p99=pct(wall[EARLY[0] - 1 :], 0.99),
            statements=counter.statements / measured,
            transactions=counter.transactions / measured,
            prompt_messages=int(last_request.get("messages", 0)),
            prompt_tokens=int(last_request.get("estimated_prompt_tokens", 0)),
        )
        await client.ws.close()
        return row


@dataclass
class ThroughputRow:
    backend: str
    users: int
    turns_each: int
    seconds: float
    p50: float
    p99: float
    once: str
    statements: float
    transactions: float


async def throughput(db_url: str, backend: str, users: int, turns_each: int, log_path: Path) -> ThroughputRow:
    from storage.tables import DELIVERIES, TURNS

    cfg = config(db_url, "offline", {})
    async with (
        running(cfg, log_path) as (runtime, url, counter),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        clients = [await connect(session, url, f"load-{n}-{uuid.uuid4().hex[:6]}") for n in range(users)]
        # one warm-up turn per user (conversation rows, connections, caches), not measured
        await asyncio.gather(*(c.turn("warm", "hello") for c in clients))
        await asyncio.sleep(0.3)
        counter.reset()
        wall: list[float] = []

        async def user(client: Client) -> None:
            for i in range(turns_each):
                t0 = time.perf_counter()
                await client.turn(f"t{i}", question(i))
                wall.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(user(c) for c in clients))
        seconds = time.perf_counter() - start
        await asyncio.sleep(1.0)  # any duplicate answer would arrive by now
        total = users * turns_each
        problems = []
        for c in clients:
            for i in range(turns_each):
                finals = c.finals.get(f"t{i}", [])
                if len(finals) != 1 or finals[0]["type"] != "done":
                    problems.append(f"{len(finals)} terminal frame(s) for one message")
        async with runtime.db.read() as conn:
            turns_done = (
                await conn.execute(select(func.count()).select_from(TURNS).where(TURNS.c.status == "done"))
            ).scalar_one()
            sent = (
                await conn.execute(
                    select(func.count(func.distinct(DELIVERIES.c.turn_id))).where(DELIVERIES.c.status == "sent")
                )
            ).scalar_one()
            rows = (await conn.execute(select(func.count()).select_from(DELIVERIES))).scalar_one()
        expected = total + users
        if not turns_done == sent == rows == expected:
            problems.append(f"database: {turns_done} turns done, {sent} sent, {rows} deliveries, {expected} expected")
        once = "yes" if not problems else f"NO ({problems[0]}; {len(problems)} problem(s))"
        for c in clients:
            await c.ws.close()
        return ThroughputRow(
            backend=backend,
            users=users,
            turns_each=turns_each,
            seconds=seconds,
            p50=pct(wall, 0.5),
            p99=pct(wall, 0.99),
            once=once,
            statements=counter.statements / total,
            transactions=counter.transactions / total,
        )


@contextlib.asynccontextmanager
async def database(backend: str, tmp: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        path = tmp / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    async with scratch_database(PG_ADMIN_URL, prefix="bf_bench") as url:
        yield url


async def pg_available() -> bool:
    admin = create_async_engine(PG_ADMIN_URL)
    try:
        async with admin.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await admin.dispose()


async def bench(args: argparse.Namespace, urls: dict[str, str]) -> tuple[list[ConversationRow], list[ThroughputRow]]:
    backends = ["sqlite"]
    if not args.no_pg:
        if await pg_available():
            backends.append("postgresql")
        else:
            print(f"PostgreSQL not reachable at {PG_ADMIN_URL}: SQLite only", file=sys.stderr)
    conversations: list[ConversationRow] = []
    loads: list[ThroughputRow] = []
    with tempfile.TemporaryDirectory(prefix="turn-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        log_path = tmp / "server.log"
        for backend in backends:
            for kind in ("openai", "anthropic", "offline"):
                async with database(backend, tmp) as url:
                    conversations.append(await conversation(url, backend, kind, urls, args.turns, log_path))
                    print(f"  done: {backend} {kind} conversation", file=sys.stderr, flush=True)
            async with database(backend, tmp) as url:
                loads.append(await throughput(url, backend, args.users, args.user_turns, log_path))
                print(f"  done: {backend} {args.users}x{args.user_turns}", file=sys.stderr, flush=True)
    return conversations, loads


def report(conversations: list[ConversationRow], loads: list[ThroughputRow]) -> None:
    print("one user, sequential turns (WebSocket in process; fake model servers in a child process)")
    print(
        f"{'backend':<11}{'model':<10}{'turns':>6}{'cpu 6-25':>10}{'cpu 186-205':>12}{'ratio':>7}"
        f"{'p50':>8}{'p99':>8}{'stmts/turn':>11}{'txns/turn':>10}{'last prompt':>17}"
    )
    for r in conversations:
        print(
            f"{r.backend:<11}{r.model:<10}{r.turns:>6}{r.cpu_early:>8.2f}ms{r.cpu_late:>10.2f}ms"
            f"{r.cpu_late / r.cpu_early:>6.2f}x{r.p50:>6.2f}ms{r.p99:>6.2f}ms{r.statements:>11.1f}"
            f"{r.transactions:>10.1f}{r.prompt_messages:>6} msg {r.prompt_tokens:>5} tok"
        )
    print()
    print("many users, offline model: each user sends its next message when the previous one is answered")
    print(
        f"{'backend':<11}{'users x turns':>14}{'seconds':>9}{'turns/s':>9}{'p50':>9}{'p99':>9}"
        f"{'stmts/turn':>11}{'txns/turn':>10}  answered exactly once"
    )
    for t in loads:
        total = t.users * t.turns_each
        print(
            f"{t.backend:<11}{f'{t.users} x {t.turns_each}':>14}{t.seconds:>9.2f}{total / t.seconds:>9.1f}"
            f"{t.p50:>7.1f}ms{t.p99:>7.1f}ms{t.statements:>11.1f}{t.transactions:>10.1f}  {t.once}"
        )
    print()
    print("issue 9 targets")
    for r in conversations:
        if r.model == "offline" or r.cpu_late != r.cpu_late:
            continue
        ok = r.cpu_late <= 8.0 and r.cpu_late <= 2 * r.cpu_early
        print(f"  {r.backend} {r.model}: CPU at 186-205 <= 8 ms and <= 2x 6-25: {'yes' if ok else 'NO'}")
    for r in conversations:
        if r.model == "offline" and r.backend == "sqlite":
            print(f"  sqlite offline one user p50 <= 5 ms: {'yes' if r.p50 <= 5.0 else 'NO'} ({r.p50:.2f} ms)")
    for t in loads:
        if t.backend == "sqlite":
            rate = t.users * t.turns_each / t.seconds
            ok = rate >= 500 and t.once == "yes"
            print(f"  sqlite {t.users}x{t.turns_each} >= 500 turns/s, each answered once: {'yes' if ok else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=205, help="turns of the one-user conversation")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--user-turns", type=int, default=40)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        urls = json.loads(child.stdout.readline())
        conversations, loads = asyncio.run(bench(args, urls))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)
    report(conversations, loads)


if __name__ == "__main__":
    main()
