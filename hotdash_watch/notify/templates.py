"""The runbook's Phase-4 templates, rendered from an incident: pure, ``now`` is an argument.

Subjects, exactly as the runbook words them (``service_name`` defaults to "Agent SDK")::

    [SEV-1] Agent SDK Production Outage
    [SEV-2] Agent SDK Degraded Performance
    [SEV-3] Agent SDK Minor Issue
    [RESOLVED] [SEV-1] Agent SDK Production Outage

Body lines in the runbook's order for each level::

    SEV-1  STATUS, START TIME, IMPACT, AFFECTED, ACTION, ETA, UPDATES
    SEV-2  STATUS, START TIME, IMPACT, AFFECTED, ACTION, ETA, UPDATES
    SEV-3  STATUS, START TIME, IMPACT, ACTION, ETA

then, after a blank line, ``Contact`` and ``Incident ID``. The runbook shows these two only in
the SEV-1 template; every page carries them here so that whoever reads a SEV-2 or SEV-3 page
can name the incident (``hotdash-watch report INC-...``). A ``NOTE:`` line ends the body when
there is something the reader must know about the page itself (paging was broken, a step was
vetoed, the watcher cannot see the app).

Nothing secret is ever rendered: only the incident, the service name, the team, the AFFECTED
text and the actions' descriptions go into a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hotdash_watch.config import Settings
from hotdash_watch.model.incident import Event, Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.notify.base import NOTE_PREFIX, Page, PageEvent

__all__ = ["evidence_numbers", "format_duration", "impact", "iso", "render", "subject"]

_TITLES = {
    Severity.SEV1: "Production Outage",
    Severity.SEV2: "Degraded Performance",
    Severity.SEV3: "Minor Issue",
}
_UPDATES = {Severity.SEV1: "Every 15 minutes", Severity.SEV2: "Every 30 minutes"}
_SEVERITY_EVENTS = (Event.ESCALATED, Event.ESCALATED_TIMER, Event.DEESCALATED)


def iso(ts: float) -> str:
    """Epoch seconds as the runbook writes times: ``2026-03-01T12:00:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: float) -> str:
    """``45 s``, ``7 min``, ``2 h 5 min``: rounded to what a reader needs."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def subject(severity: Severity, service_name: str, *, resolved: bool = False) -> str:
    """The runbook's SUBJECT line for ``severity``."""
    line = f"[{severity.value}] {service_name} {_TITLES[severity]}"
    return f"[RESOLVED] {line}" if resolved else line


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f} %" if ratio >= 0.1 else f"{ratio * 100:.1f} %"


