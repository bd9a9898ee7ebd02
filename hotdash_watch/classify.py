"""The runbook's severity table as a pure function, and the hysteresis that steadies it.

``classify(snapshot, thresholds, now, machines=None)`` grades one evaluation of one app:

* SEV-1: all machines down (confirmed by the Machines API); error rate > 50 %; an operator or
  inbound alert signal (data corruption, security breach).
* SEV-2: partial outage (some machines down); error rate 10-50 %; p95 > 2000 ms; multiple OOM
  kills.
* SEV-3: error rate 5-10 %; p95 1000-2000 ms; a single OOM kill; auto-scaling misbehaving.

Every finding carries a reason (a ``Reason`` value, also a metric label) and the numbers behind
it. Probes failing for the watcher's own reasons (DNS, no route) are never a service failure:
when they are all the watcher can see, the assessment is inconclusive and ``watcher_side``.

``debounce(hold, assessment, settings)`` turns raw assessments into a steady level: a condition
must hold for N evaluations (fewer for worse severities) before it counts and be absent for
longer before it clears, so a flapping signal neither opens nor closes incidents each cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hotdash_watch.config.sections import HysteresisSettings, Thresholds
from hotdash_watch.model.findings import Finding, Reason, Signal
from hotdash_watch.model.severity import Severity
from hotdash_watch.probes.base import FailureKind
from hotdash_watch.probes.machines import MachineFacts
from hotdash_watch.probes.prometheus import TrafficFacts
from hotdash_watch.window import Snapshot

__all__ = [
    "Assessment",
    "Hold",
    "classify",
    "debounce",
]


# Failures that say the watcher could not talk to the service at all. When the Machines API says
# every machine is started and passing, these are the watcher's problem, not the service's.
_UNREACHED = frozenset({FailureKind.TIMEOUT, FailureKind.CONNECT})


@dataclass(frozen=True, slots=True)
class Assessment:
    """One evaluation of one app.

    ``severity`` is the worst finding's, or None when nothing is wrong. ``conclusive`` is False
    when there is too little service-side evidence to say either way (no samples, or only
    watcher-side failures); ``watcher_side`` says the watcher itself is the likely problem.
    """

    app: str
    at: float
    severity: Severity | None
    findings: tuple[Finding, ...]
    evidence: dict[str, Any]
    conclusive: bool = True
    watcher_side: bool = False

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.text for f in self.findings)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f} %"


def _error_findings(ratio: float | None, failures: float, total: float, over_s: float,
                    source: str, t: Thresholds) -> list[Finding]:
    if ratio is None:
        return []
    base = (f"error rate {_pct(ratio)} over {over_s:.0f} s "
            f"({failures:.0f}/{total:.0f} {source})")
    nums = {"error_ratio": ratio, "failures": failures, "total": total, "over_s": over_s}
    if ratio > t.sev1_error_ratio:
        return [Finding(Reason.ERROR_RATE_CRITICAL, Severity.SEV1,
                        f"{base} > {_pct(t.sev1_error_ratio)}",
                        {**nums, "threshold": t.sev1_error_ratio})]
    if ratio >= t.sev2_error_ratio:
        return [Finding(Reason.ERROR_RATE_MAJOR, Severity.SEV2,
                        f"{base} >= {_pct(t.sev2_error_ratio)}",
                        {**nums, "threshold": t.sev2_error_ratio})]
    if ratio >= t.sev3_error_ratio:
        return [Finding(Reason.ERROR_RATE_MINOR, Severity.SEV3,
                        f"{base} >= {_pct(t.sev3_error_ratio)}",
                        {**nums, "threshold": t.sev3_error_ratio})]
    return []


def _latency_findings(p95: float | None, over_s: float, source: str,
                      t: Thresholds) -> list[Finding]:
    if p95 is None:
        return []
    base = f"p95 latency {p95:.0f} ms over {over_s:.0f} s ({source})"
    nums = {"p95_ms": p95, "over_s": over_s}
    if p95 > t.sev2_p95_ms:
        return [Finding(Reason.LATENCY_MAJOR, Severity.SEV2, f"{base} > {t.sev2_p95_ms:.0f} ms",
                        {**nums, "threshold_ms": t.sev2_p95_ms})]
    if p95 >= t.sev3_p95_ms:
        return [Finding(Reason.LATENCY_MINOR, Severity.SEV3, f"{base} >= {t.sev3_p95_ms:.0f} ms",
                        {**nums, "threshold_ms": t.sev3_p95_ms})]
    return []


def _machine_findings(m: MachineFacts, t: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    nums = {"total": m.total, "down": m.down, "started_healthy": m.started_healthy}
    if m.total > 0 and m.started_healthy == 0 and m.down > 0:
        out.append(Finding(Reason.ALL_MACHINES_DOWN, Severity.SEV1,
                           f"all machines down: 0 of {m.total} started and healthy "
                           "(Machines API)", nums))
    elif m.down > 0:
        out.append(Finding(Reason.PARTIAL_OUTAGE, Severity.SEV2,
                           f"partial outage: {m.down} of {m.total} machines down "
                           f"({', '.join(m.down_ids)})", nums))
    if m.oom_kills >= t.sev2_oom_kills:
        out.append(Finding(Reason.OOM_KILLS_MULTIPLE, Severity.SEV2,
                           f"{m.oom_kills} OOM kills in the window (exit 137, oom_killed)",
                           {"oom_kills": m.oom_kills}))
    elif m.oom_kills >= t.sev3_oom_kills:
        out.append(Finding(Reason.OOM_KILL_SINGLE, Severity.SEV3,
                           f"{m.oom_kills} OOM kill in the window (exit 137, oom_killed)",
                           {"oom_kills": m.oom_kills}))
    if m.autoscaling_problem:
        out.append(Finding(Reason.AUTOSCALING, Severity.SEV3,
                           f"auto-scaling misbehaving: {m.autoscaling_problem}"))
    return out


def _autoscaling_findings(m: MachineFacts, traffic: TrafficFacts | None, failing: bool,
                          t: Thresholds, now: float) -> list[Finding]:
    if (m.autostop and traffic is not None and m.started_since is not None
            and m.started_healthy > max(1, m.min_running)
            and now - m.started_since >= t.idle_stop_after_s
            and traffic.rps < t.idle_rps * m.started_healthy):
        return [Finding(Reason.AUTOSCALING, Severity.SEV3,
                        f"auto-scaling misbehaving: {m.started_healthy} machines started for "
                        f"{(now - m.started_since) / 60:.0f} min at {traffic.rps:.2f} req/s "
                        "although autostop is on (machines never stop when idle)",
                        {"started_healthy": m.started_healthy, "rps": traffic.rps,
                         "started_for_s": now - m.started_since})]
    if m.autostart and m.started_healthy == 0 and m.idle_stopped > 0 and failing:
        return [Finding(Reason.AUTOSCALING, Severity.SEV3,
                        "auto-scaling misbehaving: requests fail while every machine is "
                        "stopped although autostart is on (machines do not start on request)",
                        {"idle_stopped": m.idle_stopped})]
    return []


def classify(
    snap: Snapshot,
    thresholds: Thresholds,
    now: float,
    *,
    machines: MachineFacts | None = None,
    traffic: TrafficFacts | None = None,
    signals: Sequence[Signal] = (),
    fly_reachable: bool | None = None,
    context: dict[str, Any] | None = None,
) -> Assessment:
    """Grade one app at ``now``.

    Real traffic (``traffic``, from edge metrics) is preferred over the probes' own results when
    it has at least ``min_traffic_requests`` requests; otherwise the probes stand in. Machine
    facts come from the Machines API. ``context`` (logs, releases) is carried into the evidence.
    """
    t = thresholds
    use_traffic = traffic is not None and traffic.requests >= t.min_traffic_requests
    probe_enough = snap.total >= t.min_samples
    probe_errors = (_error_findings(snap.error_ratio, snap.failures, snap.total, snap.over_s,
                                    "probes", t) if probe_enough else [])
    probe_findings: list[Finding] = []
    findings: list[Finding] = []
    if use_traffic:
        assert traffic is not None
        findings += _error_findings(traffic.error_ratio, traffic.errors, traffic.requests,
                                    traffic.over_s, "edge requests", t)
        p95 = traffic.p95_ms
        findings += _latency_findings(p95, traffic.over_s, "edge requests", t)
    else:
        probe_findings = list(probe_errors)
        if snap.latency_samples >= t.min_samples:
            findings += _latency_findings(snap.p95_ms, snap.over_s, "probes", t)

    # Probes that could not reach the service while the Machines API says every machine is
    # started and passing (or while Fly itself cannot be reached) point at the watcher.
    kinds = dict(snap.failure_kinds)
    unreached = sum(kinds.get(k.value, 0) for k in _UNREACHED)
    mostly_unreached = snap.failures > 0 and unreached * 2 >= snap.failures
    all_healthy = (machines is not None and machines.total > 0
                   and machines.started_healthy == machines.total)
    watcher_side = False
    notes: list[str] = []
    if use_traffic and probe_errors and mostly_unreached and not findings:
        # Real traffic is served fine while the watcher's own probes cannot get through.
        watcher_side = True
        notes.append("probes cannot reach the service while real traffic at Fly's edge is "
                     "served normally: the watcher's path to the service is the suspect")
    elif probe_findings and mostly_unreached and all_healthy:
        watcher_side = True
        notes.append("probes cannot reach the service but the Machines API reports "
                     f"{machines.started_healthy}/{machines.total} machines started and "
                     "passing their checks: the watcher's path to the service is the suspect")
        probe_findings = []
    elif probe_findings and mostly_unreached and fly_reachable is False:
        watcher_side = True
        notes.append("probes cannot reach the service and the Fly API cannot be reached "
                     "either: the watcher's own network is the suspect; not mitigating")
    findings += probe_findings

    if machines is not None:
        findings += _machine_findings(machines, t)
        failing = bool(snap.failures) or bool(traffic and traffic.errors)
        findings += _autoscaling_findings(machines, traffic, failing, t, now)
    findings += [Finding(Reason.OPERATOR_SIGNAL, s.severity, f"{s.source}: {s.summary}")
                 for s in signals]
    findings.sort(key=lambda f: -f.severity.rank)
    severity = findings[0].severity if findings else None

    evidence: dict[str, Any] = {"probes": snap.to_evidence()}
    evidence.update({k: v for k, v in snap.to_evidence().items()
                     if k in ("error_ratio", "p95_ms")})
    if use_traffic and traffic is not None:
        evidence["traffic"] = traffic.as_evidence()
        evidence["error_ratio"] = traffic.as_evidence()["error_ratio"]
        evidence["p95_ms"] = traffic.as_evidence()["p95_ms"]
    if machines is not None:
        evidence["machines"] = machines.as_evidence()
    if fly_reachable is False:
        evidence["fly_api"] = "unreachable"
    if notes:
        evidence["watcher_side"] = notes
    if context:
        evidence.update(context)
    if snap.watcher_failures > 0 and not probe_enough and not findings:
        watcher_side = True
        notes.append(f"{snap.watcher_failures} probe failures on the watcher's side "
                     "(DNS, route): the service is not judged from probes")
        evidence["watcher_side"] = notes
    conclusive = (severity is not None or probe_enough or machines is not None
                  or use_traffic)
    return Assessment(
        app=snap.app,
        at=now,
        severity=severity,
        findings=tuple(findings),
        evidence=evidence,
        conclusive=conclusive,
        watcher_side=watcher_side,
    )


@dataclass(frozen=True, slots=True)
class Hold:
    """Hysteresis state of one app.

    ``held[r]`` counts consecutive conclusive evaluations whose raw severity rank was at least
    ``r`` (r = 1 SEV-3, 2 SEV-2, 3 SEV-1); ``absent[r]`` the consecutive ones below ``r``.
    ``level`` is the steady severity the incident machinery sees.
    """

    level: Severity | None = None
    held: tuple[int, int, int] = (0, 0, 0)
    absent: tuple[int, int, int] = (0, 0, 0)
    findings: tuple[Finding, ...] = field(default=())

    @classmethod
    def at_level(cls, level: Severity | None, clear_evals: int) -> Hold:
        """A hold that already stands at ``level`` (resuming an open incident after a restart)."""
        if level is None:
            return cls()
        held = tuple(clear_evals if r <= level.rank else 0 for r in (1, 2, 3))
        return cls(level=level, held=held, absent=(0, 0, 0))  # type: ignore[arg-type]


def debounce(hold: Hold, assessment: Assessment, settings: HysteresisSettings) -> Hold:
    """Advance the hysteresis by one evaluation. Inconclusive evaluations change nothing."""
    if not assessment.conclusive:
        return hold
    rank = assessment.severity.rank if assessment.severity else 0
    held = tuple(h + 1 if rank >= r else 0 for r, h in zip((1, 2, 3), hold.held, strict=True))
    absent = tuple(a + 1 if rank < r else 0 for r, a in zip((1, 2, 3), hold.absent, strict=True))

    confirmed: Severity | None = None
    for r in (3, 2, 1):
        sev = Severity.from_rank(r)
        assert sev is not None
        if held[r - 1] >= settings.raise_evals(sev):
            confirmed = sev
            break

    level = hold.level
    if confirmed is not None and confirmed.worse_than(level):
        level = confirmed
    elif level is not None and absent[level.rank - 1] >= settings.clear_evals:
        level = confirmed  # a lower confirmed severity, or None
    findings = assessment.findings if assessment.severity else hold.findings
    return Hold(level=level, held=held, absent=absent, findings=findings)  # type: ignore[arg-type]
