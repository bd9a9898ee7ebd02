"""decide: one app at one instant, from a view to a decision, without I/O."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from hotdash_watch.classify import Hold
from hotdash_watch.config import Settings
from hotdash_watch.model.findings import Reason, Signal
from hotdash_watch.model.incident import Event, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.pipeline.decide import AppView, Decision, decide, taken
from hotdash_watch.probes.machines import MachineFacts
from tests.support.factories import settings, snapshot

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ALL_DOWN = MachineFacts(at=T0, total=3, started_healthy=0, down=3, down_ids=("a", "b", "c"))


@functools.cache
def _cfg() -> Settings:
    """Default settings, built on first use inside a test."""
    return settings()


def _view(now: float = T0, **changes: object) -> AppView:
    snap = snapshot(at=now, total=60, failures=0)
    base = AppView(app="svc", now=now, snapshot=snap, verify_snapshot=snap, hold=Hold(),
                   incident=None)
    return dataclasses.replace(base, **changes)


def _run(view: AppView, passes: int, machines: MachineFacts | None = ALL_DOWN) -> Decision:
    """``passes`` evaluations 5 s apart, each fed the previous decision's level and incident."""
    d = decide(dataclasses.replace(view, machines=machines), _cfg())
    for i in range(1, passes):
        inc = d.step.incident
        if inc is not None:
            inc = dataclasses.replace(inc, timeline=(*inc.timeline, *d.step.entries))
            inc = inc if inc.is_open else None
        d = decide(dataclasses.replace(view, now=view.now + 5 * i, hold=d.hold,
                                       incident=inc, floor=d.floor, machines=machines),
                   _cfg())
    return d


class TestDecide:
    def test_a_quiet_app_decides_nothing(self):
        """No fault: no severity, no incident, no entry."""
        d = decide(_view(), _cfg())
        assert d.assessment.severity is None and d.step.incident is None
        assert d.opens is None and not d.step.entries

    def test_one_bad_evaluation_does_not_open(self):
        """A first SEV-1 finding is held by the hysteresis: nothing opens yet."""
        d = decide(_view(machines=ALL_DOWN), _cfg())
        assert d.assessment.severity is Severity.SEV1
        assert d.opens is None and d.hold.level is None

    def test_a_confirmed_outage_opens_a_sev1_with_typed_findings(self):
        """All machines down for the SEV-1 evaluations opens a SEV-1 whose findings keep their
        reason and numbers."""
        need = _cfg().hysteresis.raise_evals(Severity.SEV1)
        d = _run(_view(), need)
        assert d.opens is not None and d.opens.severity is Severity.SEV1
        f = d.opens.findings[0]
        assert f.reason is Reason.ALL_MACHINES_DOWN and f.numbers["down"] == 3
        assert d.step.entries[0].event is Event.OPENED
        assert d.step.entries[0].findings == d.opens.findings

    def test_the_same_view_gives_the_same_decision(self):
        """decide is pure: the same view twice gives equal decisions."""
        view = dataclasses.replace(_view(), machines=ALL_DOWN,
                                   hold=Hold.at_level(Severity.SEV1, 3))
        assert decide(view, _cfg()) == decide(view, _cfg())

    def test_an_id_in_use_gives_the_next_one(self):
        """An ID the store already holds is skipped: the same view plus that ID opens the next."""
        need = _cfg().hysteresis.raise_evals(Severity.SEV1)
        d = _run(_view(), need)
        assert d.opens is not None
        again = decide(taken(d.view, d.opens.id), _cfg())
        assert again.opens is not None and again.opens.id == f"{d.opens.id}-2"

    def test_an_escalation_floor_holds_while_the_condition_lasts(self):
        """A SEV-2 raised to SEV-1 by the mitigation stage stays SEV-1 while SEV-2 findings
        last; the floor survives the decision."""
        partial = MachineFacts(at=T0, total=3, started_healthy=2, down=1, down_ids=("a",))
        d = _run(_view(), _cfg().hysteresis.raise_evals(Severity.SEV2) + 1, machines=partial)
        inc = d.step.incident
        assert inc is not None and inc.severity is Severity.SEV2
        inc = dataclasses.replace(inc, severity=Severity.SEV1,
                                  timeline=(*inc.timeline, *d.step.entries))
        later = decide(_view(now=T0 + 60, hold=d.hold, incident=inc, floor=Severity.SEV1,
                             machines=partial), _cfg())
        assert later.step.incident is not None
        assert later.step.incident.severity is Severity.SEV1
        assert not any(e.event is Event.DEESCALATED for e in later.step.entries)
        assert later.floor is Severity.SEV1

    def test_a_new_incident_drops_the_floor(self):
        """A floor left from a closed incident does not carry over to the next one."""
        need = _cfg().hysteresis.raise_evals(Severity.SEV1)
        d = _run(_view(floor=Severity.SEV1), need)
        assert d.opens is not None and d.floor is None

    @pytest.mark.parametrize("severity", [Severity.SEV1, Severity.SEV3])
    def test_an_inbound_signal_is_a_finding_of_its_own_severity(self, severity):
        """An operator or Alertmanager signal in the view is graded at its own severity."""
        view = _view(signals=(Signal(severity, "data corruption", "alertmanager"),))
        d = decide(view, _cfg())
        assert d.assessment.severity is severity
        assert d.assessment.findings[0].reason is Reason.OPERATOR_SIGNAL

    def test_signals_clear_moves_an_open_incident_to_monitoring(self):
        """With the steady level gone, an investigating incident starts verification."""
        need = _cfg().hysteresis.raise_evals(Severity.SEV1)
        d = _run(_view(), need)
        inc = d.step.incident
        assert inc is not None
        inc = dataclasses.replace(inc, timeline=(*inc.timeline, *d.step.entries))
        healthy = MachineFacts(at=T0, total=3, started_healthy=3, down=0)
        later = _run(dataclasses.replace(_view(now=T0 + 60), incident=inc, hold=d.hold),
                     _cfg().hysteresis.clear_evals + 1, machines=healthy)
        assert later.step.incident is not None
        assert later.step.incident.state is State.MONITORING
