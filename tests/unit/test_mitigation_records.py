"""The records a step leaves: started, ended, and veto / dry-run / page-only once per incident."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hotdash_watch.actions import ActionResult
from hotdash_watch.guards import Decision, GuardName, Verdict
from hotdash_watch.mitigation.step_records import (
    OnceKeys,
    end_page,
    ended_record,
    once_event,
    once_key,
    once_page,
    once_record,
    once_text,
    started_record,
    stored_why,
)
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import Step, Why

APP = "svc"
NOW = 100_000.0
INC = Incident(id="inc-1", app=APP, state=State.INVESTIGATING, severity=Severity.SEV2,
               max_severity=Severity.SEV2, opened_at=NOW - 300.0, updated_at=NOW,
               severity_since=NOW - 300.0)
START = Step(ActionKind.START, "m1", Why.MACHINE_DOWN, "start m1 (stopped after a crash)")
RAISE = Step(ActionKind.RAISE_MEMORY, "m1", Why.OOM_MEMORY, "raise m1 to 1024 MB",
             {"memory_mb": 1024})
VETO = Verdict(Decision.VETO, GuardName.ALLOW_LIST, "raise_memory is not allowed",
               {"allowed": ["start"]})
DRY = Verdict(Decision.DRY_RUN, GuardName.DRY_RUN)
ALLOWED = Verdict(Decision.ALLOW)


def stored(kind: ActionKind, outcome: Outcome, key: str, **kw: Any) -> ActionRecord:
    return ActionRecord(id=1, app=APP, incident_id=INC.id, kind=kind, target="m1",
                        reason="test", text="x", outcome=outcome, at=NOW - 60.0,
                        detail={"key": key}, **kw)


class TestOnceRecords:
    @pytest.mark.parametrize(("step", "outcome", "verdict", "text"), [
        (RAISE, Outcome.VETOED, VETO,
         "not done: raise m1 to 1024 MB. Vetoed: raise_memory is not allowed"),
        (START, Outcome.DRY_RUN, DRY, "dry-run, would have done: start m1 (stopped after a "
                                      "crash)"),
        (Step(ActionKind.PAGE, APP, Why.DEPENDENCY, "page: the database is down"),
         Outcome.OK, ALLOWED, "page: the database is down"),
    ], ids=["veto", "dry-run", "page-only"])
    def test_texts(self, step: Step, outcome: Outcome, verdict: Verdict, text: str):
        """A veto says what was not done and why, a dry-run what would have been done, a
        page-only step is its own sentence."""
        assert once_text(step, outcome, verdict) == text
        assert once_record(INC, step, outcome, verdict, NOW).text == text

    def test_veto_record(self):
        """A veto's record starts and ends at once, names its guard, and carries the step's
        parameters, the guard's evidence and its key."""
        rec = once_record(INC, RAISE, Outcome.VETOED, VETO, NOW)
        assert (rec.app, rec.incident_id, rec.kind, rec.target, rec.reason) == (
            APP, INC.id, ActionKind.RAISE_MEMORY, "m1", "oom_kills_memory")
        assert (rec.outcome, rec.at, rec.ended_at, rec.guard) == (
            Outcome.VETOED, NOW, NOW, "allowed_actions")
        assert rec.detail == {"key": "raise_memory:m1:oom_kills_memory:1024:vetoed:"
                                     "allowed_actions", "memory_mb": 1024,
                              "allowed": ["start"]}

    @pytest.mark.parametrize(("outcome", "verdict", "key"), [
        (Outcome.VETOED, VETO, "start:m1:machine_down::vetoed:allowed_actions"),
        (Outcome.DRY_RUN, DRY, "start:m1:machine_down::dry_run:dry_run"),
        (Outcome.OK, ALLOWED, "start:m1:machine_down::ok:"),
    ], ids=["veto", "dry-run", "no-guard"])
    def test_key_names_step_outcome_and_guard(self, outcome: Outcome, verdict: Verdict,
                                              key: str):
        """The key is the step's key, the outcome and the guard (empty without one)."""
        assert once_key(START, outcome, verdict) == key

    @pytest.mark.parametrize(("outcome", "event", "page"), [
        (Outcome.VETOED, "step_vetoed", "vetoed"),
        (Outcome.DRY_RUN, "step_dry_run", "action"),
        (Outcome.OK, "person_needed", "action"),
    ], ids=["veto", "dry-run", "page-only"])
    def test_event_and_page(self, outcome: Outcome, event: str, page: str):
        """A veto logs step_vetoed and pages as vetoed; others page as an action."""
        assert (once_event(outcome), once_page(outcome)) == (event, page)


