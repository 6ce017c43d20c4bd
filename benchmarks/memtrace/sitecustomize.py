"""Trace the server's allocations: put this directory on ``PYTHONPATH`` of ``botframework serve``.

``chaos_bench.py --tracemalloc DIR`` does that. With ``BF_MEMTRACE_DIR`` set, a daemon thread starts
``tracemalloc`` (``BF_MEMTRACE_FRAMES`` frames, default 12) after ``BF_MEMTRACE_WARMUP_S`` seconds
(default 20: tracing imports would slow start-up several times over, and only growth matters), takes a
first snapshot ``BF_MEMTRACE_EVERY_S`` seconds (default 30) later, and from then on writes to
``DIR/diff-NNN.txt`` every ``BF_MEMTRACE_EVERY_S`` seconds the 25 allocation sites (by traceback) that
grew most since that first snapshot. A site that keeps growing from one file to the next is a leak.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

__all__: list[str] = []


def _serving() -> bool:
    return "serve" in sys.argv[1:] or any(a.endswith("botframework") for a in sys.orig_argv)


def _run(out: Path, every: float, warmup: float, frames: int) -> None:
    time.sleep(warmup)
    tracemalloc.start(frames)
    time.sleep(every)
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    base = tracemalloc.take_snapshot().filter_traces(filters)
    n = 0
    while True:
        time.sleep(every)
        n += 1
        snap = tracemalloc.take_snapshot().filter_traces(filters)
        stats = snap.compare_to(base, "traceback")
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"t={warmup + n * every:.0f}s traced={current / 1e6:.1f} MB peak={peak / 1e6:.1f} MB"]
        for stat in stats[:25]:
            lines.append(f"\n{stat.size_diff / 1024:+.1f} KiB ({stat.count_diff:+d} blocks) now {stat.size / 1024:.1f} KiB")
            lines.extend("    " + line for line in stat.traceback.format(limit=12))
        (out / f"diff-{n:03d}.txt").write_text("\n".join(lines) + "\n")


if os.environ.get("BF_MEMTRACE_DIR") and _serving():
    _out = Path(os.environ["BF_MEMTRACE_DIR"])
    _out.mkdir(parents=True, exist_ok=True)
    threading.Thread(
        target=_run,
        args=(_out, float(os.environ.get("BF_MEMTRACE_EVERY_S", "30")), float(os.environ.get("BF_MEMTRACE_WARMUP_S", "20")),
            int(os.environ.get("BF_MEMTRACE_FRAMES", "12")),
        ),
        daemon=True,
        name="memtrace",
    ).start()
