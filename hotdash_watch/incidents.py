"""The incident state machine: pure, time passed in.

``advance(incident, level, assessment, verify, settings, now)`` takes the steady severity of one
app (from ``classify.debounce``) and returns the incident as it now stands plus the timeline
entries that record what changed. Nothing here does I/O: the pipeline persists the entries
before anything is acted on.

Lifecycle: ``investigating -> mitigating -> monitoring -> resolved``.

* A steady severity with no open incident opens one (``INC-<yyyymmdd-hhmmss>`` UTC).
* The severity follows the signals up (escalated) and down (deescalated); a SEV-3 that lasts
  ``timers.sev3_escalate_after_s`` (runbook: 30 min) becomes SEV-2.
* When the signals clear, the incident moves to monitoring and the runbook's Phase 5 starts:
  it resolves only when the stabilization period has passed, the last
  ``good_checks_required`` health checks were good (and within the latency budget), and the
  error rate over the stabilization period is below ``resolve_error_ratio``. A signal that comes
  back during monitoring sends the incident back to investigating (regressed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hotdash_watch.classify import Assessment
from hotdash_watch.model.findings import Finding
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.window import Snapshot

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = ["Check", "Transition", "Verification", "advance", "incident_id", "verify"]


def incident_id(now: float, taken: Container[str] = ()) -> str:
    """``INC-<yyyymmdd-hhmmss>`` in UTC; ``-2``, ``-3``… only when that second is already taken
    (two apps opening incidents in the same pass)."""
    base = "INC-" + datetime.fromtimestamp(now, UTC).strftime("%Y%m%d-%H%M%S")
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


class Check(StrEnum):
    """The runbook's Phase 5 checks; each verification reports which passed."""

    STABILIZED = "stabilized"
    GOOD_CHECKS = "good_health_checks"
    ERROR_RATE = "error_rate_below_threshold"


@dataclass(frozen=True, slots=True)
class Verification:
    passed: tuple[Check, ...]
    failed: tuple[Check, ...]
    evidence: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of one evaluation: the incident (or None) and what changed."""

    incident: Incident | None
    entries: tuple[TimelineEntry, ...] = ()
    verification: Verification | None = None

    @property
    def changed(self) -> bool:
        return bool(self.entries)


def verify(
    incident: Incident, verify_snap: Snapshot, settings: Settings, now: float
) -> Verification:
    """Phase 5: stabilization period, consecutive good checks, error rate below threshold."""
    timers, t = settings.timers, settings.thresholds
    since = incident.monitoring_since if incident.monitoring_since is not None else now
    quiet_for = now - since
    ratio = verify_snap.error_ratio
    results = {
        Check.STABILIZED: quiet_for >= timers.stabilization_s,
        Check.GOOD_CHECKS: verify_snap.consecutive_ok >= timers.good_checks_required,
        Check.ERROR_RATE: ratio is not None and ratio < t.resolve_error_ratio,
    }
    evidence = {
        "quiet_for_s": round(quiet_for, 1),
        "stabilization_s": timers.stabilization_s,
        "consecutive_good_checks": verify_snap.consecutive_ok,
        "good_checks_required": timers.good_checks_required,
        "error_ratio": None if ratio is None else round(ratio, 4),
        "resolve_error_ratio": t.resolve_error_ratio,
        "samples": verify_snap.total,
    }
    return Verification(
        passed=tuple(c for c, ok in results.items() if ok),
        failed=tuple(c for c, ok in results.items() if not ok),
        evidence=evidence,
    )


def _entry(inc: Incident, event: Event, now: float, findings: tuple[Finding, ...] = (),
           notes: tuple[str, ...] = (), **detail: Any) -> TimelineEntry:
    return TimelineEntry(at=now, event=event, state=inc.state, severity=inc.severity,
                         findings=findings, notes=notes, detail=detail)


def advance(
    incident: Incident | None,
    level: Severity | None,
    assessment: Assessment,
    verify_snap: Snapshot,
    settings: Settings,
    now: float,
    *,
    taken_ids: Container[str] = (),
) -> Transition:
    """One evaluation of one app's incident. ``level`` is the debounced severity."""
    findings = assessment.findings
    evidence = assessment.evidence

    if incident is None or not incident.is_open:
        if level is None:
            return Transition(None)
        inc = Incident(
            id=incident_id(now, taken_ids), app=assessment.app, state=State.INVESTIGATING,
            severity=level, max_severity=level, opened_at=now, updated_at=now,
            severity_since=now, findings=findings, evidence=evidence,
        )
        return Transition(inc, (_entry(inc, Event.OPENED, now, findings),))

    inc = incident
    entries: list[TimelineEntry] = []

    def change(event: Event, entry_findings: tuple[Finding, ...] = (),
               notes: tuple[str, ...] = (), **kw: Any) -> None:
        nonlocal inc
        inc = dataclasses.replace(inc, updated_at=now, **kw)
        entries.append(_entry(inc, event, now, entry_findings, notes,
                              **({"from": incident.severity.value}
                                 if "severity" in kw else {})))

    if level is not None:
        if inc.state is State.MONITORING:
            change(Event.REGRESSED, findings, state=State.INVESTIGATING, monitoring_since=None)
        if level.worse_than(inc.severity):
            change(Event.ESCALATED, findings, severity=level, severity_since=now,
                   max_severity=Severity.worst(inc.max_severity, level))
        elif inc.severity.worse_than(level):
            change(Event.DEESCALATED, findings, severity=level, severity_since=now)
        elif (inc.severity is Severity.SEV3
              and now - inc.severity_since >= settings.timers.sev3_escalate_after_s):
            minutes = settings.timers.sev3_escalate_after_s / 60
            change(Event.ESCALATED_TIMER, findings,
                   (f"SEV-3 persisted {minutes:.0f} min: escalated to SEV-2 per runbook",),
                   severity=Severity.SEV2, severity_since=now,
                   max_severity=Severity.worst(inc.max_severity, Severity.SEV2))
        # Keep the reasons and evidence that justify the incident's current severity: while the
        # raw signal eases below it (during recovery) the worse picture stays on record.
        raw = assessment.severity
        if raw is not None and raw.rank >= inc.severity.rank:
            inc = dataclasses.replace(inc, findings=findings or inc.findings,
                                      evidence=evidence or inc.evidence)
        return Transition(inc, tuple(entries))

    # The signals are clear.
    if inc.state in (State.INVESTIGATING, State.MITIGATING):
        change(Event.MONITORING, (), ("signals clear; verifying recovery (runbook Phase 5)",),
               state=State.MONITORING, monitoring_since=now)
        return Transition(inc, tuple(entries), verify(inc, verify_snap, settings, now))

    check = verify(inc, verify_snap, settings, now)
    if check.ok:
        change(Event.RESOLVED, (),
               ("recovery verified: " + ", ".join(c.value for c in check.passed),),
               state=State.RESOLVED, resolved_at=now)
        entries[-1] = dataclasses.replace(entries[-1], detail=check.evidence)
    return Transition(inc, tuple(entries), check)
