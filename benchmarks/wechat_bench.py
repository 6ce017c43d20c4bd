"""Personal WeChat ingestion and WeChat passive replies, end to end against the local fakes.

1. iLink: ``--messages`` user messages (from ``--users`` users) wait in the fake iLink server; the
   bot starts polling. Reported: seconds until every message is stored and the cursor has moved
   past them (messages stored per second), and until every message is answered through
   ``sendmessage``. The cursor only advances after the messages of a poll are stored, so this is
   the cost of that guarantee included.
2. WeChat Official Account callbacks, one message per user, ``--callbacks`` in sequence, with a model
   that answers at once: milliseconds from POST to response with ``reply_mode: api`` (acknowledge,
   answer later by API) and ``reply_mode: passive`` (the response carries the answer). The
   difference is what answering inside the callback costs.

    python benchmarks/wechat_bench.py                    # SQLite
    python benchmarks/wechat_bench.py --pg               # PostgreSQL too (BOTFRAMEWORK_TEST_PG_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botframework.testing import BotHarness, Step  # noqa: E402
from botframework.testing.databases import create_scratch_database, drop_scratch_database  # noqa: E402
from channels.wechat.crypto import plain_signature  # noqa: E402
from tests.fakes.ilink_api import FakeILink  # noqa: E402
from tests.fakes.wechat_api import FakeWeChat  # noqa: E402
from tests.fakes.wecom_api import text_message  # noqa: E402

PG_URL = os.environ.get("BOTFRAMEWORK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def ilink(db_url: str, *, messages: int, users: int) -> dict[str, float]:
    async with FakeILink(hold_s=0.2) as fake:
        for n in range(messages):
            await fake.push(f"question {n}", user=f"user{n % users}@im.wechat")
        config = {
            "api_base_url": fake.base_url,
            "cdn_base_url": fake.cdn_base_url,
            "session_check_s": 0.05,
            "typing": False,
        }
        async with BotHarness(channel="wechat_personal", channel_config=config, db_url=db_url) as bot:
            bot.model.default = lambda r: Step(text=f"answer to {r.messages[-1].text}")
            state = bot.runtime.channel_state(bot.tenant, "wechat_personal")
            started = time.perf_counter()
            session = {"bot_token": fake.token, "bot_id": fake.bot_id, "base_url": fake.base_url}
            await state.set("session", session)
            stored_s = answered_s = 0.0
            while True:
                if not stored_s and await state.get("cursor") == f"c:{messages}":
                    stored_s = time.perf_counter() - started
                if len(fake.sent) >= messages:
                    answered_s = time.perf_counter() - started
                    break
                await asyncio.sleep(0.01)
            assert len({m["client_id"] for m in fake.sent}) == messages, "a message was answered twice"
    return {"stored_s": stored_s, "answered_s": answered_s}


async def callbacks(db_url: str, *, mode: str, count: int) -> list[float]:
    async with FakeWeChat() as api:
        config = {
            "app_id": "wx5823bf96d3bd56c7",
            "app_secret": "secret",
            "token": "QDG6eK",
            "api_base_url": api.base_url,
            "reply_mode": mode,
        }
        async with (
            BotHarness(channel="wechat", channel_config=config, db_url=db_url) as bot,
            aiohttp.ClientSession() as http,
        ):
            bot.model.default = lambda r: Step(text="ok")
            url = f"{bot.base_url}/t/{bot.tenant}/wechat/callback"
            timings = []
            for n in range(count):
                timestamp, nonce = str(int(time.time())), f"{mode}-{n}"  # one nonce per signed request
                query = {
                    "signature": plain_signature("QDG6eK", timestamp, nonce),
                    "timestamp": timestamp,
                    "nonce": nonce,
                }
                body = text_message(
                    to_user="gh_x",
                    from_user=f"{mode}-{n}",
                    text=f"hi {n}",
                    msg_id=(2 if mode == "api" else 3) * 10**15 + n,
                    create_time=int(time.time()),
                )
                started = time.perf_counter()
                async with http.post(url, params=query, data=body.encode()) as response:
                    answer = await response.text()
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status == 200 and (answer == "success") == (mode == "api"), (n, mode, answer[:80])
    return timings


async def pg_database() -> str | None:
    try:
        url = await create_scratch_database(PG_URL, prefix="bf_bench")
    except Exception as exc:  # report it and go on with SQLite
        print(f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}: {exc}")
        return None
    return url


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(backend: str, db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": backend}
    result["ilink"] = await ilink(db_url, messages=args.messages, users=args.users)
    for mode in ("api", "passive"):
        result[mode] = await callbacks(db_url, mode=mode, count=args.callbacks)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--callbacks", type=int, default=200)
    parser.add_argument("--pg", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(await run("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args))
    if args.pg:
        url = await pg_database()
        if url is not None:
            try:
                results.append(await run("postgresql", url, args))
            finally:
                await drop_scratch_database(PG_URL, url)
    print(f"\n1. iLink: {args.messages} waiting messages from {args.users} users")
    print(f"{'backend':<12}{'stored, cursor past them':>28}{'stored msg/s':>14}{'all answered':>16}")
    for r in results:
        i = r["ilink"]
        rate = args.messages / i["stored_s"]
        print(f"{r['backend']:<12}{i['stored_s']:>26.2f} s{rate:>14.0f}{i['answered_s']:>14.2f} s")
    print(f"\n2. WeChat callbacks, {args.callbacks} in sequence, model answers at once (ms, POST to response)")
    print(f"{'backend':<12}{'mode':<10}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}")
    for r in results:
        for mode in ("api", "passive"):
            t = r[mode]
            print(
                f"{r['backend']:<12}{mode:<10}{pct(t, 0.5):>8.1f}{pct(t, 0.9):>8.1f}{pct(t, 0.99):>8.1f}"
                f"{statistics.mean(t):>8.1f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
