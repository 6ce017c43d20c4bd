"""Trace the server's allocations: put this directory on ``PYTHONPATH`` of ``botframework serve``.

``chaos_bench.py --tracemalloc DIR`` does that. With ``BF_MEMTRACE_DIR`` set, a daemon thread starts
``tracemalloc`` (``BF_MEMTRACE_FRAMES`` frames, default 12) after ``BF_MEMTRACE_WARMUP_S`` seconds
(default 20: tracing imports would slow start-up several times over, and only growth matters), takes a
first snapshot ``BF_MEMTRACE_EVERY_S`` seconds (default 30) later, and from then on writes to
``DIR/diff-NNN.txt`` every ``BF_MEMTRACE_EVERY_S`` seconds the 25 allocation sites (by traceback) that
grew most since that first snapshot. A site that keeps growing from one file to the next is a leak.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

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
            lines.append(
                f"\n{stat.size_diff / 1024:+.1f} KiB ({stat.count_diff:+d} blocks) now {stat.size / 1024:.1f} KiB"
            )
            lines.extend("    " + line for line in stat.traceback.format(limit=12))
        (out / f"diff-{n:03d}.txt").write_text("\n".join(lines) + "\n")


def _owner(container: object) -> str:
    """Where a container hangs: ``Type.attribute`` of the object that holds it, else its own type."""
    for ref in gc.get_referrers(container):
        if type(ref) is dict:
            held: dict[Any, Any] = ref
            for holder in gc.get_referrers(ref):
                if type(holder) is not dict and getattr(holder, "__dict__", None) is held:
                    return _named(holder, held, container)
            for name, value in ref.items():
                if value is container and isinstance(name, str):
                    return f"<dict>[{name!r}]"
        elif type(ref) is not list and type(ref) is not tuple and ref is not container:
            attrs: object = getattr(ref, "__dict__", None)
            if isinstance(attrs, dict):
                return _named(ref, attrs, container)
            for name in getattr(type(ref), "__slots__", ()):
                if getattr(ref, name, None) is container:
                    return f"{type(ref).__module__}.{type(ref).__qualname__}.{name}"
    return f"<unowned {type(container).__qualname__}>"


def _named(holder: object, attrs: dict[Any, Any], container: object) -> str:
    for name, value in attrs.items():
        if value is container:
            return f"{type(holder).__module__}.{type(holder).__qualname__}.{name}"
    return f"{type(holder).__module__}.{type(holder).__qualname__}.?"


def _census(out: Path, every: float, warmup: float) -> None:
    """Every container (dict, set, list, deque) of 20+ items whose length grew since the last look,
    and the object types whose count grew: what keeps growing once the caches are full."""
    time.sleep(warmup)
    kinds = (dict, set, list, collections.deque, collections.OrderedDict)
    before: dict[int, int] = {}
    types_before: collections.Counter[str] = collections.Counter()
    n = 0
    while True:
        objects = gc.get_objects()
        now = {id(o): len(o) for o in objects if isinstance(o, kinds) and len(o) >= 20}
        types = collections.Counter(type(o).__qualname__ for o in objects)
        grown = sorted(((now[i] - before[i], i) for i in now if i in before and now[i] > before[i]), reverse=True)
        if before:
            n += 1
            wanted = {i for _, i in grown[:20]}
            by_id = {id(o): o for o in objects if id(o) in wanted}
            lines = [f"t={warmup + n * every:.0f}s objects: {len(objects)}, containers of 20+ items: {len(now)}"]
            lines.extend(f"{d:+7d} -> {now[i]:7d}  {_owner(by_id[i])}" for d, i in grown[:20] if i in by_id)
            types.subtract(types_before)
            lines.append("object counts that grew:")
            lines.extend(f"{d:+7d}  {name}" for name, d in types.most_common(15) if d > 0)
            (out / f"census-{n:03d}.txt").write_text("\n".join(lines) + "\n")
            types.update(types_before)
        del objects
        before = now
        types_before = types
        time.sleep(every)


if os.environ.get("BF_MEMTRACE_DIR") and os.environ.get("BF_MEMTRACE_MODE") == "census" and _serving():
    threading.Thread(
        target=_census,
        args=(
            Path(os.environ["BF_MEMTRACE_DIR"]),
            float(os.environ.get("BF_MEMTRACE_EVERY_S", "30")),
            float(os.environ.get("BF_MEMTRACE_WARMUP_S", "20")),
        ),
        daemon=True,
        name="memcensus",
    ).start()
    Path(os.environ["BF_MEMTRACE_DIR"]).mkdir(parents=True, exist_ok=True)
elif os.environ.get("BF_MEMTRACE_DIR") and _serving():
    _out = Path(os.environ["BF_MEMTRACE_DIR"])
    _out.mkdir(parents=True, exist_ok=True)
    threading.Thread(
        target=_run,
        args=(
            _out,
            float(os.environ.get("BF_MEMTRACE_EVERY_S", "30")),
            float(os.environ.get("BF_MEMTRACE_WARMUP_S", "20")),
            int(os.environ.get("BF_MEMTRACE_FRAMES", "12")),
        ),
        daemon=True,
        name="memtrace",
    ).start()
