"""The recovery check after a mitigation: when it is due, and when a SEV-2 becomes SEV-1."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hotdash_watch.classify import Assessment
from hotdash_watch.mitigation.escalation import Escalation, recovery_check, recovery_due_at
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import MachineView

APP = "svc"
NOW = 100_000.0
CHECK_S = 120.0
ENDED = NOW - 150.0  # when the mitigation in ``tried`` ended


def incident(severity: Severity = Severity.SEV2) -> Incident:
    return Incident(id="inc-1", app=APP, state=State.MITIGATING, severity=severity,
                    max_severity=severity, opened_at=NOW - 900.0, updated_at=NOW - 60.0,
                    severity_since=NOW - 900.0)


def assessment(*findings: tuple[Reason, Severity]) -> Assessment:
    """The assessment at ``NOW`` with (reason, severity) findings; none: all clear."""
    worst = Severity.worst(*(s for _, s in findings)) if findings else None
    return Assessment(APP, NOW, worst, tuple(Finding(r, s, r.value) for r, s in findings), {})


ERRORS = assessment((Reason.ERROR_RATE_MAJOR, Severity.SEV2))
OOMS = assessment((Reason.OOM_KILLS_MULTIPLE, Severity.SEV2))


def tried(kind: ActionKind = ActionKind.RESTART, outcome: Outcome = Outcome.OK,
          **detail: Any) -> ActionRecord:
    """A mitigation of the incident that ended at ``ENDED``."""
    return ActionRecord(id=1, app=APP, incident_id="inc-1", kind=kind, target="m1",
                        reason="own_checks_failing", text=f"{kind.value} m1", outcome=outcome,
                        at=ENDED - 30.0, ended_at=ENDED, detail=dict(detail))


SEV2 = incident()
RESTARTED = (tried(),)


def check(inc: Incident = SEV2, a: Assessment = ERRORS,
          history: tuple[ActionRecord, ...] = RESTARTED, due: float | None = NOW,
          machines: tuple[MachineView, ...] = ()) -> Escalation | None:
    """The recovery check at ``NOW``; by default a SEV-2 with errors after a restart."""
    return recovery_check(inc, a, history, due, NOW, machines=machines,
                          recovery_check_s=CHECK_S)


class TestRecoveryDueAt:
    @pytest.mark.parametrize(("kind", "outcome", "due"), [
        (ActionKind.RESTART, Outcome.FAILED, 500.0),
        (ActionKind.RESTART, Outcome.OK, 500.0 + CHECK_S),
        (ActionKind.ROLLBACK, Outcome.FAILED, 500.0),
        (ActionKind.PAGE, Outcome.FAILED, 500.0 + CHECK_S),
    ], ids=["failed-now", "ok-later", "failed-rollback-now", "page-is-no-fix"])
    def test_failed_fix_now_else_later(self, kind: ActionKind, outcome: Outcome, due: float):
        """A Fly action whose own check failed is checked at once; anything else
        ``recovery_check_s`` after it ended."""
        assert recovery_due_at(kind, outcome, 500.0, CHECK_S) == due


class TestRecoveryCheck:
    def test_failed_mitigation_escalates_naming_it(self):
        """A SEV-2 whose mitigation failed becomes SEV-1; the reason names the action and
        its result."""
        esc = check(history=(tried(outcome=Outcome.FAILED, result="m1 still failing"),))
        assert esc == Escalation(Severity.SEV1, (
            "SEV-2 not resolved: its mitigation failed (restart of m1: m1 still failing); "
            "escalated to SEV-1 per runbook"))

    def test_failed_mitigation_without_result_uses_its_text(self):
        """Without a stored result the reason quotes the action's own sentence."""
        esc = check(history=(tried(outcome=Outcome.FAILED),))
        assert esc is not None and "(restart of m1: restart m1)" in esc.reason

    def test_successful_mitigation_that_did_not_cure_escalates(self):
        """A SEV-2 still there after a mitigation that went well becomes SEV-1, saying how
        long after."""
        assert check() == Escalation(Severity.SEV1, (
            "SEV-2 not resolved 120 s after the mitigation (restart of m1: ok); escalated to "
            "SEV-1 per runbook"))

    def test_the_last_mitigation_is_named(self):
        """With several mitigations, the last one tried is the one named."""
        history = (tried(outcome=Outcome.FAILED),
                   tried(ActionKind.START, Outcome.OK))
        esc = check(history=history)
        assert esc is not None and "(start of m1: ok)" in esc.reason

    @pytest.mark.parametrize(("kwargs", "why"), [
        ({"inc": incident(Severity.SEV1)}, "already SEV-1"),
        ({"inc": incident(Severity.SEV3)}, "a SEV-3 is not escalated this way"),
        ({"a": assessment()}, "the signals cleared"),
        ({"due": NOW + 1}, "before the due time"),
        ({"due": None}, "no check due"),
        ({"history": ()}, "nothing tried"),
        ({"history": (tried(ActionKind.PAGE),)}, "a page is not a mitigation"),
        ({"history": (tried(outcome=Outcome.VETOED), tried(outcome=Outcome.STARTED))},
         "vetoed and unfinished steps are not tried"),
    ], ids=["sev1", "sev3", "cleared", "not-due", "none-due", "nothing-tried", "page-only",
            "not-ended"])
    def test_no_escalation(self, kwargs: dict[str, Any], why: str):
        """No escalation when the incident is not SEV-2, the signals cleared, the check is not
        due yet, or no Fly action ended in it."""
        assert check(**kwargs) is None, why

    @pytest.mark.parametrize(("last_oom_at", "escalates"), [
        (None, False),
        (ENDED - 10, False),
        (ENDED, False),
        (ENDED + 10, True),
    ], ids=["no-kill-known", "kill-before-fix", "kill-at-fix", "kill-after-fix"])
    def test_oom_kills_escalate_only_if_one_came_after_the_fix(self, last_oom_at: float | None,
                                                               escalates: bool):
        """When OOM kills are the only SEV-2 reason, the kills still in the window from
        before the memory raise do not escalate; a kill after it does."""
        machines = (MachineView("m1", "started", last_oom_at=last_oom_at),
                    MachineView("m2", "started"))
        history = (tried(ActionKind.RAISE_MEMORY),)
        esc = check(a=OOMS, history=history, machines=machines)
        assert (esc is not None) is escalates

    def test_oom_kills_with_other_sev2_reasons_escalate(self):
        """OOM kills together with another SEV-2 reason are not excused by the fix's time."""
        a = assessment((Reason.OOM_KILLS_MULTIPLE, Severity.SEV2),
                       (Reason.ERROR_RATE_MAJOR, Severity.SEV2))
        assert check(a=a, history=(tried(ActionKind.RAISE_MEMORY),)) is not None

    def test_minor_findings_do_not_hide_the_oom_case(self):
        """A SEV-3 finding beside the OOM kills leaves the OOM case as it is."""
        a = assessment((Reason.OOM_KILLS_MULTIPLE, Severity.SEV2),
                       (Reason.LATENCY_MINOR, Severity.SEV3))
        assert check(a=a, history=(tried(ActionKind.RAISE_MEMORY),)) is None

    def test_an_unended_record_is_judged_from_its_start(self):
        """A tried action without an end time is judged from when it started."""
        rec = dataclasses.replace(tried(ActionKind.RAISE_MEMORY), ended_at=None)
        machines = (MachineView("m1", "started", last_oom_at=rec.at + 1),)
        assert check(a=OOMS, history=(rec,), machines=machines) is not None
