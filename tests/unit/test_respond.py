"""The runbook's paging cadence: what to page when (pure)."""

from __future__ import annotations

import dataclasses
import functools

from hotdash_watch.config import Settings
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.findings import describe
from hotdash_watch.respond import PagePlan, _taken_so_far, pages_for, update_due
from tests.support.factories import settings

T0 = 1_000_000.0


@functools.cache
def _cfg() -> Settings:
    """Default settings, built on first use inside a test (records go to pytest's temp dir)."""
    return settings()


def _incident(sev: Severity, *events: Event) -> Incident:
    timeline = tuple(TimelineEntry(T0 + i, e, State.INVESTIGATING, sev)
                     for i, e in enumerate(events))
    return Incident(id="INC-X", app="svc", state=State.INVESTIGATING, severity=sev,
                    max_severity=sev, opened_at=T0, updated_at=T0, severity_since=T0,
                    timeline=timeline)


class TestPagesFor:
    def test_each_transition_pages_once_with_a_stable_key(self):
        """Opening, severity and status changes and resolution each page; keys follow the
        timeline position, so a restart re-deriving them cannot page twice."""
        inc = _incident(Severity.SEV2, Event.OPENED, Event.ESCALATED, Event.NOTE,
                        Event.MONITORING, Event.RESOLVED)
        plans = pages_for(inc, inc.timeline[1:])
        assert plans == [PagePlan("severity_changed", 2), PagePlan("status", 4),
                         PagePlan("resolved", 5)]
        assert plans[0].key("INC-X") == "INC-X:severity_changed:2"

    def test_notes_do_not_page(self):
        """A timeline note (an acknowledgement) is not a page."""
        inc = _incident(Severity.SEV1, Event.OPENED, Event.NOTE)
        assert pages_for(inc, inc.timeline[1:]) == []


class TestUpdates:
    def test_sev1_every_15_minutes(self):
        """A SEV-1 gets a status update after 15 minutes and another after 30, not between."""
        inc = _incident(Severity.SEV1, Event.OPENED)
        assert update_due(inc, _cfg(), T0 + 899, None) is None
        first = update_due(inc, _cfg(), T0 + 900, None)
        assert first is not None and first.event == "update"
        assert update_due(inc, _cfg(), T0 + 1000, 1) is None
        assert update_due(inc, _cfg(), T0 + 1800, 1) is not None

    def test_sev2_every_30_minutes_and_sev3_never(self):
        """SEV-2 updates every 30 minutes; SEV-3 and resolved incidents get none."""
        assert update_due(_incident(Severity.SEV2, Event.OPENED), _cfg(), T0 + 1799, None) is None
        assert update_due(_incident(Severity.SEV2, Event.OPENED), _cfg(), T0 + 1800, None)
        assert update_due(_incident(Severity.SEV3, Event.OPENED), _cfg(), T0 + 9999, None) is None
        done = dataclasses.replace(_incident(Severity.SEV1, Event.OPENED),
                                   state=State.RESOLVED)
        assert update_due(done, _cfg(), T0 + 9999, None) is None


class TestWatcherNotice:
    def test_notice_and_its_resolution_pair_up(self):
        """The watcher-side notice and its resolution share a pseudo incident ID and say that
        nothing is mitigated."""
        from hotdash_watch.notify.base import PageEvent
        from hotdash_watch.notify.templates import watcher_notice

        up = watcher_notice("svc", ["probes time out"], settings=_cfg(), since=T0, now=T0)
        down = watcher_notice("svc", [], settings=_cfg(), since=T0, now=T0 + 300, resolved=True)
        assert up.incident_id == down.incident_id == "WATCHER-svc"
        assert up.event is PageEvent.WATCHER_SIDE and down.is_resolution
        assert up.subject == "[SEV-3] hotdash-watch cannot see svc (watcher-side)"
        assert "no mitigation" in up.body and up.key != down.key


def _action(kind: ActionKind, at: float, outcome: Outcome, ended_at: float | None = None
            ) -> ActionRecord:
    return ActionRecord(id=1, app="svc", incident_id="INC-X", kind=kind, target="app",
                        reason="errors_after_release", text="roll back", outcome=outcome,
                        at=at, ended_at=ended_at)


class TestActionTakenSoFar:
    """The journal's "Action Taken:" at a severity change, from the store's action records."""

    ROLLBACK = _action(ActionKind.ROLLBACK, T0 + 10, Outcome.OK, ended_at=T0 + 90)

    def test_a_running_action_is_in_progress(self):
        """A severity change during a rollback says the rollback is in progress."""
        acts = _taken_so_far([self.ROLLBACK], T0 + 50)
        assert [describe(a) for a in acts] == ["rollback app (in progress)"]

    def test_an_ended_action_is_listed_once_with_its_outcome(self):
        """After it ended, the same rollback appears once, with its outcome."""
        acts = _taken_so_far([self.ROLLBACK], T0 + 100)
        assert [describe(a) for a in acts] == ["rollback app (ok)"]

    def test_later_and_page_only_steps_are_left_out(self):
        """A step started after the change, and a page (no Fly call), are not listed."""
        acts = _taken_so_far([self.ROLLBACK, _action(ActionKind.PAGE, T0 + 5, Outcome.OK, T0 + 5),
                              _action(ActionKind.RESTART, T0 + 120, Outcome.STARTED)], T0 + 100)
        assert [describe(a) for a in acts] == ["rollback app (ok)"]
