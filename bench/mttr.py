"""Time to mitigate and to recover, per runbook scenario, in scenario seconds.

Runs the scenarios of config/scenarios through the simulator and the daemon (mitigating, at the
default settings; the "+memory" rows also allow raise_memory, which the default Level-1
authority does not) and prints, after the first fault: detection, first mitigation, recovery
(the simulated world healthy again: ``time_to_recover_s``) and resolution (after the runbook's
10-minute stabilization), with the actions taken.

Targets (issue: auto-mitigation): first mitigation <= 10 s after detection; all-machines-down
recovered <= 90 s after the fault; bad-release rolled back (exactly one rollback) and recovered
<= 180 s after the fault.

On virtual time (``simulate``'s clock): the figures do not depend on the machine's speed.

    python bench/mttr.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
RUNS = [
    ("all-machines-down", None),
    ("bad-release", None),
    ("high-error-rate", None),
    ("high-latency", None),
    ("high-latency", "memory"),
    ("oom-kills", None),
    ("oom-kills", "memory"),
    ("dependency-down", None),
    ("crash-loop", None),
    ("autoscaling-broken", None),
]
MEMORY = """
[mitigation]
allowed_actions = ["restart", "start", "rollback", "raise_memory", "scale_out"]
"""


def _one(name: str, extra: str | None) -> dict:
    from prometheus_client import CollectorRegistry

    from hotdash_watch.sim.runner import simulate_scenario
    from hotdash_watch.sim.scenario import load_scenario

    with tempfile.TemporaryDirectory(prefix="hotdash-mttr-") as work:
        config = None
        if extra == "memory":
            config = Path(work) / "watch.toml"
            config.write_text(MEMORY)
        return simulate_scenario(
            load_scenario(ROOT / "config" / "scenarios" / f"{name}.toml"),
            registry=CollectorRegistry(), config=config)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    runs = [r for r in RUNS if not args.only or r[0] in args.only]
    print(f"mitigation over {len(runs)} runs on virtual time "
          "(scenario seconds after the first fault)")
    print(f"{'scenario':<26} {'detect':>7} {'1st act':>8} {'act-det':>8} {'recover':>8} "
          f"{'resolve':>8}  actions")
    ok_all = True
    for name, extra in runs:
        r = _one(name, extra)
        s = r["summary"]
        det, first = s["detection_latency_s"], s["time_to_first_action_s"]
        gap = None if det is None or first is None else first - det
        acts = Counter(f"{a['kind']}:{a['outcome']}" for a in r["actions"])
        verdicts = []
        if gap is not None and gap > 10:
            verdicts.append("MISSED first action <= 10 s after detection")
        if name == "all-machines-down":
            rec = s["time_to_recover_s"]
            verdicts.append("recovered <= 90 s" if rec is not None and rec <= 90
                            else "MISSED recovery <= 90 s")
        if name == "bad-release":
            rec = s["time_to_recover_s"]
            ok = acts.get("rollback:ok") == 1 and sum(
                n for k, n in acts.items() if k.startswith("rollback")) == 1
            verdicts.append("one rollback" if ok else "MISSED exactly one rollback")
            verdicts.append("recovered <= 180 s" if rec is not None and rec <= 180
                            else "MISSED recovery <= 180 s")
        ok_all &= not any("MISSED" in v for v in verdicts)
        label = name + (f" +{extra}" if extra else "")
        shown = ", ".join(f"{k} x{n}" for k, n in sorted(acts.items())) or "none"
        print(f"{label:<26} {_fmt(det):>7} {_fmt(first):>8} {_fmt(gap):>8} "
              f"{_fmt(s['time_to_recover_s']):>8} {_fmt(s['time_to_resolve_s']):>8}  {shown}"
              + (f"  [{'; '.join(verdicts)}]" if verdicts else ""), flush=True)
    print("all targets met" if ok_all else "some targets MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
