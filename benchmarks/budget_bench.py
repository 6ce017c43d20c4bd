"""Benchmark of the context budget engine (issue 2). Prints one table of figures.

What it measures, in one run:

1. Per-turn preparation time (``BudgetEngine.prepare``: window-bounded load + normalize + fit)
   for stored conversations of 1k, 10k and 100k messages with a 128k window, on SQLite and on
   PostgreSQL (a scratch database of its own, dropped afterwards).
2. The same trimming task — fit the 10k-message conversation into the same prompt budget —
   given to ``langchain_core.messages.trim_messages`` and ``litellm.utils.trim_messages``
   (optional ``bench`` extra): time, ratio to ours, tool-protocol violations of the output.
3. 500 consecutive turns at a full window (with tool rounds): share of prompt tokens repeating
   the previous request's prefix (what providers' prompt caches can reuse) and mean fill.

Usage: ``python benchmarks/budget_bench.py [--pg-url URL | --no-pg] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import multiprocessing
import os
import queue
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, text, update

from botframework.budget import (
    BudgetEngine,
    PreparedRequest,
    SqlHistorySource,
    tool_protocol_violations,
)
from botframework.config.schema import AgentConfig, BudgetConfig, ModelConfig
from botframework.messages import Message, ToolCall, ToolSpec
from botframework.testing.databases import create_scratch_database, drop_scratch_database
from storage.conversations import append_messages, get_or_create_conversation
from storage.db import Database
from storage.tables import Conversation, MessageRow

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no network fetch at import

WINDOW = 128_000
MODEL = ModelConfig.model_validate(
    {
        "provider": "openai",
        "model": "gpt-4-turbo",
        "api_key": "bench",
        "context_window": WINDOW,
        "max_output_tokens": 4096,
    }
)
AGENT = AgentConfig(
    model="main",
    system_prompt="You are a helpful assistant. Answer concisely and cite tools.",
    max_output_tokens=4096,
)
TOOLS = (
    ToolSpec(
        name="search",
        description="Search the knowledge base.",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    ),
    ToolSpec(name="clock", description="The current time."),
)
FINAL_QUESTION = "What did we decide about the second topic?"
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "an", "el", "is", "or", "um", "ba", "de")


@dataclass
class Pool:
    """Distinct message texts with their token counts (counted once, as the framework does at write time)."""

    rng: random.Random
    engine: BudgetEngine

    def text(self, tokens: int) -> str:
        words = []
        for _ in range(max(1, int(tokens * 0.55))):
            words.append("".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(1, 3))))
        return " ".join(words)

    def turn(self, i: int) -> list[Message]:
        rng = self.rng
        user = Message.user(f"[{i}] " + self.text(int(rng.lognormvariate(4.2, 0.8)) % 1500 + 5))
        if rng.random() < 0.3:
            calls = [
                ToolCall(id=f"call_{i}_{k}", name="search", arguments=json.dumps({"query": self.text(12)}))
                for k in range(1 if rng.random() < 0.7 else 2)
            ]
            results = [
                Message.tool_result(c.id, self.text(int(rng.lognormvariate(5.5, 0.8)) % 4000 + 20), name="search")
                for c in calls
            ]
            return [
                user,
                Message.assistant("", tool_calls=calls),
                *results,
                Message.assistant(self.text(int(rng.lognormvariate(4.8, 0.7)) % 1500 + 10)),
            ]
        return [user, Message.assistant(self.text(int(rng.lognormvariate(4.8, 0.7)) % 1500 + 10))]


def build_turns(n_messages: int, seed: int, engine: BudgetEngine) -> list[list[tuple[Message, int]]]:
    pool = Pool(random.Random(seed), engine)
    templates = [pool.turn(i) for i in range(600)]
    counted = [[(m, engine.count_message(MODEL, m)) for m in t] for t in templates]
    rng = random.Random(seed + 1)
    turns, total = [], 0
    while total < n_messages:
        turn = counted[rng.randrange(len(counted))]
        turns.append(turn[: n_messages - total])
        total += len(turns[-1])
    return turns


async def bulk_insert(db: Database, conversation_id: int, turns: Sequence[Sequence[tuple[Message, int]]]) -> None:
    """Insert pre-counted turns with the same ids/offsets/turn starts append_messages gives (fast path)."""
    conversations, messages = cast(Table, Conversation.__table__), cast(Table, MessageRow.__table__)
    now = datetime.now(UTC)
    offset, rows = 0, []
    for t, turn in enumerate(turns):
        for i, (m, count) in enumerate(turn):
            rows.append(
                dict(
                    conversation_id=conversation_id,
                    turn_id=f"h{t}",
                    turn_start=i == 0,
                    role=m.role,
                    content=[{"type": "text", "text": m.text}],
                    tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls] or None,
                    tool_call_id=m.tool_call_id,
                    name=m.name,
                    is_error=False,
                    token_count=count,
                    offset=offset,
                    model=None,
                    created_at=now,
                )
            )
            offset += count
    for lo in range(0, len(rows), 5000):
        async with db.write() as conn:
            await conn.execute(messages.insert(), rows[lo : lo + 5000])
    async with db.write() as conn:
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(total_tokens=offset, message_count=len(rows))
        )
        if db.dialect == "postgresql":
            await conn.execute(text("ANALYZE messages"))


async def new_conversation(db: Database, key: str) -> int:
    async with db.write() as conn:
        return await get_or_create_conversation(conn, tenant="bench", channel="bench", key=key)


async def append(
    db: Database,
    engine: BudgetEngine,
    cid: int,
    turn_id: str,
    msgs: Sequence[Message],
    *,
    start: bool = False,
) -> None:
    async with db.write() as conn:
        await append_messages(
            conn,
            conversation_id=cid,
            turn_id=turn_id,
            turn_start=start,
            items=[(m, engine.count_message(MODEL, m)) for m in msgs],
        )


async def prepare(engine: BudgetEngine, cid: int, turn_id: str) -> PreparedRequest:
    return await engine.prepare(
        conversation_id=cid, turn_id=turn_id, model_name="main", model=MODEL, agent=AGENT, tools=TOOLS
    )


def summary_ms(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


@dataclass
class Figures:
    prepare_ms: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    cold_ms: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    violations: int = 0
    requests_checked: int = 0
    prefix_share: dict[str, float] = field(default_factory=dict)
    history_fill: dict[str, float] = field(default_factory=dict)
    prompt_fill: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    turn_ms: dict[str, float] = field(default_factory=dict)
    trimmers: list[tuple[str, float | None, str, str]] = field(default_factory=list)
    trim_budget: int = 0

    def check(self, prepared: PreparedRequest) -> None:
        self.violations += len(tool_protocol_violations(prepared.messages))
        self.requests_checked += 1


async def time_prepares(
    engine: BudgetEngine, cids: Mapping[int, int], repeats: int, figures: Figures
) -> dict[int, tuple[float, float]]:
    """Median/p95 per size, the sizes measured in interleaved rounds: every size sees the same
    machine conditions, so the 100k/1k ratio is not skewed by drift between measurements."""
    samples: dict[int, list[float]] = {n: [] for n in cids}
    for i in range(repeats + 5):
        for n, cid in cids.items():
            started = time.perf_counter()
            prepared = await prepare(engine, cid, "now")
            elapsed = time.perf_counter() - started
            if i >= 5:
                samples[n].append(elapsed)
            figures.check(prepared)
    return {n: summary_ms(values) for n, values in samples.items()}


async def run_backend(
    name: str,
    db: Database,
    sizes: Sequence[int],
    repeats: int,
    turns_500: int,
    figures: Figures,
    compare: bool,
) -> None:
    await db.upgrade()
    config = BudgetConfig(allow_encoding_download=False)
    engine = BudgetEngine(config=config, db=db)
    cold = BudgetEngine(config=config, source=SqlHistorySource(db, cache_tokens=0))
    cids: dict[int, int] = {}
    turns_by_size: dict[int, list[list[tuple[Message, int]]]] = {}
    for n in sizes:
        turns_by_size[n] = build_turns(n, seed=n, engine=engine)
        cids[n] = await new_conversation(db, f"size{n}-{uuid.uuid4().hex[:6]}")
        await bulk_insert(db, cids[n], turns_by_size[n])
        await append(db, engine, cids[n], "now", [Message.user(FINAL_QUESTION)], start=True)
    for n, figure in (await time_prepares(engine, cids, repeats, figures)).items():
        figures.prepare_ms[(name, n)] = figure
    for n, figure in (await time_prepares(cold, cids, repeats, figures)).items():
        figures.cold_ms[(name, n)] = figure
    if compare and 10_000 in cids:
        print("comparing with langchain_core and litellm on 10,000 messages...", flush=True)
        figures.trimmers = await compare_trimmers(turns_by_size[10_000], db, cids[10_000], figures)
    await consecutive_turns(name, db, engine, turns_500, figures)


async def consecutive_turns(name: str, db: Database, engine: BudgetEngine, n_turns: int, figures: Figures) -> None:
    """n_turns turns (30% with a tool round, prepared again after it) at a full window."""
    cid = await new_conversation(db, f"turns-{uuid.uuid4().hex[:6]}")
    await bulk_insert(db, cid, build_turns(3000, seed=7, engine=engine))  # ~2x the window already stored
    pool = Pool(random.Random(99), engine)
    rng = random.Random(5)
    requests: list[PreparedRequest] = []
    spent: list[float] = []

    async def timed_prepare(tid: str) -> None:
        started = time.perf_counter()
        requests.append(await prepare(engine, cid, tid))
        spent.append(time.perf_counter() - started)

    for t in range(n_turns):
        tid = f"turn{t}"
        await append(db, engine, cid, tid, [Message.user(f"[{t}] " + pool.text(rng.randint(10, 400)))], start=True)
        await timed_prepare(tid)
        if rng.random() < 0.3:
            call = ToolCall(id=f"run_{t}", name="search", arguments=json.dumps({"query": pool.text(8)}))
            await append(
                db,
                engine,
                cid,
                tid,
                [
                    Message.assistant("", tool_calls=[call]),
                    Message.tool_result(call.id, pool.text(rng.randint(100, 3000))),
                ],
            )
            await timed_prepare(tid)
        await append(db, engine, cid, tid, [Message.assistant(pool.text(rng.randint(30, 800)))])
    shared = total = 0
    for prev, cur in itertools.pairwise(requests):
        fixed = cur.estimated_prompt_tokens - sum(m.token_count or 0 for m in cur.messages)
        common = fixed if (prev.system, prev.tools) == (cur.system, cur.tools) else 0
        if common:
            for a, b in zip(prev.messages, cur.messages, strict=False):
                if a != b:
                    break
                common += b.token_count or 0
        shared += common
        total += cur.estimated_prompt_tokens
    for r in requests:
        figures.check(r)
    room = [r.window - r.margin - (AGENT.max_output_tokens or 0) for r in requests]
    figures.prefix_share[name] = shared / total
    figures.history_fill[name] = statistics.fmean(r.history_tokens / r.history_budget for r in requests)
    figures.prompt_fill[name] = statistics.fmean(
        r.estimated_prompt_tokens / x for r, x in zip(requests, room, strict=True)
    )
    figures.requests[name] = len(requests)
    figures.turn_ms[name] = statistics.median(spent) * 1000


# -- the same trimming task for langchain_core and litellm --


def cookbook_counter(engine: BudgetEngine) -> Callable[[list[Any]], int]:
    """Counts a list of langchain messages the way ours are counted (cookbook + tool calls)."""
    enc = engine.encoding(MODEL)

    def one(message: Any) -> int:
        n = (
            3
            + 1
            + len(
                enc.encode_ordinary(
                    message.content if isinstance(message.content, str) else json.dumps(message.content)
                )
            )
        )
        for call in getattr(message, "tool_calls", None) or ():
            n += 4 + len(enc.encode_ordinary(call["id"])) + len(enc.encode_ordinary(call["name"]))
            n += len(enc.encode_ordinary(json.dumps(call["args"])))
        if getattr(message, "tool_call_id", None):
            n += len(enc.encode_ordinary(message.tool_call_id))
        return n

    def count(messages: list[Any]) -> int:
        return sum(one(m) for m in messages) + 3

    return count


def to_langchain(messages: Sequence[Message]) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    out: list[Any] = [SystemMessage(AGENT.system_prompt)]
    for m in messages:
        if m.role == "user":
            out.append(HumanMessage(m.text))
        elif m.role == "tool":
            out.append(ToolMessage(m.text, tool_call_id=m.tool_call_id or ""))
        else:
            out.append(
                AIMessage(
                    m.text,
                    tool_calls=[{"id": c.id, "name": c.name, "args": json.loads(c.arguments)} for c in m.tool_calls],
                )
            )
    return out


def from_langchain(messages: Sequence[Any]) -> list[Message]:
    out = []
    for m in messages:
        kind = m.type
        if kind == "human":
            out.append(Message.user(str(m.content)))
        elif kind == "tool":
            out.append(Message.tool_result(m.tool_call_id, str(m.content)))
        elif kind == "ai":
            out.append(
                Message.assistant(
                    str(m.content),
                    tool_calls=[
                        ToolCall(id=c["id"], name=c["name"], arguments=json.dumps(c["args"])) for c in m.tool_calls
                    ],
                )
            )
    return out


def to_openai(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": AGENT.system_prompt}]
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text})
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.text or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.text})
    return out


def from_openai(messages: Sequence[dict[str, Any]]) -> list[Message]:
    out = []
    for m in messages:
        if m["role"] == "user":
            out.append(Message.user(str(m.get("content") or "")))
        elif m["role"] == "tool":
            out.append(Message.tool_result(m.get("tool_call_id") or "", str(m.get("content") or "")))
        elif m["role"] == "assistant":
            out.append(
                Message.assistant(
                    str(m.get("content") or ""),
                    tool_calls=[
                        ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
                        for c in m.get("tool_calls") or ()
                    ],
                )
            )
    return out


def timed(fn: Callable[[], Any], *, max_runs: int = 5, max_s: float = 30.0) -> tuple[float, Any]:
    """Median ms over up to ``max_runs`` runs (fewer when one run is slow), and the last result."""
    samples: list[float] = []
    result: Any = None
    started = time.perf_counter()
    while len(samples) < max_runs and (not samples or time.perf_counter() - started < max_s):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000, result


SMALL_BUDGETS = tuple(range(2_000, 32_000, 1_500))
"""Extra prompt budgets (tokens) the trimmers get, to see whether any cut breaks the tool protocol."""


LITELLM_SMALL_TIMEOUT_S = 10.0


def in_child(fn: Callable[[], list[Message]], *, timeout_s: float) -> tuple[list[Message], float] | None:
    """Run ``fn`` in a forked process; (result, ms), or None if it did not finish in time (then killed)."""
    ctx = multiprocessing.get_context("fork")
    results: Any = ctx.Queue()

    def child() -> None:
        started = time.perf_counter()
        out = fn()
        results.put((out, (time.perf_counter() - started) * 1000))

    process = ctx.Process(target=child, daemon=True)
    process.start()
    try:
        found: tuple[list[Message], float] = results.get(timeout=timeout_s)
        return found
    except queue.Empty:
        return None
    finally:
        if process.is_alive():
            process.kill()
        process.join()


def window_for(budget: int) -> ModelConfig:
    """A model whose prompt room (window - 2% margin - 4096 reserve) is about ``budget``."""
    window = int((budget + 4096) / 0.98) + 1
    return MODEL.model_copy(update={"context_window": window})


async def compare_trimmers(
    turns: list[list[tuple[Message, int]]], db: Database, cid: int, figures: Figures
) -> list[tuple[str, float | None, str, str]]:
    """The same task for every implementation: fit system + history + question into a prompt budget.

    Timed at the 128k window's budget; protocol checked there and at SMALL_BUDGETS.
    """
    history = [m for turn in turns for m, _ in turn] + [Message.user(FINAL_QUESTION)]
    probe = BudgetEngine(config=BudgetConfig(allow_encoding_download=False), db=db)
    limits = probe.limits(model_name="main", model=MODEL, agent=AGENT)
    budget = limits.window - limits.margin - limits.reserve
    figures.trim_budget = budget
    rows: list[tuple[str, float | None, str, str]] = []
    system_tokens = probe.count_text(MODEL, AGENT.system_prompt) + 3 + 1 + 3

    def kept(out: Sequence[Message]) -> str:
        """Messages kept and their prompt size by our count (system + messages + priming; no tools)."""
        tokens = system_tokens + sum(probe.count_message(MODEL, m) for m in out)
        return f"{len(out)} msgs, {tokens:,} tok"

    main_kept = "-"
    broken = 0
    for k, small in enumerate((None, *SMALL_BUDGETS)):
        prepared = await probe.prepare(
            conversation_id=cid,
            turn_id="now",
            model_name=f"probe{k}",
            model=MODEL if small is None else window_for(small),
            agent=AGENT,
            tools=TOOLS,
        )
        figures.check(prepared)
        broken += bool(tool_protocol_violations(prepared.messages))
        if small is None:
            main_kept = f"{len(prepared.messages)} msgs, {prepared.estimated_prompt_tokens:,} tok"
    rows.append(("botframework BudgetEngine.prepare (sqlite)", None, f"{broken}/{len(SMALL_BUDGETS) + 1}", main_kept))

    try:
        import logging

        from langchain_core.messages import trim_messages

        logging.getLogger("langchain_core").setLevel(logging.ERROR)
        lc_input = to_langchain(history)
        counter = cookbook_counter(probe)
        for label, token_counter in (("tiktoken counter", counter), ("approximate counter", "approximate")):

            def lc_run(b: int, tc: Any = token_counter) -> list[Message]:
                return from_langchain(
                    trim_messages(
                        lc_input,
                        max_tokens=b,
                        token_counter=tc,
                        strategy="last",
                        include_system=True,
                        start_on="human",
                        allow_partial=False,
                    )
                )

            ms, out = timed(lambda: lc_run(budget))
            broken = bool(tool_protocol_violations(out)) + sum(
                bool(tool_protocol_violations(lc_run(b))) for b in SMALL_BUDGETS
            )
            rows.append(
                (
                    f"langchain_core trim_messages ({label})",
                    ms,
                    f"{broken}/{len(SMALL_BUDGETS) + 1}",
                    kept(out),
                )
            )
    except ImportError:
        rows.append(
            (
                "langchain_core trim_messages: MISSING, pip install langchain-core (extra 'bench')",
                None,
                "-",
                "-",
            )
        )
    try:
        import litellm
        from litellm.utils import trim_messages as litellm_trim

        litellm.suppress_debug_info = True
        oa_input = to_openai(history)

        def ll_run(b: int) -> list[Message]:
            return from_openai(litellm_trim(oa_input, model="gpt-4-turbo", max_tokens=b, trim_ratio=1.0))

        # Some budgets send litellm into minutes of re-counting (shortening one message a step at a
        # time): each run gets its own process and a time limit, and overruns are reported.
        main_run = in_child(lambda: ll_run(budget), timeout_s=180)
        small_runs = [in_child(functools.partial(ll_run, b), timeout_s=LITELLM_SMALL_TIMEOUT_S) for b in SMALL_BUDGETS]
        finished = [r for r in (main_run, *small_runs) if r is not None]
        broken = sum(bool(tool_protocol_violations(out)) for out, _ in finished)
        overran = len(SMALL_BUDGETS) + 1 - len(finished)
        verdict = f"{broken}/{len(finished)}" + (
            f" ({overran} over {LITELLM_SMALL_TIMEOUT_S:.0f} s)" if overran else ""
        )
        rows.append(
            (
                "litellm.utils.trim_messages",
                main_run[1] if main_run else None,
                verdict,
                kept(main_run[0]) if main_run else "timed out",
            )
        )
    except ImportError:
        rows.append(("litellm.utils.trim_messages: MISSING, pip install litellm (extra 'bench')", None, "-", "-"))
    return rows


# -- orchestration --


async def pg_database(admin_url: str) -> tuple[str, Callable[[], Any]]:
    url = await create_scratch_database(admin_url, prefix="bf_bench")
    return url, functools.partial(drop_scratch_database, admin_url, url)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        help="an existing PostgreSQL database to create the scratch database from",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer turns (a smoke run)")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    repeats = 10 if args.quick else 40
    n_turns = 60 if args.quick else 500
    figures = Figures()
    backends = ["sqlite"] if args.no_pg else ["sqlite", "postgresql"]
    print(
        f"budget engine benchmark: window {WINDOW:,}, model {MODEL.model} (cl100k_base), sizes {sizes}",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            await run_backend("sqlite", db, sizes, repeats, n_turns, figures, compare=10_000 in sizes)
        finally:
            await db.close()
    if not args.no_pg:
        try:
            url, drop = await pg_database(args.pg_url)
        except Exception as exc:  # report and go on with SQLite's figures
            print(f"PostgreSQL unavailable at {args.pg_url}: {exc}", flush=True)
            backends = ["sqlite"]
        else:
            db = Database(url)
            try:
                await run_backend("postgresql", db, sizes, repeats, n_turns, figures, compare=False)
            finally:
                await db.close()
                await drop()
    report(figures, backends, sizes, n_turns, quick=args.quick)
    return 0


def report(figures: Figures, backends: list[str], sizes: Sequence[int], n_turns: int, *, quick: bool) -> None:
    print("\nper-turn prepare() time, median / p95 ms (window-bounded load + normalize + fit)")
    print("  warm: the decoded-message cache holds the window (consecutive turns); cold: cache off")
    header = " | ".join(f"{f'{b} warm':>17} | {f'{b} cold':>17}" for b in backends)
    print(f"  {'stored messages':>16} | {header}")
    for n in sizes:
        cells = []
        for b in backends:
            for table in (figures.prepare_ms, figures.cold_ms):
                cells.append(f"{table[(b, n)][0]:7.2f} / {table[(b, n)][1]:7.2f}")
        print(f"  {n:>16,} | " + " | ".join(f"{c:>17}" for c in cells))
    big, small = sizes[-1], sizes[0]
    ratios = []
    for b in backends:
        for table in (figures.prepare_ms, figures.cold_ms):
            ratios.append(f"{table[(b, big)][0] / table[(b, small)][0]:>16.2f}x")
    print(f"  {f'{big:,} / {small:,}':>16} | " + " | ".join(ratios))

    ours = figures.prepare_ms.get(("sqlite", 10_000), (0.0, 0.0))[0]
    lc_ratio: float | None = None
    if figures.trimmers:
        print(
            "\nthe same trimming task on 10,000 messages: fit system + history + question into the 128k "
            f"prompt budget ({figures.trim_budget:,} tokens)\n  (ours reads from SQLite; theirs get the messages "
            f"in memory; protocol checked at that budget and {len(SMALL_BUDGETS)} smaller ones)"
        )
        print(
            f"  {'implementation':<52} | {'median ms':>10} | {'x ours':>8} | {'outputs breaking protocol':>25} | kept"
        )
        for label, ms, broken, kept in figures.trimmers:
            shown = ours if ms is None and label.startswith("botframework") else ms
            cell = f"{shown:>10,.2f}" if shown is not None else f"{'-':>10}"
            ratio = f"{shown / ours:>8.1f}" if shown is not None and ours else f"{'-':>8}"
            if "tiktoken" in label and shown is not None and ours:
                lc_ratio = shown / ours
            print(f"  {label:<52} | {cell} | {ratio} | {broken:>25} | {kept}")

    print(f"\n{n_turns} consecutive turns at a full window (30% with a tool round; every model call prepared)")
    print(
        f"  {'backend':<12} | {'requests':>8} | {'prefix reuse':>12} | {'history fill':>12} | "
        f"{'prompt fill':>11} | {'median prepare ms':>17}"
    )
    for b in backends:
        print(
            f"  {b:<12} | {figures.requests[b]:>8} | {figures.prefix_share[b]:>11.1%} | "
            f"{figures.history_fill[b]:>11.1%} | {figures.prompt_fill[b]:>10.1%} | "
            f"{figures.turn_ms[b]:>17.2f}"
        )
    print(
        f"\ntool-protocol violations in the {figures.requests_checked} requests botframework prepared: "
        f"{figures.violations}"
    )

    med = figures.prepare_ms
    checks = [
        ("100k prepared in <= 20 ms median", all(med[(b, big)][0] <= 20 for b in backends)),
        ("100k <= 1.5x the 1k time", all(med[(b, big)][0] <= 1.5 * med[(b, small)][0] for b in backends)),
        (
            ">= 50x faster than langchain_core (tiktoken) on 10k",
            lc_ratio is not None and lc_ratio >= 50 if figures.trimmers else False,
        ),
        ("zero protocol violations", figures.violations == 0),
        ("prefix reuse >= 80%", all(figures.prefix_share[b] >= 0.8 for b in backends)),
        ("mean history fill >= 60%", all(figures.history_fill[b] >= 0.6 for b in backends)),
    ]
    if quick:
        checks = checks[3:]
    print("targets: " + "; ".join(f"{label}: {'yes' if ok else 'NO'}" for label, ok in checks))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
