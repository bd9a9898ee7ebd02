"""Causes and the preliminary root cause, for the journal and the report alike.

An incident's findings keep their ``Reason`` from the classifier to the store, so the cause of
each is a table lookup (``CAUSE_OF``), never a guess from its sentence. Notes (a verification
result, an operator's word) are not findings and are never mistaken for a cause. The evidence
adds what the reasons do not say: dependency hints in the logs, a release deployed within
``recent_release_s`` of the opening (a required argument: the journal and the report use the
same setting), OOM kills.

``preliminary_root_cause`` is the journal's ``Root Cause:`` line and the report's preliminary
findings: the opening findings, what the incident said at its worst, the evidence, and the
mitigation that worked, from the store's action records (``describe`` reads one as
``rollback hotdash-api (ok)``). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hotdash_watch.model.action import ActionRecord, Outcome
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Event, Incident, TimelineEntry

__all__ = [
    "CAUSE_OF",
    "CONDITION_EVENTS",
    "Cause",
    "causes",
    "condition_reasons",
    "describe",
    "duration_min",
    "iso_utc",
    "mitigation_sentence",
    "mitigations",
    "opening_findings",
    "opening_reasons",
    "preliminary_root_cause",
    "root_cause_findings",
    "worst_reasons",
]


def iso_utc(ts: float) -> str:
    """``2026-03-01T12:00:05Z``: the runbook's ``date -u +%Y-%m-%dT%H:%M:%SZ``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_min(seconds: float) -> int:
    """Whole minutes, rounded half up (a 90 s incident lasted 2 min)."""
    return int(max(0.0, seconds) / 60 + 0.5)


class Cause(StrEnum):
    """What kind of failure the findings and evidence point at (the runbook's scenarios)."""

    ALL_MACHINES_DOWN = "all_machines_down"
    PARTIAL_OUTAGE = "partial_outage"
    ERROR_RATE = "error_rate"
    LATENCY = "latency"
    OOM = "oom"
    AUTOSCALING = "autoscaling"
    DEPENDENCY = "dependency"
    RECENT_RELEASE = "recent_release"
    SIGNAL = "signal"  # an operator or inbound alert


#: The cause of each classifier reason.
CAUSE_OF: Mapping[Reason, Cause] = {
    Reason.ALL_MACHINES_DOWN: Cause.ALL_MACHINES_DOWN,
    Reason.PARTIAL_OUTAGE: Cause.PARTIAL_OUTAGE,
    Reason.ERROR_RATE_CRITICAL: Cause.ERROR_RATE,
    Reason.ERROR_RATE_MAJOR: Cause.ERROR_RATE,
    Reason.ERROR_RATE_MINOR: Cause.ERROR_RATE,
    Reason.LATENCY_MAJOR: Cause.LATENCY,
    Reason.LATENCY_MINOR: Cause.LATENCY,
    Reason.OOM_KILLS_MULTIPLE: Cause.OOM,
    Reason.OOM_KILL_SINGLE: Cause.OOM,
    Reason.AUTOSCALING: Cause.AUTOSCALING,
    Reason.OPERATOR_SIGNAL: Cause.SIGNAL,
}

#: Entries that describe the service's condition (not an action or a verification).
CONDITION_EVENTS = frozenset({Event.OPENED, Event.ESCALATED, Event.ESCALATED_TIMER,
                              Event.DEESCALATED, Event.REGRESSED})


def _condition_texts(e: TimelineEntry) -> tuple[str, ...]:
    """What a condition entry says about the service: its findings' sentences, or, for a
    change the watcher made on its own judgement (an escalation after a mitigation), its note."""
    return tuple(f.text for f in e.findings) if e.findings else e.notes


def opening_findings(incident: Incident) -> tuple[Finding, ...]:
    """The findings the incident opened with (its ``opened`` entry), else its latest ones."""
    for e in incident.timeline:
        if e.event is Event.OPENED and e.findings:
            return e.findings
    return incident.findings


def opening_reasons(incident: Incident) -> tuple[str, ...]:
    """The sentences of the opening findings."""
    return tuple(f.text for f in opening_findings(incident))


def condition_reasons(incident: Incident) -> list[str]:
    """Every distinct sentence of the entries that describe the condition, in timeline order."""
    seen: list[str] = []
    for e in incident.timeline:
        if e.event in CONDITION_EVENTS:
            seen += [r for r in _condition_texts(e) if r not in seen]
    return seen


def worst_reasons(incident: Incident) -> tuple[str, ...]:
    """What the entry that first reached the incident's worst severity says."""
    for e in incident.timeline:
        if e.event in CONDITION_EVENTS and e.severity is incident.max_severity:
            texts = _condition_texts(e)
            if texts:
                return texts
    return ()


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _release_age_at_open(incident: Incident) -> tuple[float, Mapping[str, Any]] | None:
    """(seconds between the current release's deploy and the opening, the release evidence)."""
    release = _dict(incident.evidence.get("release"))
    ago = release.get("deployed_s_ago")
    if not isinstance(ago, int | float):
        return None
    assessed = _dict(incident.evidence.get("probes")).get("at")
    if isinstance(assessed, int | float):
        return incident.opened_at - (assessed - ago), release
    return float(ago), release


