"""Scale-out: turns per second with 1, 2 and 3 worker processes, and what the shared queue adds.

Real subprocesses on PostgreSQL: ``botframework serve --role ingress`` plus N ``botframework
worker --concurrency C``; ``--users`` web chat users each send ``--turns`` messages one after the
other (the next when the previous is answered). The fake model takes ``--model-s`` (0.5 s) per
answer, so one worker can finish at most C / 0.5 turns a second and is the bottleneck as long as
users > workers x C. Reported per worker count: turns/s, p50/p99 from send to ``done``, and the
speed-up over one worker (goal: 3 workers >= 2.5x).

Then the added latency of the shared queue: one ``serve`` process (``--role all``) with
``queue.engine: procrastinate`` against today's embedded path (``queue.engine: embedded``), one
user sending messages one at a time to a model that answers at once: p50/p99 send to ``done``.

    python benchmarks/scaleout_bench.py                 # about 2 minutes
    python benchmarks/scaleout_bench.py --quick         # a smoke run
    python benchmarks/scaleout_bench.py --pg-url postgresql+asyncpg://user@host:5432/db

PostgreSQL: a scratch database ``bf_bench_<random>`` per run is created on ``--pg-url`` (default
``BOTFRAMEWORK_TEST_PG_URL``, else the local server) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botframework.testing.databases import scratch_database  # noqa: E402
from tests.e2e.support import ChatClient  # noqa: E402
from tests.fakes import RecordedRequest, Reply  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.pipeline.support import BotProcess, write_scaleout_config  # noqa: E402

PG_URL = os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(url: str, *, users: int, turns: int, tag: str) -> tuple[float, list[float]]:
    """Every user sends ``turns`` messages, each after the previous is answered; (seconds, latencies)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        clients = [await ChatClient.connect(http, url, "acme", f"user{u}") for u in range(users)]

        async def talk(client: ChatClient, u: int) -> None:
            for n in range(turns):
                sent = time.perf_counter()
                await client.send(f"{tag}-{n}", f"user{u} question {n}")
                await client.wait_for("done", f"{tag}-{n}", timeout=300)
                latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(talk(c, u) for u, c in enumerate(clients)))
        elapsed = time.perf_counter() - started
        for c in clients:
            await c.close()
    return elapsed, latencies


async def workers_run(
    pg_url: str, tmp: Path, *, workers: int, concurrency: int, users: int, turns: int, model_s: float
) -> dict[str, float]:
    def answer(request: RecordedRequest) -> Reply:
        return Reply(text="an answer", chunks=5, chunk_delay_s=model_s / 5)

    async with FakeOpenAIServer(default=answer) as model, scratch_database(pg_url) as db_url:
        config = write_scaleout_config(
            tmp / f"w{workers}.yaml", db_url=db_url, model_base_url=model.base_url, concurrency=concurrency
        )
        ingress = await BotProcess.ingress(config, tmp / f"w{workers}-ingress.log").start()
        procs = [
            await BotProcess.worker(
                config, tmp / f"w{workers}-{i}.log", name=f"worker-{i}", concurrency=concurrency
            ).start()
            for i in range(workers)
        ]
        try:
            await drive(ingress.url, users=min(users, 4), turns=1, tag="warm")  # warm-up: connections, encodings
            elapsed, latencies = await drive(ingress.url, users=users, turns=turns, tag="run")
        finally:
            for p in (*procs, ingress):
                await p.stop()
    return {
        "turns_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def single_process_run(pg_url: str, tmp: Path, *, engine: str, turns: int) -> dict[str, float]:
    async with (
        FakeOpenAIServer(default=lambda _r: Reply(text="an answer", chunks=2)) as model,
        scratch_database(pg_url) as db_url,
    ):
        config = write_scaleout_config(
            tmp / f"{engine}.yaml", db_url=db_url, model_base_url=model.base_url, engine=engine
        )
        serve = await BotProcess.ingress(config, tmp / f"{engine}.log", name=engine, role="all").start()
        try:
            await drive(serve.url, users=1, turns=5, tag="warm")
            _elapsed, latencies = await drive(serve.url, users=1, turns=turns, tag="run")
        finally:
            await serve.stop()
    return {"p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--concurrency", type=int, default=4, help="turns one worker runs at once")
    parser.add_argument("--users", type=int, default=36)
    parser.add_argument("--turns", type=int, default=6, help="messages per user")
    parser.add_argument("--model-s", type=float, default=0.5)
    parser.add_argument("--latency-turns", type=int, default=60)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="only the one-process comparison")
    args = parser.parse_args()
    if args.quick:
        args.users, args.turns, args.latency_turns = 12, 2, 15
    with tempfile.TemporaryDirectory(prefix="bf-scaleout-") as tmp_dir:
        tmp = Path(tmp_dir)
        print(
            f"model {args.model_s}s per answer, worker --concurrency {args.concurrency}, "
            f"{args.users} users x {args.turns} messages (one at a time each)"
        )
        print(f"{'workers':>8} {'turns/s':>9} {'x one':>7} {'p50 ms':>8} {'p99 ms':>8}")
        base = 0.0
        for n in () if args.latency_only else (1, 2, 3):
            r = await workers_run(
                args.pg_url,
                tmp,
                workers=n,
                concurrency=args.concurrency,
                users=args.users,
                turns=args.turns,
                model_s=args.model_s,
            )
            base = base or r["turns_per_s"]
            speedup = r["turns_per_s"] / base
            print(f"{n:>8} {r['turns_per_s']:>9.2f} {speedup:>6.2f}x {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f}")
        print()
        print(f"one process, one user, instant model, {args.latency_turns} messages: send -> done")
        print(f"{'path':>34} {'p50 ms':>8} {'p99 ms':>8}")
        results = {}
        for engine, label in (("embedded", "embedded (today)"), ("procrastinate", "--role all, queue procrastinate")):
            results[engine] = await single_process_run(args.pg_url, tmp, engine=engine, turns=args.latency_turns)
            print(f"{label:>34} {results[engine]['p50_ms']:>8.1f} {results[engine]['p99_ms']:>8.1f}")
        added = results["procrastinate"]["p50_ms"] - results["embedded"]["p50_ms"]
        print(f"{'added by the shared queue (p50)':>34} {added:>8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
