"""Incident values shared by the state machine (``incidents.py``) and the store (``records/``).

Frozen dataclasses: the state machine returns new values, the store persists them. What the
classifier found stays typed (``Finding``); free text (a verification result, an operator's
word) is a note. A timeline entry about a mitigation step names the step's ``action_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hotdash_watch.model.findings import Finding
from hotdash_watch.model.severity import Severity

__all__ = [
    "Event",
    "Incident",
    "State",
    "TimelineEntry",
    "decode_reasons",
    "encode_reasons",
    "entry_as_dict",
    "incident_as_dict",
]


class State(StrEnum):
    INVESTIGATING = "investigating"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    RESOLVED = "resolved"

    @property
    def status(self) -> str:
        """The runbook's STATUS word for pages: Investigating, Mitigating, Monitoring, Resolved."""
        return self.value.capitalize()


class Event(StrEnum):
    """What a timeline entry records; also the ``event`` label of the transitions metric."""

    OPENED = "opened"
    ESCALATED = "escalated"  # severity rose with the signals
    ESCALATED_TIMER = "escalated_timer"  # a SEV-3 lasted too long (runbook: 30 min -> SEV-2)
    DEESCALATED = "deescalated"
    MITIGATING = "mitigating"  # a mitigation started
    MONITORING = "monitoring"  # the signals cleared; verification (Phase 5) started
    REGRESSED = "regressed"  # the signals came back during verification
    RESUMED = "resumed"  # the daemon restarted and picked the open incident up again
    RESOLVED = "resolved"
    NOTE = "note"  # anything else worth a line: an action, a page, an operator's word


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's timeline. ``at`` is epoch seconds (UTC).

    ``findings`` are the classifier's, ``notes`` any other sentence; ``reasons`` reads both as
    a person does (notes first). ``action_id`` names the mitigation step the entry is about.
    """

    at: float
    event: Event
    state: State
    severity: Severity
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    action_id: int | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        return (*self.notes, *(f.text for f in self.findings))


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident of one app. Times are epoch seconds (UTC); ``None`` when not reached yet.

    ``severity_since`` is when the current severity was set (the SEV-3 -> SEV-2 timer runs from
    it); ``monitoring_since`` when verification started; ``reasons`` and ``evidence`` are those of
    the latest assessment that held the incident open.
    """

    id: str
    app: str
    state: State
    severity: Severity
    max_severity: Severity
    opened_at: float
    updated_at: float
    severity_since: float
    monitoring_since: float | None = None
    resolved_at: float | None = None
    findings: tuple[Finding, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    timeline: tuple[TimelineEntry, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.state is not State.RESOLVED

    @property
    def reasons(self) -> tuple[str, ...]:
        """The findings' sentences, worst first."""
        return tuple(f.text for f in self.findings)


def encode_reasons(findings: tuple[Finding, ...], notes: tuple[str, ...] = ()) -> list[Any]:
    """The stored form of findings and notes: a JSON list of finding objects and strings."""
    return [*notes, *(f.as_dict() for f in findings)]


def decode_reasons(items: Any) -> tuple[tuple[Finding, ...], tuple[str, ...]]:
    """The inverse of ``encode_reasons``. A string is a note; so is a finding this version
    cannot read (its text is kept), so an old or newer record never fails to load."""
    findings: list[Finding] = []
    notes: list[str] = []
    for item in items or ():
        if isinstance(item, dict):
            try:
                findings.append(Finding.from_dict(item))
            except (KeyError, ValueError, TypeError):
                notes.append(str(item.get("text") or item))
        else:
            notes.append(str(item))
    return tuple(findings), tuple(notes)


def _iso(ts: float | None) -> str | None:
    from datetime import UTC, datetime

    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def entry_as_dict(e: TimelineEntry) -> dict[str, Any]:
    return {
        "at": _iso(e.at), "event": e.event.value, "state": e.state.value,
        "severity": e.severity.value, "reasons": list(e.reasons),
        "findings": [f.as_dict() for f in e.findings], "action_id": e.action_id,
        "detail": e.detail,
    }


def incident_as_dict(inc: Incident, *, timeline: bool = True) -> dict[str, Any]:
    """The JSON shape of an incident served by /api/incidents and printed by the CLI."""
    out: dict[str, Any] = {
        "id": inc.id, "app": inc.app, "state": inc.state.value, "status": inc.state.status,
        "severity": inc.severity.value, "max_severity": inc.max_severity.value,
        "opened_at": _iso(inc.opened_at), "updated_at": _iso(inc.updated_at),
        "monitoring_since": _iso(inc.monitoring_since), "resolved_at": _iso(inc.resolved_at),
        "duration_s": None if inc.resolved_at is None else round(inc.resolved_at - inc.opened_at,
                                                                  1),
        "reasons": list(inc.reasons), "findings": [f.as_dict() for f in inc.findings],
        "evidence": inc.evidence,
    }
    if timeline:
        out["timeline"] = [entry_as_dict(e) for e in inc.timeline]
    return out
