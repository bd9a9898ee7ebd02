"""The incident state machine: opening, escalation, monitoring and the runbook's verification."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from hotdash_watch.classify import Assessment
from hotdash_watch.config import Settings
from hotdash_watch.incidents import Check, advance, incident_id
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Event, Incident, State
from hotdash_watch.model.severity import Severity
from tests.support.factories import settings, snapshot

S1, S2, S3 = Severity.SEV1, Severity.SEV2, Severity.SEV3
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@functools.cache
def _cfg() -> Settings:
    """Default settings, built on first use inside a test (records go to pytest's temp dir)."""
    return settings()


def _assess(sev: Severity | None, now: float) -> Assessment:
    findings = (Finding(Reason.ERROR_RATE_MAJOR, sev, f"{sev} condition"),) if sev else ()
    return Assessment(app="svc", at=now, severity=sev, findings=findings,
                      evidence={"error_ratio": 0.2})


def _step(inc: Incident | None, level: Severity | None, now: float, *, good: int = 10,
          failures: int = 0, total: int = 120):
    snap = snapshot(at=now, total=total, failures=failures, consecutive_ok=good)
    step = advance(inc, level, _assess(level, now), snap, _cfg(), now)
    if step.incident is None:
        return None, step
    return dataclasses.replace(step.incident,
                               timeline=(*step.incident.timeline, *step.entries)), step


class TestIncidentId:
    def test_format(self):
        """IDs are INC-<yyyymmdd-hhmmss> in UTC."""
        assert incident_id(T0 + 3723) == "INC-20260101-010203"

    def test_collision_gets_a_suffix(self):
        """Two incidents opened in the same second get distinct IDs."""
        taken = {"INC-20260101-000000", "INC-20260101-000000-2"}
        assert incident_id(T0, taken) == "INC-20260101-000000-3"


class TestLifecycle:
    def test_nothing_without_a_level(self):
        """No steady severity and no incident: nothing happens."""
        inc, step = _step(None, None, T0)
        assert inc is None and not step.entries

    def test_open(self):
        """A steady severity opens an investigating incident with one timeline entry."""
        inc, step = _step(None, S2, T0)
        assert inc.state is State.INVESTIGATING and inc.severity is S2
        assert [e.event for e in step.entries] == [Event.OPENED]
        assert step.entries[0].reasons == ("SEV-2 condition",)

    def test_escalate_and_deescalate(self):
        """Severity follows the level up and down, and max_severity remembers the worst."""
        inc, _ = _step(None, S3, T0)
        inc, step = _step(inc, S1, T0 + 5)
        assert [e.event for e in step.entries] == [Event.ESCALATED]
        assert step.entries[0].detail == {"from": "SEV-3"}
        inc, step = _step(inc, S2, T0 + 10)
        assert [e.event for e in step.entries] == [Event.DEESCALATED]
        assert (inc.severity, inc.max_severity) == (S2, S1)

    def test_sev3_escalates_after_30_minutes(self):
        """A SEV-3 that persists 30 minutes becomes SEV-2 (runbook), once."""
        inc, _ = _step(None, S3, T0)
        inc, step = _step(inc, S3, T0 + 1799)
        assert not step.entries
        inc, step = _step(inc, S3, T0 + 1800)
        assert [e.event for e in step.entries] == [Event.ESCALATED_TIMER]
        assert inc.severity is S2
        assert "30 min" in step.entries[0].reasons[0]
        inc, step = _step(inc, S3, T0 + 1805)
        assert [e.event for e in step.entries] == [Event.DEESCALATED]  # the level says SEV-3

    def test_clear_moves_to_monitoring(self):
        """When the signals clear, verification starts: monitoring, not resolved."""
        inc, _ = _step(None, S1, T0)
        inc, step = _step(inc, None, T0 + 60)
        assert inc.state is State.MONITORING and inc.monitoring_since == T0 + 60
        assert [e.event for e in step.entries] == [Event.MONITORING]

    def test_regression_during_monitoring(self):
        """A condition returning during monitoring sends the incident back to investigating."""
        inc, _ = _step(None, S2, T0)
        inc, _ = _step(inc, None, T0 + 60)
        inc, step = _step(inc, S2, T0 + 120)
        assert inc.state is State.INVESTIGATING and inc.monitoring_since is None
        assert [e.event for e in step.entries] == [Event.REGRESSED]


class TestVerification:
    def _monitoring(self) -> Incident:
        inc, _ = _step(None, S1, T0)
        inc, _ = _step(inc, None, T0 + 60)
        return inc

    def test_not_before_stabilization(self):
        """Nothing resolves before the 10-minute stabilization period has passed."""
        inc, step = _step(self._monitoring(), None, T0 + 60 + 599)
        assert inc.is_open
        assert step.verification.failed == (Check.STABILIZED,)

    def test_resolves_when_every_check_passes(self):
        """After stabilization, 5 good checks and < 1 % errors, the incident resolves."""
        inc, step = _step(self._monitoring(), None, T0 + 660, good=5, failures=1, total=120)
        assert inc.state is State.RESOLVED and inc.resolved_at == T0 + 660
        assert [e.event for e in step.entries] == [Event.RESOLVED]
        assert step.entries[0].detail["consecutive_good_checks"] == 5

    @pytest.mark.parametrize(
        ("good", "failures", "failed"),
        [(4, 0, (Check.GOOD_CHECKS,)), (10, 2, (Check.ERROR_RATE,)),
         (0, 5, (Check.GOOD_CHECKS, Check.ERROR_RATE))],
    )
    def test_each_check_blocks(self, good: int, failures: int, failed: tuple[Check, ...]):
        """Too few good checks or an error rate of 1 % or more keeps the incident monitoring."""
        inc, step = _step(self._monitoring(), None, T0 + 700, good=good, failures=failures,
                          total=120)
        assert inc.state is State.MONITORING
        assert step.verification.failed == failed

    def test_no_samples_never_resolves(self):
        """Without samples the error rate cannot be verified, so the incident stays open."""
        inc, step = _step(self._monitoring(), None, T0 + 700, total=0)
        assert inc.is_open and Check.ERROR_RATE in step.verification.failed
