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
from enum import StrEnum
from typing import Any

from hotdash_watch.config import HysteresisSettings, Thresholds
from hotdash_watch.severity import Severity
from hotdash_watch.window import Snapshot

__all__ = [
    "Assessment",
    "Finding",
    "Hold",
    "MachineFacts",
    "Reason",
    "Signal",
    "classify",
    "debounce",
]


class Reason(StrEnum):
    """Why a severity was given; the same words label metrics and explain pages."""

    ALL_MACHINES_DOWN = "all_machines_down"
    ERROR_RATE_CRITICAL = "error_rate_critical"
    OPERATOR_SIGNAL = "operator_signal"
    PARTIAL_OUTAGE = "partial_outage"
    ERROR_RATE_MAJOR = "error_rate_major"
    LATENCY_MAJOR = "latency_major"
    OOM_KILLS_MULTIPLE = "oom_kills_multiple"
    ERROR_RATE_MINOR = "error_rate_minor"
    LATENCY_MINOR = "latency_minor"
    OOM_KILL_SINGLE = "oom_kill_single"
    AUTOSCALING = "autoscaling_misbehaving"


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What the Machines API says about an app, when the Fly probe supplies it.

    ``down`` counts machines that should serve but are not started and healthy; machines that
    Fly's autostop stopped on purpose (idle) are not down.
    """

    total: int
    started_healthy: int
    down: int
    idle_stopped: int = 0
    oom_kills: int = 0
    autoscaling_problem: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """An inbound signal (operator, Alertmanager) that carries its own severity and reason."""

    severity: Severity
    summary: str
    source: str = "operator"


@dataclass(frozen=True, slots=True)
class Finding:
    reason: Reason
    severity: Severity
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason.value, "severity": self.severity.value, "text": self.text}


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


def _error_findings(snap: Snapshot, t: Thresholds) -> list[Finding]:
    ratio = snap.error_ratio
    if ratio is None or snap.total < t.min_samples:
        return []
    base = f"error rate {_pct(ratio)} over {snap.over_s:.0f} s ({snap.failures}/{snap.total})"
    if ratio > t.sev1_error_ratio:
        return [Finding(Reason.ERROR_RATE_CRITICAL, Severity.SEV1,
                        f"{base} > {_pct(t.sev1_error_ratio)}")]
    if ratio >= t.sev2_error_ratio:
        return [Finding(Reason.ERROR_RATE_MAJOR, Severity.SEV2,
                        f"{base} >= {_pct(t.sev2_error_ratio)}")]
    if ratio >= t.sev3_error_ratio:
        return [Finding(Reason.ERROR_RATE_MINOR, Severity.SEV3,
                        f"{base} >= {_pct(t.sev3_error_ratio)}")]
    return []


def _latency_findings(snap: Snapshot, t: Thresholds) -> list[Finding]:
    p95 = snap.p95_ms
    if p95 is None or snap.latency_samples < t.min_samples:
        return []
    base = f"p95 latency {p95:.0f} ms over {snap.over_s:.0f} s"
    if p95 > t.sev2_p95_ms:
        return [Finding(Reason.LATENCY_MAJOR, Severity.SEV2, f"{base} > {t.sev2_p95_ms:.0f} ms")]
    if p95 >= t.sev3_p95_ms:
        return [Finding(Reason.LATENCY_MINOR, Severity.SEV3, f"{base} >= {t.sev3_p95_ms:.0f} ms")]
    return []


def _machine_findings(m: MachineFacts, t: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    if m.total > 0 and m.started_healthy == 0 and m.down > 0:
        out.append(Finding(Reason.ALL_MACHINES_DOWN, Severity.SEV1,
                           f"all machines down: 0 of {m.total} started and healthy"))
    elif m.down > 0:
        out.append(Finding(Reason.PARTIAL_OUTAGE, Severity.SEV2,
                           f"partial outage: {m.down} of {m.total} machines down"))
    if m.oom_kills >= t.sev2_oom_kills:
        out.append(Finding(Reason.OOM_KILLS_MULTIPLE, Severity.SEV2,
                           f"{m.oom_kills} OOM kills in the window"))
    elif m.oom_kills >= t.sev3_oom_kills:
        out.append(Finding(Reason.OOM_KILL_SINGLE, Severity.SEV3,
                           f"{m.oom_kills} OOM kill in the window"))
    if m.autoscaling_problem:
        out.append(Finding(Reason.AUTOSCALING, Severity.SEV3,
                           f"auto-scaling misbehaving: {m.autoscaling_problem}"))
    return out


def classify(
    snap: Snapshot,
    thresholds: Thresholds,
    now: float,
    *,
    machines: MachineFacts | None = None,
    signals: Sequence[Signal] = (),
) -> Assessment:
    """Grade one app at ``now`` from its window snapshot (and machine facts, when known)."""
    findings = _error_findings(snap, thresholds) + _latency_findings(snap, thresholds)
    if machines is not None:
        findings += _machine_findings(machines, thresholds)
    findings += [Finding(Reason.OPERATOR_SIGNAL, s.severity, f"{s.source}: {s.summary}")
                 for s in signals]
    findings.sort(key=lambda f: -f.severity.rank)
    severity = findings[0].severity if findings else None

    evidence: dict[str, Any] = dict(snap.to_evidence())
    if machines is not None:
        evidence["machines"] = {
            "total": machines.total,
            "started_healthy": machines.started_healthy,
            "down": machines.down,
            "idle_stopped": machines.idle_stopped,
            "oom_kills": machines.oom_kills,
        }
    enough = snap.total >= thresholds.min_samples
    conclusive = severity is not None or enough or machines is not None
    watcher_side = severity is None and snap.watcher_failures > 0 and not enough
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