def causes(incident: Incident, *, recent_release_s: float) -> tuple[Cause, ...]:
    """The causes, most telling first: opening findings, later findings, then the evidence."""
    found: list[Cause] = []

    def add(cause: Cause) -> None:
        if cause not in found:
            found.append(cause)

    later = [f for e in incident.timeline if e.event in CONDITION_EVENTS for f in e.findings]
    for f in (*opening_findings(incident), *later, *incident.findings):
        add(CAUSE_OF[f.reason])
    evidence = incident.evidence
    if _dict(evidence.get("logs")).get("dependency_hints"):
        add(Cause.DEPENDENCY)
    age = _release_age_at_open(incident)
    if age is not None and age[0] <= recent_release_s:
        add(Cause.RECENT_RELEASE)
    oom = _dict(evidence.get("machines")).get("oom_kills")
    if isinstance(oom, int) and oom > 0:
        add(Cause.OOM)
    return tuple(found)


def root_cause_findings(incident: Incident, *, recent_release_s: float) -> list[str]:
    """The evidence beyond the reasons, one phrase each (dependency, release, OOM kills)."""
    out: list[str] = []
    evidence = incident.evidence
    hints = _dict(evidence.get("logs")).get("dependency_hints")
    if hints:
        names = ", ".join(str(h) for h in hints) if isinstance(hints, list) else str(hints)
        out.append(f"logs point at a dependency ({names})")
    age = _release_age_at_open(incident)
    if age is not None and age[0] <= recent_release_s:
        seconds, release = age
        version = release.get("current_version")
        name = f"release v{version}" if version is not None else "the current release"
        out.append(f"{name} was deployed {duration_min(seconds)} min before detection")
    oom = _dict(evidence.get("machines")).get("oom_kills")
    if isinstance(oom, int) and oom > 0:
        out.append(f"{oom} OOM kill{'s' if oom != 1 else ''} (exit 137, oom_killed)")
    return out


# --- the mitigations ------------------------------------------------------------------------------

#: How an outcome reads in a sentence when its value alone would mislead.
_OUTCOME_WORDS = {Outcome.STARTED: "in progress"}


def describe(action: ActionRecord) -> str:
    """``restart 148e21ea7e0389 (ok)``, ``rollback hotdash-api (in progress)``."""
    what = f"{action.kind.value} {action.target}" if action.target else action.kind.value
    return f"{what} ({_OUTCOME_WORDS.get(action.outcome, action.outcome.value)})"


def mitigations(actions: Iterable[ActionRecord]) -> list[ActionRecord]:
    """The steps on Fly that have ended (done, failed, vetoed, dry run, deferred), oldest
    first. A page-only step is not a mitigation; a step still running has no result yet."""
    return sorted((a for a in actions if a.kind.touches_fly and a.outcome.ended),
                  key=lambda a: a.at)


def mitigation_sentence(actions: Sequence[ActionRecord] | None, incident: Incident) -> str:
    """What the mitigations came to: the last one that worked, else what was tried.
    ``actions`` is None when they could not be read."""
    if actions is None:
        return "mitigations not known (the action records could not be read)"
    acts = mitigations(actions)
    if not acts:
        if incident.is_open:
            return "no mitigation taken yet"
        return "recovered without a mitigation by the watcher"
    worked = [a for a in acts if a.outcome is Outcome.OK]
    if worked:
        best = worked[-1]
        return f"mitigated by {describe(best)} at {iso_utc(best.at)}"
    tried = ", ".join(describe(a) for a in acts)
    if incident.is_open:
        return f"mitigations tried without success so far: {tried}"
    return f"recovered although no mitigation succeeded (tried: {tried})"


def preliminary_root_cause(incident: Incident, actions: Sequence[ActionRecord] | None, *,
                           recent_release_s: float) -> str:
    """One line: the opening findings; what the incident said at its worst; the evidence; what
    the mitigations (the store's action records of the incident) came to."""
    opening = opening_reasons(incident)
    parts = ["; ".join(opening) or "no classifier reason recorded"]
    worst = [r for r in worst_reasons(incident) if r not in opening]
    if worst:
        parts.append(f"at its worst ({incident.max_severity.value}): " + "; ".join(worst))
    evidence = root_cause_findings(incident, recent_release_s=recent_release_s)
    if evidence:
        parts.append("evidence: " + ", ".join(evidence))
    parts.append(mitigation_sentence(actions, incident))
    return " ".join("; ".join(parts).split())
