"""What a pass tells people and Prometheus about its assessment and transitions (no I/O).

Metrics are set and log events emitted after the pass has persisted and acted, so a log line
never announces a transition the store does not hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from hotdash_watch.classify import Assessment
from hotdash_watch.incidents import Transition
from hotdash_watch.metrics import Metrics
from hotdash_watch.model.incident import Event

if TYPE_CHECKING:
    from hotdash_watch.config import Settings
    from hotdash_watch.pipeline.state import AppState

__all__ = ["report_assessment", "report_step"]

log = structlog.get_logger("hotdash_watch.pipeline")


def report_assessment(state: AppState, a: Assessment, metrics: Metrics,
                      settings: Settings) -> None:
    """Gauges of the assessment; a log line when the raw condition changes."""
    m, app = metrics, state.name
    ratio = a.evidence.get("error_ratio")
    p95 = a.evidence.get("p95_ms")
    m.error_ratio.labels(app).set(float("nan") if ratio is None else ratio)
    m.p95.labels(app).set(float("nan") if p95 is None else p95 / 1000)
    m.raw_severity.labels(app).set(a.severity.rank if a.severity else 0)
    m.watcher_side.labels(app).set(1 if a.watcher_side else 0)
    before = state.last
    state.last = a
    if before is None or before.severity != a.severity:
        if a.severity is not None and before is not None and before.severity is not None \
                and before.severity.worse_than(a.severity):
            log.info("condition_easing", severity=a.severity.value,
                     was=before.severity.value, reasons=list(a.reasons))
        elif a.severity is not None:
            log.warning("condition_detected", severity=a.severity.value,
                        reasons=list(a.reasons), confirm_after_evals=(
                            settings.hysteresis.raise_evals(a.severity)))
        elif before is not None and before.severity is not None:
            log.info("condition_cleared", was=before.severity.value,
                     error_ratio=ratio, p95_ms=p95)
    if a.watcher_side and not (before and before.watcher_side):
        log.warning("watcher_side_blind", evidence=a.evidence,
                    hint="probes fail for the watcher's own reasons (DNS, route); "
                         "the service is not judged")


def report_step(state: AppState, step: Transition, metrics: Metrics) -> None:
    """Counters and a log line per transition; the verification still pending."""
    inc = step.incident
    if inc is None:
        return
    m = metrics
    with structlog.contextvars.bound_contextvars(incident_id=inc.id):
        for e in step.entries:
            m.transitions.labels(inc.app, e.event.value).inc()
            fields = {"severity": e.severity.value, "state": e.state.value,
                      "reasons": list(e.reasons)}
            if e.event is Event.OPENED:
                m.incidents_opened.labels(inc.app, inc.severity.value).inc()
                log.error("incident_opened", **fields, **_headline(inc.evidence))
                log.debug("incident_evidence", evidence=inc.evidence)
            elif e.event is Event.RESOLVED:
                log.info("incident_resolved", **fields,
                         duration_s=round(e.at - inc.opened_at, 1), checks=e.detail)
            else:
                log.warning(f"incident_{e.event.value}", **fields, **e.detail)
        m.set_severity(inc.app, inc.severity if inc.is_open else None)
        v = step.verification
        if v is not None and inc.is_open:
            pending = tuple(c.value for c in v.failed)
            if pending != state.pending_checks:
                log.info("verification_pending", waiting_for=list(pending), **v.evidence)
            state.pending_checks = pending
        elif not inc.is_open:
            state.pending_checks = ()


def _headline(evidence: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a person reads first; the full evidence is in the store and the API."""
    out: dict[str, Any] = {k: evidence.get(k) for k in ("error_ratio", "p95_ms")}
    machines = evidence.get("machines")
    if isinstance(machines, dict):
        out["machines"] = f"{machines.get('started_healthy')}/{machines.get('total')} healthy"
    logs = evidence.get("logs")
    if isinstance(logs, dict) and logs.get("dependency_hints"):
        out["dependency_hints"] = logs["dependency_hints"]
    release = evidence.get("release")
    if isinstance(release, dict) and release.get("deployed_s_ago") is not None:
        out["deployed_s_ago"] = release["deployed_s_ago"]
    return out