def impact(incident: Incident) -> str:
    """What users suffer, from the incident's reasons (the classifier's words) and the app.

    Without reasons, the evidence's error ratio and p95 stand in.
    """
    parts = [r for r in incident.reasons if r]
    if not parts:
        ev = incident.evidence
        ratio, p95 = ev.get("error_ratio"), ev.get("p95_ms")
        if _finite(ratio):
            parts.append(f"error rate {_pct(float(ratio))}")
        if _finite(p95):
            parts.append(f"p95 latency {float(p95):.0f} ms")
    text = "; ".join(parts) if parts else "under investigation"
    return f"{text} ({incident.app})"


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def evidence_numbers(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers behind the IMPACT line: top-level figures and the machines' counts."""
    out: dict[str, Any] = {}
    for k, v in evidence.items():
        if _finite(v):
            out[k] = v
        elif k == "machines" and isinstance(v, Mapping):
            out.update({f"machines.{mk}": mv for mk, mv in v.items() if _finite(mv)})
    return dict(sorted(out.items()))


def _action(incident: Incident, actions: Sequence[str]) -> str:
    if actions:
        return "; ".join(actions)
    if incident.state is State.MONITORING:
        return "verifying recovery (runbook Phase 5)"
    if incident.state is State.MITIGATING:
        return "mitigation in progress"
    if incident.state is State.RESOLVED:
        return "none further"
    return "investigation ongoing" if incident.severity is Severity.SEV3 else "investigating"


def _eta(incident: Incident, settings: Settings) -> str:
    if incident.state is State.RESOLVED and incident.resolved_at is not None:
        return (f"resolved at {iso(incident.resolved_at)} (duration "
                f"{format_duration(incident.resolved_at - incident.opened_at)})")
    if incident.state is State.MONITORING and incident.monitoring_since is not None:
        stab = settings.timers.stabilization_s
        earliest = incident.monitoring_since + stab
        return (f"unknown — verifying recovery, earliest {iso(earliest)} "
                f"({stab / 60:g}-minute stabilization)")
    return "unknown"


def _previous_severity(incident: Incident) -> Severity | None:
    """The severity before the latest severity change in the timeline, if there was one."""
    timeline = incident.timeline
    for i in range(len(timeline) - 1, 0, -1):
        if timeline[i].event in _SEVERITY_EVENTS:
            before = timeline[i - 1].severity
            return before if before is not timeline[i].severity else None
    return None


def render(
    incident: Incident,
    event: PageEvent,
    *,
    settings: Settings,
    actions: Sequence[str] = (),
    note: str | None = None,
    now: float,
    key: str | None = None,
) -> Page:
    """The page for ``event`` of ``incident`` at ``now``, in the runbook's template.

    ``key`` is the dedup key; by default ``"{incident_id}:{event}:{n}"`` with ``n`` the length
    of the incident's timeline (the caller passes its own when it has one).
    """
    event = PageEvent(event)
    sev = incident.severity
    resolved = event is PageEvent.RESOLVED or incident.state is State.RESOLVED
    fields: dict[str, str] = {
        "STATUS": incident.state.status,
        "START TIME": iso(incident.opened_at),
        "IMPACT": impact(incident),
    }
    if sev is Severity.SEV1:
        fields["AFFECTED"] = settings.notify.affected
    elif sev is Severity.SEV2:
        fields["AFFECTED"] = incident.app
    fields["ACTION"] = _action(incident, actions)
    fields["ETA"] = _eta(incident, settings)
    if sev in _UPDATES:
        fields["UPDATES"] = "None further (resolved)" if resolved else _UPDATES[sev]
    contact = {"Contact": settings.team, "Incident ID": incident.id}
    lines = [f"{k}: {v}" for k, v in fields.items()]
    lines += [""] + [f"{k}: {v}" for k, v in contact.items()]
    fields.update(contact)
    if note:
        lines += ["", f"{NOTE_PREFIX}{note}"]
        fields["NOTE"] = note
    return Page(
        key=key or f"{incident.id}:{event.value}:{len(incident.timeline)}",
        incident_id=incident.id,
        app=incident.app,
        event=event,
        severity=sev,
        status=incident.state.status,
        subject=subject(sev, settings.service_name, resolved=resolved),
        body="\n".join(lines),
        fields=fields,
        evidence=evidence_numbers(incident.evidence),
        created_at=float(now),
        note=note or None,
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
        previous_severity=(_previous_severity(incident)
                           if event is PageEvent.SEVERITY_CHANGED else None),
    )


def watcher_notice(app: str, reasons: Sequence[str], *, settings: Settings, since: float,
                   now: float, resolved: bool = False) -> Page:
    """A notice that the watcher cannot see ``app`` for its own reasons (not an incident).

    Sent at SEV-3 under the pseudo incident ID ``WATCHER-<app>`` so PagerDuty and Alertmanager
    pair the notice with its resolution; the service itself is not judged, nothing is mitigated.
    """
    pseudo = f"WATCHER-{app}"
    status = "Resolved" if resolved else "Investigating"
    fields = {
        "STATUS": status,
        "START TIME": iso(since),
        "IMPACT": ("none known: the watcher could not see the service; "
                   + "; ".join(reasons)) if reasons else "none known",
        "ACTION": ("the watcher sees the service again" if resolved else
                   "no mitigation: check the watcher's network path and the Fly API"),
        "ETA": "unknown",
    }
    contact = {"Contact": settings.team, "Incident ID": pseudo}
    lines = [f"{k}: {v}" for k, v in fields.items()] + [""]
    lines += [f"{k}: {v}" for k, v in contact.items()]
    fields.update(contact)
    title = f"[SEV-3] hotdash-watch cannot see {app} (watcher-side)"
    return Page(
        key=f"{pseudo}:{'resolved' if resolved else 'watcher_side'}:{int(since)}",
        incident_id=pseudo, app=app,
        event=PageEvent.RESOLVED if resolved else PageEvent.WATCHER_SIDE,
        severity=Severity.SEV3, status=status,
        subject=f"[RESOLVED] {title}" if resolved else title,
        body="\n".join(lines), fields=fields, evidence={}, created_at=float(now),
        opened_at=since, resolved_at=float(now) if resolved else None,
    )
