"""Figures for ``hotdash_watch.window``: ingest rate, query time, memory.

Run: ``.venv/bin/python bench/window.py`` (add ``--quick`` for a smaller run). Prints:

* samples/s ingested on one core via ``Window.record``, ``Window.add`` and ``Window.add_many``
  for ~2,000,000 samples spread over a 15-minute window of 5-s buckets (lognormal latencies
  around 100 ms, 2 % failures, slight arrival jitter);
* p95 snapshot query time, median and max over 1000 queries, over the full span and over 60 s;
* tracemalloc size of a window after 100k samples, after 2M samples, and after 4M samples over
  twice the span (the ring has rolled over once).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotdash_watch.probes.base import FailureKind, Observation
from hotdash_watch.window import Window

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SPAN_S = 900.0
BUCKET_S = 5.0
TARGET_RATE = 500_000
TARGET_QUERY_MS = 1.0

Row = tuple[float, bool, float | None, FailureKind | None, bool]


def workload(n: int, seconds: float = SPAN_S, seed: int = 42) -> list[Row]:
    """``n`` samples over ``seconds``: lognormal latencies around 100 ms, 2 % failures.

    Failures: 1 % HTTP 5xx (answered, with a latency), 0.5 % timeouts, 0.3 % refused
    connections and 0.2 % DNS failures (watcher-side). Good answers above 400 ms are over
    budget. Arrival times jitter by up to 50 ms, so some samples land in the previous bucket.
    """
    rng = random.Random(seed)
    step = seconds / n
    mu = math.log(100.0)
    rows: list[Row] = []
    append = rows.append
    for i in range(n):
        at = T0 + i * step + rng.uniform(-0.05, 0.0)
        lat = rng.lognormvariate(mu, 0.5)
        u = rng.random()
        if u >= 0.02:
            append((at, True, lat, None, lat > 400.0))
        elif u < 0.01:
            append((at, False, lat, FailureKind.HTTP_5XX, False))
        elif u < 0.015:
            append((at, False, None, FailureKind.TIMEOUT, False))
        elif u < 0.018:
            append((at, False, None, FailureKind.CONNECT, False))
        else:
            append((at, False, None, FailureKind.DNS, False))
    return rows


def fill_record(w: Window, rows: list[Row]) -> None:
    record = w.record
    for at, ok, lat, fail, slow in rows:
        record(at, ok=ok, latency_ms=lat, failure=fail, over_budget=slow)


def as_observations(rows: list[Row]) -> list[Observation]:
    return [
        Observation(app="svc", probe="health", at=at, ok=ok, latency_ms=lat, failure=fail,
                    over_budget=slow)
        for at, ok, lat, fail, slow in rows
    ]


def fill_add(w: Window, observations: list[Observation]) -> None:
    add = w.add
    for o in observations:
        add(o)


def timed(fn, *args) -> float:
    gc.collect()
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def bench_ingest(rows: list[Row], repeats: int) -> Window:
    n = len(rows)
    w = Window("svc", bucket_s=BUCKET_S, span_s=SPAN_S)
    best = float("inf")
    for _ in range(repeats):
        w = Window("svc", bucket_s=BUCKET_S, span_s=SPAN_S)
        best = min(best, timed(fill_record, w, rows))
    rate = n / best
    print(f"ingest via record():   {rate:>12,.0f} samples/s  ({n:,} samples in {best:.2f} s, "
          f"best of {repeats})  target >= {TARGET_RATE:,}  {_ok(rate >= TARGET_RATE)}")

    observations = as_observations(rows)
    best_add = best_many = float("inf")
    for _ in range(repeats):
        wa = Window("svc", bucket_s=BUCKET_S, span_s=SPAN_S)
        best_add = min(best_add, timed(fill_add, wa, observations))
        wm = Window("svc", bucket_s=BUCKET_S, span_s=SPAN_S)
        best_many = min(best_many, timed(wm.add_many, observations))
    for name, secs in (("add():    ", best_add), ("add_many():", best_many)):
        rate = n / secs
        print(f"ingest via {name}  {rate:>12,.0f} samples/s  ({secs:.2f} s)"
              f"  target >= {TARGET_RATE:,}  {_ok(rate >= TARGET_RATE)}")
    assert wa.snapshot(T0 + SPAN_S) == w.snapshot(T0 + SPAN_S)
    del observations
    return w


def bench_query(w: Window, queries: int) -> None:
    last = w.snapshot(T0 + SPAN_S).last_at
    assert last is not None
    rng = random.Random(1)
    for over_s, label in ((None, "full span (900 s)"), (60.0, "last 60 s")):
        times: list[float] = []
        snap = None
        for _ in range(queries):
            now = last + rng.uniform(0.0, BUCKET_S)
            t = time.perf_counter()
            snap = w.snapshot(now, over_s)
            times.append((time.perf_counter() - t) * 1000)
        assert snap is not None
        med, worst = statistics.median(times), max(times)
        print(f"p95 query, {label:<17}: median {med:.3f} ms, max {worst:.3f} ms over {queries}"
              f"  target <= {TARGET_QUERY_MS} ms  {_ok(med <= TARGET_QUERY_MS)}"
              f"  (p95={snap.p95_ms:.1f} ms, {snap.latency_samples:,} latencies)")


def window_bytes(rows: list[Row]) -> tuple[int, int]:
    """Bytes a window holds (tracemalloc) after ingesting ``rows``, and its histogram bins."""
    gc.collect()
    tracemalloc.start()
    w = Window("svc", bucket_s=BUCKET_S, span_s=SPAN_S)
    fill_record(w, rows)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size, w.bins_in_use


def bench_memory(rows_2m: list[Row], quick: bool) -> None:
    small = workload(len(rows_2m) // 20)
    cases = [(f"{len(small):,} samples / 900 s", small),
             (f"{len(rows_2m):,} samples / 900 s", rows_2m)]
    if not quick:
        twice = workload(2 * len(rows_2m), seconds=2 * SPAN_S, seed=7)
        cases.append((f"{len(twice):,} samples / 1800 s", twice))
    sizes = []
    for label, rows in cases:
        size, bins = window_bytes(rows)
        sizes.append(size)
        raw = len(rows) * 32  # what keeping one float per sample would cost, at least
        print(f"memory after {label:<26}: {size / 1024:>8,.0f} KiB, {bins:>6,} bins"
              f"  (raw floats would be >= {raw / 1024:,.0f} KiB)")
    w = Window("svc", bucket_s=BUCKET_S, span_s=SPAN_S)
    print(f"memory bound: {w.slots} slots x at most {w.max_bins_per_slot} bins each; "
          f"target: independent of samples  "
          f"{_ok(sizes[-1] < 2 * sizes[1] and sizes[1] < 4 * sizes[0])}"
          f"  ({sizes[1] / sizes[0]:.2f}x the memory for 20x the samples)")


def _ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k samples, fewer repeats")
    args = parser.parse_args()
    n = 200_000 if args.quick else 2_000_000
    print(f"python {sys.version.split()[0]}, window {SPAN_S:.0f} s of {BUCKET_S:.0f}-s buckets, "
          f"{n:,} samples")
    rows = workload(n)
    w = bench_ingest(rows, repeats=1 if args.quick else 3)
    bench_query(w, 1000)
    bench_memory(rows, args.quick)


if __name__ == "__main__":
    main()
