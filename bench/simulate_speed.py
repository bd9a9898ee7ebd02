"""How fast ``simulate`` runs on virtual time: wall seconds per scenario, and the speed-up.

Two figures (issue target: the 4-hour quiet scenario in <= 60 s of wall time):

* a 4-hour scenario with three healthy apps and no fault (defined here), and
* every scenario of config/scenarios, one after the other.

For comparison it prints what the same scenario seconds cost when paced at the former default
``--time-scale 60`` (scenario seconds / 60: that clock could not run faster than real time
allowed). The verdicts of each run are printed too: the quiet scenario must stay quiet.

    python bench/simulate_speed.py [--skip-suite]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tomllib
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
FORMER_SCALE = 60.0

QUIET_4H = """
name = "quiet-4h"
duration_s = 14400

[[apps]]
name = "hotdash-llamaindex-mcp"
machines = 2
traffic_rps = 5.0

[[apps]]
name = "hotdash-agent-service"
machines = 2
traffic_rps = 3.0

[[apps]]
name = "hotdash-web"
machines = 3
traffic_rps = 8.0
"""


def _run(scenario: object) -> tuple[dict, float]:
    from prometheus_client import CollectorRegistry

    from hotdash_watch.sim.runner import simulate_scenario

    start = time.perf_counter()
    report = simulate_scenario(scenario, registry=CollectorRegistry())  # type: ignore[arg-type]
    return report, time.perf_counter() - start


def _line(name: str, seconds: float, wall: float, report: dict) -> str:
    s = report["summary"]
    return (f"{name:<22} {seconds:>8.0f} {wall:>8.1f} {seconds / wall:>8.0f}x "
            f"{seconds / FORMER_SCALE:>9.0f}  {len(report['incidents'])} incident(s), "
            f"{s['actions']} action(s), {len(report['pages'])} page(s)")


def main() -> int:
    from hotdash_watch.sim.scenario import load_scenario, parse_scenario

    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-suite", action="store_true", help="only the 4-hour scenario")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
    print(f"{'scenario':<22} {'scen s':>8} {'wall s':>8} {'speed':>9} {'at 60x s':>9}  verdicts")
    quiet = parse_scenario(tomllib.loads(QUIET_4H), "quiet-4h")
    report, wall = _run(quiet)
    print(_line("quiet-4h (3 apps)", quiet.duration_s, wall, report), flush=True)
    quiet_ok = not report["incidents"] and not report["actions"] and not report["pages"]
    print(f"  target <= 60 s wall: {'met' if wall <= 60 else 'MISSED'}; "
          f"{'quiet as expected' if quiet_ok else 'FALSE ALARM'}")
    if not args.skip_suite:
        total_s = total_wall = 0.0
        for path in sorted((ROOT / "config" / "scenarios").glob("*.toml")):
            scenario = load_scenario(path)
            report, wall = _run(scenario)
            total_s += scenario.duration_s
            total_wall += wall
            print(_line(path.stem, scenario.duration_s, wall, report), flush=True)
        print(f"{'suite':<22} {total_s:>8.0f} {total_wall:>8.1f} "
              f"{total_s / total_wall:>8.0f}x {total_s / FORMER_SCALE:>9.0f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:.0f} MB")
    return 0 if quiet_ok else 1


if __name__ == "__main__":
    sys.exit(main())
