"""Chaos runner: the real server under a misbehaving model, talked to by many WebSocket users.

Starts ``python -m botframework serve`` as a subprocess against two local fake OpenAI-compatible
model servers: the primary fails about 30% of requests (429 with ``Retry-After``, 500/502/503) and
drops about 10% of streams mid-answer; the fallback is healthy-ish (a few 503s). ``--users`` WebSocket
users each send ``--turns`` messages, one after the other (the next once the last is answered or has
timed out). Each message is then:

- answered: exactly one ``done`` frame;
- error: an ``error`` frame for it (the turn failed and said so);
- refused: an ``error`` frame of a kind that means "not stored" (``rate_limited``, ``queue_full``...);
- lost: neither within ``--turn-timeout-s``;
- duplicated: more than one final frame (``done``/``error``) for it.

It prints those counts, the time from send to final frame (p50/p99), and the server's RSS at
start and end. ``--soak-minutes M`` keeps the users talking for M minutes instead, each user in one
conversation of ``--turns`` messages after another (a new user each time, as in production: many
conversations, none endless), and prints an RSS sample every ``--sample-s`` seconds, with the
growth per turn, to show whether memory levels off.

    python benchmarks/chaos_bench.py                          # 6 users x 10 turns, SQLite
    python benchmarks/chaos_bench.py --users 20 --turns 10
    python benchmarks/chaos_bench.py --soak-minutes 10 --users 10
    python benchmarks/chaos_bench.py --pg                     # a scratch PostgreSQL database
    python benchmarks/chaos_bench.py --soak-minutes 4 --tracemalloc /tmp/trace   # where memory goes

``--tracemalloc DIR`` puts ``benchmarks/memtrace`` on the server's ``PYTHONPATH``: its
``sitecustomize`` writes the allocation sites that grew most (by traceback) to ``DIR`` every 30 s,
or with ``BF_MEMTRACE_MODE=census`` the containers (dicts, sets, lists, deques) whose length grew,
named by the attribute that holds them. Tracing slows the server several times over; the census
costs a pass over every object per sample and inflates RSS: compare its lengths, not its RSS.

The fakes are the test suite's (``tests/fakes``): run it from a checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.support import ChatClient, ServerProcess  # noqa: E402
from tests.fakes import Disconnect, RecordedRequest, Reply, Step  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer, rate_limited, server_error  # noqa: E402

TENANT = "chaos"
FINAL = ("done", "error")
REFUSALS = frozenset({"rate_limited", "queue_full", "quota_exceeded", "input_too_long", "bad_frame"})
"""Error kinds that refuse a message before it is stored: not a failed turn, counted apart."""


@dataclass
class Chaos:
    """A responder that fails a share of requests at random (seeded), counting what it did."""

    rng: random.Random
    rate_limited: float
    server_errors: float
    drops: float
    chunk_delay_s: float
    counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, request: RecordedRequest) -> Step:
        roll = self.rng.random()
        if roll < self.rate_limited:
            self.counts["429"] += 1
            return rate_limited(retry_after=self.rng.choice((1, 1, 2)))
        roll -= self.rate_limited
        if roll < self.server_errors:
            self.counts["5xx"] += 1
            return server_error(self.rng.choice((500, 502, 503)))
        roll -= self.server_errors
        if roll < self.drops and request.stream:
            self.counts["dropped"] += 1
            return Disconnect(text="an answer that is cut off in the middle of", after_chunks=2)
        self.counts["ok"] += 1
        users = [m for m in request.messages if m.get("role") == "user"]
        last = str(users[-1]["content"]) if users else ""
        return Reply(text=f"answer to {last[:80]}", chunks=4, chunk_delay_s=self.chunk_delay_s)


def server_config(path: Path, *, db_url: str, primary: str, fallback: str, turn_timeout_s: float) -> Path:
    def model(base_url: str) -> dict[str, Any]:
        return {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": base_url,
            "api_key": "${TEST_OPENAI_KEY}",
            "context_window": 16384,
            "max_output_tokens": 512,
            "timeout_s": 30,
        }

    config = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout_s": 5},
        "storage": {"url": db_url},
        "logging": {"level": "WARNING", "format": "json"},
        "models": {"primary": model(primary), "fallback": model(fallback)},
        "tenants": {
            TENANT: {
                "agent": {"model": "primary", "fallback_models": ["fallback"], "turn_timeout_s": turn_timeout_s},
                "channels": {"websocket": {"identity": "none", "rate_limit_per_min": 10_000}},
            }
        },
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def rss_kb(pid: int) -> int:
    """The process's resident set size (Linux ``/proc``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Tally:
    sent: dict[str, float] = field(default_factory=dict)
    """Frame id -> monotonic time it was sent."""
    latencies: list[float] = field(default_factory=list)
    turns_done: int = 0


