"""Detection latency over the runbook scenarios, in scenario seconds, at the default settings.

Runs every scenario of config/scenarios through the simulator and the daemon (mitigating) and
prints, per scenario: incidents, worst severity, detection latency after the first fault.
Targets: SEV-1 "all machines down" within 2 probe intervals + 1 evaluation of the fault (15 s
at the defaults); every fault scenario detected; no-fault and flapping produce nothing.

On virtual time (``simulate``'s clock): the figures do not depend on the machine's speed.

    python bench/detection.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
QUIET = ("no-fault", "flapping", "fly-api-down", "watcher-partition")


def _one(path: Path) -> dict:
    from prometheus_client import CollectorRegistry

    from hotdash_watch.sim.runner import simulate_scenario
    from hotdash_watch.sim.scenario import load_scenario

    return simulate_scenario(load_scenario(path), registry=CollectorRegistry())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    paths = sorted((ROOT / "config" / "scenarios").glob("*.toml"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    print(f"detection over {len(paths)} scenarios on virtual time (scenario seconds)")
    print(f"{'scenario':<22} {'incidents':>9} {'max sev':>8} {'detect s':>9}  verdict")
    ok_all = True
    for path in paths:
        r = _one(path)
        s = r["summary"]
        n = len(r["incidents"])
        if path.stem in QUIET:
            ok = n == 0
            verdict = "nothing, as expected" if ok else "FALSE ALARM"
        elif path.stem == "all-machines-down":
            ok = s["detected"] and s["max_severity"] == "SEV-1" \
                and s["detection_latency_s"] <= 15
            verdict = "SEV-1 within 15 s" if ok else "MISSED target (SEV-1 <= 15 s)"
        else:
            ok = bool(s["detected"])
            verdict = "detected" if ok else "NOT DETECTED"
        ok_all &= ok
        det = "-" if s["detection_latency_s"] is None else f"{s['detection_latency_s']:.1f}"
        print(f"{path.stem:<22} {n:>9} {s['max_severity'] or '-':>8} {det:>9}  {verdict}",
              flush=True)
    print("all targets met" if ok_all else "some targets MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
