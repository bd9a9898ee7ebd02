"""The records a planned step leaves in the store, and their words.

An allowed step is recorded ``started`` before anything is sent to Fly (``started_record``)
and ended with its result (``ended_record``). A veto, a dry-run ("would have done") and a
page-only step are recorded and paged once per incident: ``once_key`` names such a record,
``OnceKeys`` remembers which names an incident already has, ``once_record`` writes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from hotdash_watch.actions.base import ActionResult
from hotdash_watch.guards import Verdict
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Incident
from hotdash_watch.policy import Step, Why

__all__ = ["OnceKeys", "end_page", "ended_record", "once_event", "once_key", "once_page",
           "once_record", "once_text", "started_record", "stored_why"]


def once_key(step: Step, outcome: Outcome, verdict: Verdict) -> str:
    """What identifies a once-per-incident record: the step, how it ended, and the guard."""
    return f"{step.key}:{outcome.value}:{verdict.guard or ''}"


def once_text(step: Step, outcome: Outcome, verdict: Verdict) -> str:
    """The record's sentence: the step, what was not done and why, or what would have been."""
    if outcome is Outcome.DRY_RUN:
        return f"dry-run, would have done: {step.text}"
    if outcome is Outcome.VETOED:
        return f"not done: {step.text}. Vetoed: {verdict.text}"
    return step.text


def once_record(inc: Incident, step: Step, outcome: Outcome, verdict: Verdict,
                now: float) -> ActionRecord:
    """The record of a veto, a dry-run or a page-only step at ``now`` (it starts and ends)."""
    return ActionRecord(id=None, app=inc.app, incident_id=inc.id, kind=step.kind,
                        target=step.target, reason=step.why.value,
                        text=once_text(step, outcome, verdict), outcome=outcome, at=now,
                        ended_at=now, guard=verdict.guard.value if verdict.guard else None,
                        detail={"key": once_key(step, outcome, verdict), **step.params,
                                **verdict.evidence})


def once_event(outcome: Outcome) -> str:
    """The log event of a once-per-incident record."""
    return {Outcome.VETOED: "step_vetoed", Outcome.DRY_RUN: "step_dry_run"}.get(
        outcome, "person_needed")


def once_page(outcome: Outcome) -> str:
    """The page a once-per-incident record sends."""
    return "vetoed" if outcome is Outcome.VETOED else "action"


def started_record(inc: Incident, step: Step, now: float) -> ActionRecord:
    """The record of an allowed step, written before it is carried out."""
    return ActionRecord(id=None, app=inc.app, incident_id=inc.id, kind=step.kind,
                        target=step.target, reason=step.why.value, text=step.text,
                        outcome=Outcome.STARTED, at=now,
                        detail={"key": step.key, **step.params})


def ended_record(rec: ActionRecord, result: ActionResult, ended_at: float) -> ActionRecord:
    """``rec`` ended with ``result`` at ``ended_at``: the result's detail and text merged in."""
    detail = {**rec.detail, **result.detail, "result": result.text,
              "crashed_again": result.crashed_again}
    return dataclasses.replace(rec, outcome=result.outcome, ended_at=ended_at, detail=detail)


def end_page(outcome: Outcome) -> str | None:
    """The page an action's end sends: none for a deferral (timeline and log only)."""
    return None if outcome is Outcome.DEFERRED else "action"


def stored_why(rec: ActionRecord) -> Why:
    """The reason a stored step was planned for (records of an older version: no_safe_action)."""
    try:
        return Why(rec.reason)
    except ValueError:
        return Why.NO_SAFE_ACTION


class OnceKeys:
    """The once-per-incident keys recorded so far, for the ``keep`` newest incidents (an older
    incident's keys are read back from its history if it is ever considered again)."""

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._by_incident: dict[str, set[str]] = {}

    def of(self, incident_id: str, history: Iterable[ActionRecord]) -> set[str]:
        """The incident's keys, with those of its stored ``history`` added; the set is live:
        add a key to it once its record is written."""
        if incident_id not in self._by_incident and len(self._by_incident) >= self.keep:
            del self._by_incident[next(iter(self._by_incident))]
        keys = self._by_incident.setdefault(incident_id, set())
        for a in history:
            if a.outcome in (Outcome.VETOED, Outcome.DRY_RUN) or a.kind is ActionKind.PAGE:
                keys.add(str(a.detail.get("key")))
        return keys

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self._by_incident