async def user_loop(
    http: aiohttp.ClientSession,
    url: str,
    user: str,
    tally: Tally,
    clients: list[ChatClient],
    *,
    turns: int,
    until: float | None,
    turn_timeout_s: float,
    think_s: float,
) -> None:
    """``turns`` messages as ``user``; with ``until`` (a soak), conversations of ``turns`` messages
    one after another, each as a new user, until then: many conversations, as in production."""
    generation = 0
    while until is None or time.monotonic() < until:
        name = user if until is None else f"{user}-c{generation}"
        client = await ChatClient.connect(http, url, TENANT, name)
        clients.append(client)
        for n in range(1, turns + 1):
            if until is not None and time.monotonic() >= until:
                break
            frame_id = f"{name}-{n}"
            tally.sent[frame_id] = time.monotonic()
            await client.send(frame_id, f"question {n} from {name}")
            try:
                final = await _first_final(client, frame_id, turn_timeout_s)
            except TimeoutError:
                continue  # counted as lost at the end unless it shows up
            tally.latencies.append(time.monotonic() - tally.sent[frame_id])
            tally.turns_done += 1
            if final["type"] == "error" and final.get("kind") in REFUSALS:
                await asyncio.sleep(1.0)
            elif think_s:
                await asyncio.sleep(think_s)
        if until is None:
            return
        await asyncio.sleep(args_settle_s(turn_timeout_s))
        await client.close()
        generation += 1


def args_settle_s(turn_timeout_s: float) -> float:
    """How long a finished conversation's socket stays open for a late duplicate to show itself."""
    return min(1.0, turn_timeout_s)


async def _first_final(client: ChatClient, frame_id: str, timeout: float) -> dict[str, Any]:
    """The first ``done`` or ``error`` frame answering ``frame_id``; TimeoutError if none comes."""
    waits = [asyncio.ensure_future(client.wait_for(kind, frame_id, timeout=timeout)) for kind in FINAL]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is None:
                return task.result()
        raise TimeoutError
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def sampler(pid: int, tally: Tally, every_s: float, samples: list[tuple[float, int, int]]) -> None:
    start = time.monotonic()
    while True:
        await asyncio.sleep(every_s)
        kb = rss_kb(pid)
        samples.append((time.monotonic() - start, kb, tally.turns_done))
        print(f"  t={samples[-1][0]:7.0f}s  rss={kb / 1024:7.1f} MiB  turns={tally.turns_done}", flush=True)