class TestOnceKeys:
    def test_keys_read_back_from_history(self):
        """Vetoes, dry-runs and pages in the stored history count as recorded; an action
        that ran does not."""
        keys = OnceKeys().of(INC.id, [
            stored(ActionKind.START, Outcome.VETOED, "a"),
            stored(ActionKind.START, Outcome.DRY_RUN, "b"),
            stored(ActionKind.PAGE, Outcome.OK, "c"),
            stored(ActionKind.START, Outcome.OK, "d"),
            stored(ActionKind.START, Outcome.FAILED, "e")])
        assert keys == {"a", "b", "c"}

    def test_keys_are_kept_per_incident(self):
        """A key added for one incident is there on the next pass, and not in another
        incident's keys."""
        once = OnceKeys()
        once.of("inc-1", ()).add("k")
        assert "k" in once.of("inc-1", ())
        assert "k" not in once.of("inc-2", ())

    def test_oldest_incident_is_forgotten_beyond_keep(self):
        """Past ``keep`` incidents the oldest one's keys are dropped (the store has them)."""
        once = OnceKeys(keep=2)
        once.of("inc-1", ()).add("k")
        once.of("inc-2", ())
        once.of("inc-3", ())
        assert "inc-1" not in once and "inc-2" in once and "inc-3" in once
        assert once.of("inc-1", ()) == set()


class TestStartedAndEnded:
    def test_started_record(self):
        """A started record has no end yet and carries the step's key and parameters."""
        rec = started_record(INC, RAISE, NOW)
        assert (rec.outcome, rec.at, rec.ended_at, rec.text, rec.reason) == (
            Outcome.STARTED, NOW, None, "raise m1 to 1024 MB", "oom_kills_memory")
        assert rec.detail == {"key": RAISE.key, "memory_mb": 1024}

    def test_ended_record_merges_the_result(self):
        """The end takes the result's outcome and detail over the started detail, with the
        result's sentence and whether the machine crashed again."""
        rec = started_record(INC, RAISE, NOW)
        result = ActionResult(Outcome.FAILED, "m1 crashed again", {"memory_mb": 2048,
                                                                   "calls": []},
                              crashed_again=True)
        done = ended_record(rec, result, NOW + 30)
        assert (done.outcome, done.ended_at, done.at) == (Outcome.FAILED, NOW + 30, NOW)
        assert done.detail == {"key": RAISE.key, "memory_mb": 2048, "calls": [],
                               "result": "m1 crashed again", "crashed_again": True}
        assert rec.outcome is Outcome.STARTED  # the started record is left as it was

    @pytest.mark.parametrize(("outcome", "page"), [
        (Outcome.OK, "action"), (Outcome.FAILED, "action"), (Outcome.DEFERRED, None)])
    def test_a_deferral_is_not_paged(self, outcome: Outcome, page: str | None):
        """An action's end is paged, except a deferral (someone else holds the lease)."""
        assert end_page(outcome) == page

    @pytest.mark.parametrize(("reason", "why"), [
        ("errors_after_release", Why.ERRORS_AFTER_RELEASE),
        ("a_reason_of_an_older_version", Why.NO_SAFE_ACTION)])
    def test_stored_why(self, reason: str, why: Why):
        """A stored reason reads back as its ``Why``; an unknown one as no_safe_action."""
        rec = stored(ActionKind.ROLLBACK, Outcome.STARTED, "k")
        assert stored_why(dataclasses.replace(rec, reason=reason)) is why
