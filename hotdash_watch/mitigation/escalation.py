"""The recovery check after a mitigation: a SEV-2 still there becomes SEV-1.

When an action ends, ``recovery_due_at`` says when to look again: at once when the action's
own check failed (that is the recovery check failing), else ``recovery_check_s`` later.
``recovery_check`` then reads the incident and the assessment at that look and returns the
``Escalation`` to make, or None. OOM kills counted only from before the fix (none since the
last action ended) are the window's memory, not a failed fix, and do not escalate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hotdash_watch.classify import Assessment
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.findings import Reason
from hotdash_watch.model.incident import Incident
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import MachineView

__all__ = ["Escalation", "recovery_check", "recovery_due_at"]


@dataclass(frozen=True, slots=True)
class Escalation:
    """Raise the incident to ``to``; ``reason`` goes in its timeline and page."""

    to: Severity
    reason: str


def recovery_due_at(kind: ActionKind, outcome: Outcome, ended_at: float,
                    recovery_check_s: float) -> float:
    """When to check recovery after an action of ``kind`` ended with ``outcome``."""
    failed = outcome is Outcome.FAILED and kind.touches_fly
    return ended_at if failed else ended_at + recovery_check_s


def recovery_check(incident: Incident, assessment: Assessment, history: Sequence[ActionRecord],
                   due: float | None, now: float, *, machines: Iterable[MachineView] = (),
                   recovery_check_s: float) -> Escalation | None:
    """The escalation a SEV-2 incident gets at ``now`` when the check ``due`` has come and
    the last mitigation in ``history`` (the incident's actions, oldest first) did not end it.
    ``machines`` (their last OOM kill) matter only when OOM kills are all that is left."""
    if due is None or now < due:
        return None
    if incident.severity is not Severity.SEV2 or assessment.severity is None:
        return None
    tried = [x for x in history if x.kind.touches_fly
             and x.outcome in (Outcome.OK, Outcome.FAILED)]
    if not tried:
        return None
    last = tried[-1]
    reasons = {f.reason for f in assessment.findings if f.severity.rank >= Severity.SEV2.rank}
    if reasons == {Reason.OOM_KILLS_MULTIPLE}:
        after = last.ended_at or last.at
        if not any(v.last_oom_at is not None and v.last_oom_at > after for v in machines):
            return None  # the kills counted are from before the fix; none since
    if last.outcome is Outcome.FAILED:
        reason = (f"SEV-2 not resolved: its mitigation failed ({last.kind.value} of "
                  f"{last.target}: {last.detail.get('result') or last.text}); escalated to "
                  "SEV-1 per runbook")
    else:
        reason = (f"SEV-2 not resolved {recovery_check_s:.0f} s after the mitigation "
                  f"({last.kind.value} of {last.target}: ok); escalated to SEV-1 per runbook")
    return Escalation(Severity.SEV1, reason)