async def pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    from botframework.testing import create_scratch_database, drop_scratch_database

    admin_url = os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    url = await create_scratch_database(admin_url, prefix="bf_chaos")
    return url, functools.partial(drop_scratch_database, admin_url, url)


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    primary_chaos = Chaos(
        rng=random.Random(rng.random()), rate_limited=0.15, server_errors=0.15, drops=0.10, chunk_delay_s=0.02
    )
    fallback_chaos = Chaos(
        rng=random.Random(rng.random()), rate_limited=0.0, server_errors=0.05, drops=0.0, chunk_delay_s=0.02
    )
    workdir = Path(tempfile.mkdtemp(prefix="bf-chaos-"))
    drop_db: Callable[[], Awaitable[None]] | None = None
    if args.pg:
        db_url, drop_db = await pg_database()
    else:
        db_url = f"sqlite+aiosqlite:///{workdir / 'chaos.db'}"
    tally = Tally()
    samples: list[tuple[float, int, int]] = []
    clients: list[ChatClient] = []
    try:
        async with (
            FakeOpenAIServer(default=primary_chaos, validate=False) as primary,
            FakeOpenAIServer(default=fallback_chaos, validate=False) as fallback,
        ):
            config = server_config(
                workdir / "bot.yaml",
                db_url=db_url,
                primary=primary.base_url,
                fallback=fallback.base_url,
                turn_timeout_s=args.model_deadline_s,
            )
            server = ServerProcess(config, workdir / "server.log")
            url = await server.start()
            assert server.proc is not None
            pid = server.proc.pid
            rss_start = rss_kb(pid)
            soak = args.soak_minutes is not None
            until = time.monotonic() + args.soak_minutes * 60 if soak else None
            print(
                f"chaos: {args.users} users x {'soak ' + str(args.soak_minutes) + ' min' if soak else args.turns}"
                f" turns, {'PostgreSQL' if args.pg else 'SQLite'}, seed {args.seed}; server pid {pid}",
                flush=True,
            )
            started = time.monotonic()
            sampling = asyncio.create_task(
                sampler(pid, tally, args.sample_s if soak else max(5.0, args.sample_s), samples)
            )
            try:
                async with aiohttp.ClientSession() as http:
                    await asyncio.gather(
                        *(
                            user_loop(
                                http,
                                url,
                                f"user{i:03d}",
                                tally,
                                clients,
                                turns=args.turns,
                                until=until,
                                turn_timeout_s=args.turn_timeout_s,
                                think_s=args.think_s,
                            )
                            for i in range(args.users)
                        )
                    )
                    await asyncio.sleep(args.settle_s)  # late answers and duplicates show themselves
                    elapsed = time.monotonic() - started
                    rss_end = rss_kb(pid)
                    frames = [f for c in clients for f in c.frames]
                    for c in clients:
                        await c.close()
            finally:
                sampling.cancel()
                code = await server.stop()
            log_text = (workdir / "server.log").read_text(errors="replace")
    finally:
        if drop_db is not None:
            await drop_db()

    finals: Counter[str] = Counter()
    dones: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_kinds: Counter[str] = Counter()
    for f in frames:
        if f.get("type") in FINAL and f.get("reply_to") in tally.sent:
            finals[f["reply_to"]] += 1
            if f["type"] == "done":
                dones[f["reply_to"]] += 1
            else:
                errors[f["reply_to"]] += 1
                error_kinds[str(f.get("kind"))] += 1
    sent = len(tally.sent)
    answered = sum(1 for fid in tally.sent if finals[fid] >= 1 and dones[fid] >= 1 and errors[fid] == 0)
    refused_ids = {
        f["reply_to"] for f in frames if f.get("type") == "error" and f.get("kind") in REFUSALS and f.get("reply_to")
    }
    refused = sum(1 for fid in tally.sent if fid in refused_ids)
    errored = sum(1 for fid in tally.sent if errors[fid] >= 1) - refused
    lost = sum(1 for fid in tally.sent if finals[fid] == 0)
    duplicated = sum(1 for fid in tally.sent if finals[fid] > 1)
    tracebacks = log_text.count("Traceback")
    print()
    print(f"messages sent        {sent}")
    print(f"answered             {answered}")
    print(f"errors               {errored}  {dict(error_kinds) or ''}")
    print(f"refused (not stored) {refused}")
    print(f"lost                 {lost}")
    print(f"duplicated           {duplicated}")
    print(f"latency p50 / p99    {percentile(tally.latencies, 0.50):.2f} s / {percentile(tally.latencies, 0.99):.2f} s")
    print(f"throughput           {sent / elapsed:.1f} turns/s over {elapsed:.0f} s")
    print(f"server RSS start/end {rss_start / 1024:.1f} MiB / {rss_end / 1024:.1f} MiB")
    if samples and tally.turns_done:
        growth = (rss_end - rss_start) * 1024 / max(1, tally.turns_done)
        print(f"RSS growth           {growth:.0f} bytes per turn over {tally.turns_done} turns")
        half = [s for s in samples if s[0] >= samples[-1][0] / 2]
        if len(half) >= 2 and half[-1][2] > half[0][2]:
            late = (half[-1][1] - half[0][1]) * 1024 / (half[-1][2] - half[0][2])
            span = f"{half[0][1] / 1024:.1f} -> {half[-1][1] / 1024:.1f} MiB"
            print(f"  second half        {late:.0f} bytes per turn ({span})")
    print(f"primary model        {dict(primary_chaos.counts)}")
    print(f"fallback model       {dict(fallback_chaos.counts)}")
    print(f"server exit code     {code}; tracebacks in its log: {tracebacks}; log {workdir / 'server.log'}")
    if args.json:
        print(
            json.dumps(
                {
                    "sent": sent,
                    "answered": answered,
                    "errors": errored,
                    "refused": refused,
                    "lost": lost,
                    "duplicated": duplicated,
                    "p50_s": percentile(tally.latencies, 0.5),
                    "p99_s": percentile(tally.latencies, 0.99),
                    "rss_start_kb": rss_start,
                    "rss_end_kb": rss_end,
                    "samples": samples,
                }
            )
        )
    return 0 if lost == 0 and duplicated == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=6, help="concurrent WebSocket users")
    parser.add_argument("--turns", type=int, default=10, help="messages per user (per conversation in a soak)")
    parser.add_argument("--soak-minutes", type=float, default=None, help="keep talking this long; print RSS samples")
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--turn-timeout-s", type=float, default=90.0, help="a message with no answer by then is lost")
    parser.add_argument("--model-deadline-s", type=float, default=60.0, help="the agent's turn_timeout_s")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait after the last turn for stragglers")
    parser.add_argument("--think-s", type=float, default=0.0, help="pause between a user's answer and next message")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--pg", action="store_true", help="use a scratch PostgreSQL database")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument(
        "--tracemalloc",
        metavar="DIR",
        default=None,
        help="trace the server's allocations; write top growth by traceback to DIR every 30 s (benchmarks/memtrace)",
    )
    args = parser.parse_args()
    if args.tracemalloc:
        os.environ["BF_MEMTRACE_DIR"] = str(Path(args.tracemalloc).resolve())
        paths = [str(ROOT / "benchmarks" / "memtrace"), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
