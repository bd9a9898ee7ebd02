"""Same answer idle and under load: every scenario of config/scenarios run twice, once on an
idle machine and once while CPU-burning processes (one per core) compete for every core, and
the two reports compared field by field (incidents, IDs, severities, timelines, actions, pages,
summary). Prints the wall time of each run and the differences; exits 1 if any report differs.

The burners are this script's own child processes; each stops by itself after ``--burn-limit``
seconds at the latest, and all are stopped after each loaded run.

    python bench/same_under_load.py [--only NAME ...] [--burners N]
"""

from __future__ import annotations

import argparse
import difflib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]


def _burn(stop: mp.synchronize.Event, limit_s: float) -> None:  # type: ignore[name-defined]
    end = time.monotonic() + limit_s
    x = 0
    while not stop.is_set() and time.monotonic() < end:
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def _run(path: Path) -> tuple[dict, float]:
    from prometheus_client import CollectorRegistry

    from hotdash_watch.sim.runner import simulate_scenario
    from hotdash_watch.sim.scenario import load_scenario

    start = time.perf_counter()
    report = simulate_scenario(load_scenario(path), registry=CollectorRegistry())
    return report, time.perf_counter() - start


def _loaded(path: Path, burners: int, limit_s: float) -> tuple[dict, float]:
    stop = mp.Event()
    procs = [mp.Process(target=_burn, args=(stop, limit_s), daemon=True) for _ in range(burners)]
    for p in procs:
        p.start()
    try:
        return _run(path)
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


def _diff(a: dict, b: dict) -> list[str]:
    left = json.dumps(a, indent=1, sort_keys=True).splitlines()
    right = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return [line for line in difflib.unified_diff(left, right, "idle", "loaded", lineterm="", n=1)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--burn-limit", type=float, default=600.0)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
    paths = sorted((ROOT / "config" / "scenarios").glob("*.toml"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    print(f"every scenario idle, then with {args.burners} CPU burner(s); reports compared")
    print(f"{'scenario':<20} {'idle s':>7} {'loaded s':>9}  {'incidents':>9} {'actions':>7} "
          f"{'pages':>5}  result")
    differing = 0
    for path in paths:
        idle, t_idle = _run(path)
        loaded, t_loaded = _loaded(path, args.burners, args.burn_limit)
        diff = _diff(idle, loaded)
        differing += bool(diff)
        print(f"{path.stem:<20} {t_idle:>7.1f} {t_loaded:>9.1f}  {len(idle['incidents']):>9} "
              f"{len(idle['actions']):>7} {len(idle['pages']):>5}  "
              f"{'same' if not diff else f'DIFFERENT ({len(diff)} diff lines)'}", flush=True)
        for line in diff[:40]:
            print(f"    {line}")
    print(f"{len(paths) - differing} of {len(paths)} scenarios gave the same report idle and "
          "under load")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
