"""The runbook's SEV table and the hysteresis around it."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdash_watch.classify import (
    Assessment,
    Hold,
    Reason,
    Signal,
    classify,
    debounce,
)
from hotdash_watch.config import HysteresisSettings, Thresholds
from hotdash_watch.model.severity import Severity
from hotdash_watch.probes.machines import MachineFacts
from tests.support.factories import snapshot

T = Thresholds()
S1, S2, S3 = Severity.SEV1, Severity.SEV2, Severity.SEV3


class TestErrorRate:
    @pytest.mark.parametrize(
        ("failures", "expected", "reason"),
        [
            (0, None, None),
            (4, None, None),  # 4 %
            (5, S3, Reason.ERROR_RATE_MINOR),  # exactly 5 %: SEV-3
            (9, S3, Reason.ERROR_RATE_MINOR),
            (10, S2, Reason.ERROR_RATE_MAJOR),  # exactly 10 %: SEV-2
            (50, S2, Reason.ERROR_RATE_MAJOR),  # exactly 50 %: still SEV-2 ("> 50 %" is SEV-1)
            (51, S1, Reason.ERROR_RATE_CRITICAL),
            (100, S1, Reason.ERROR_RATE_CRITICAL),
        ],
    )
    def test_boundaries(self, failures: int, expected: Severity | None, reason: Reason | None):
        """Each boundary of the runbook's error-rate bands lands in the documented band."""
        a = classify(snapshot(total=100, failures=failures), T, 1000.0)
        assert a.severity == expected
        assert [f.reason for f in a.findings] == ([reason] if reason else [])

    def test_reason_text_carries_numbers(self):
        """A finding names the measured rate, the counts and the threshold crossed."""
        a = classify(snapshot(total=20, failures=12), T, 1000.0)
        assert a.reasons == ("error rate 60.0 % over 60 s (12/20 probes) > 50.0 %",)
        assert a.evidence["error_ratio"] == 0.6

    def test_too_few_samples_is_inconclusive(self):
        """Below min_samples no ratio is judged and the assessment is inconclusive."""
        a = classify(snapshot(total=3, failures=3, p95_ms=None), T, 1000.0)
        assert a.severity is None
        assert not a.conclusive

    def test_watcher_side_failures_are_not_service_failures(self):
        """When only watcher-side failures are seen, the service is not judged at all."""
        a = classify(snapshot(total=0, failures=0, watcher_failures=12, p95_ms=None,
                              latency_samples=0), T, 1.0)
        assert a.severity is None
        assert a.watcher_side
        assert not a.conclusive


class TestLatency:
    @pytest.mark.parametrize(
        ("p95", "expected"),
        [(999.0, None), (1000.0, S3), (1500.0, S3), (2000.0, S3), (2000.5, S2), (9000.0, S2)],
    )
    def test_boundaries(self, p95: float, expected: Severity | None):
        """p95 1000-2000 ms is SEV-3 (both ends included); above 2000 ms is SEV-2."""
        assert classify(snapshot(p95_ms=p95), T, 1.0).severity == expected

    def test_worst_finding_wins(self):
        """Latency SEV-3 together with a SEV-1 error rate grades SEV-1 and keeps both reasons."""
        a = classify(snapshot(total=10, failures=6, p95_ms=1200.0), T, 1.0)
        assert a.severity is S1
        assert [f.reason for f in a.findings] == [Reason.ERROR_RATE_CRITICAL,
                                                  Reason.LATENCY_MINOR]


class TestMachinesAndSignals:
    @pytest.mark.parametrize(
        ("facts", "expected", "reason"),
        [
            (MachineFacts(at=1, total=3, started_healthy=0, down=3), S1, Reason.ALL_MACHINES_DOWN),
            (MachineFacts(at=1, total=3, started_healthy=2, down=1), S2, Reason.PARTIAL_OUTAGE),
            (MachineFacts(at=1, total=2, started_healthy=0, down=0, idle_stopped=2), None, None),
            (MachineFacts(at=1, total=2, started_healthy=2, down=0, oom_kills=1), S3,
             Reason.OOM_KILL_SINGLE),
            (MachineFacts(at=1, total=2, started_healthy=2, down=0, oom_kills=3), S2,
             Reason.OOM_KILLS_MULTIPLE),
            (MachineFacts(at=1, total=2, started_healthy=2, down=0,
                          autoscaling_problem="machines never stop when idle"), S3,
             Reason.AUTOSCALING),
        ],
    )
    def test_machine_rows(self, facts: MachineFacts, expected: Severity | None,
                          reason: Reason | None):
        """Machine facts map onto the runbook rows; autostopped machines are idle, not down."""
        a = classify(snapshot(), T, 1.0, machines=facts)
        assert a.severity == expected
        assert [f.reason for f in a.findings] == ([reason] if reason else [])

    def test_operator_signal(self):
        """An operator's data-corruption signal is SEV-1 whatever the probes say."""
        a = classify(snapshot(), T, 1.0, signals=[Signal(S1, "data corruption detected")])
        assert a.severity is S1
        assert a.findings[0].reason is Reason.OPERATOR_SIGNAL


def _a(sev: Severity | None, conclusive: bool = True) -> Assessment:
    return Assessment(app="svc", at=0.0, severity=sev, findings=(), evidence={},
                      conclusive=conclusive)


H = HysteresisSettings()  # raise 2 / 3 / 4 evaluations, clear after 12


def _run(seq: list[Severity | None]) -> list[Severity | None]:
    hold, levels = Hold(), []
    for sev in seq:
        hold = debounce(hold, _a(sev), H)
        levels.append(hold.level)
    return levels


class TestHysteresis:
    def test_raise_after_n_evaluations(self):
        """A SEV-1 condition counts after 2 evaluations, SEV-2 after 3, SEV-3 after 4."""
        assert _run([S1, S1]) == [None, S1]
        assert _run([S2] * 3) == [None, None, S2]
        assert _run([S3] * 4) == [None, None, None, S3]

    def test_escalation_is_not_delayed_by_lower_history(self):
        """A SEV-3 that turns SEV-1 escalates after SEV-1's own hold, not SEV-3's."""
        levels = _run([S3] * 4 + [S1, S1])
        assert levels[-3:] == [S3, S3, S1]

    def test_clear_needs_longer_absence(self):
        """A raised level stays until the condition has been absent for clear_evals."""
        levels = _run([S1, S1] + [None] * 12)
        assert levels[-2] is S1
        assert levels[-1] is None

    def test_deescalates_to_the_lower_confirmed_level(self):
        """SEV-1 that settles into a steady SEV-3 falls to SEV-3 after the clear period."""
        levels = _run([S1, S1] + [S3] * 12)
        assert levels[-2] is S1 and levels[-1] is S3

    def test_inconclusive_evaluations_change_nothing(self):
        """No data is not good news: inconclusive passes neither raise nor clear."""
        hold = Hold.at_level(S2, H.clear_evals)
        for _ in range(50):
            hold = debounce(hold, _a(None, conclusive=False), H)
        assert hold.level is S2

    @given(st.integers(min_value=1, max_value=200))
    def test_flapping_never_opens(self, cycles: int):
        """A signal alternating bad/good each evaluation never reaches a level."""
        assert set(_run([S1, None] * cycles)) == {None}

    @given(st.lists(st.sampled_from([S1, S2, S3, None]), max_size=80))
    def test_level_changes_only_after_a_hold(self, seq: list[Severity | None]):
        """Whenever the level rises to L, the last raise_evals(L) raw severities were >= L."""
        levels = _run(seq)
        prev = None
        for i, lvl in enumerate(levels):
            if lvl is not None and lvl.worse_than(prev):
                n = H.raise_evals(lvl)
                window = seq[max(0, i - n + 1): i + 1]
                assert len(window) == n
                assert all(s is not None and s.rank >= lvl.rank for s in window)
            prev = lvl


def _traffic(requests: float, errors: float, p95: float | None = 80.0, over_s: float = 60.0):
    from hotdash_watch.probes.prometheus import TrafficFacts

    return TrafficFacts(requests, errors, errors / requests if requests else None, p95, over_s)


HEALTHY = MachineFacts(at=1, total=2, started_healthy=2, down=0)


class TestSources:
    def test_real_traffic_is_preferred_over_probes(self):
        """With enough edge requests, their error rate grades the app, not the probes'."""
        a = classify(snapshot(total=20, failures=0), T, 1.0, traffic=_traffic(300, 120))
        assert a.severity is S2
        assert "edge requests" in a.reasons[0]
        assert a.evidence["traffic"]["error_ratio"] == 0.4

    def test_thin_traffic_falls_back_to_probes(self):
        """A handful of edge requests is too thin for a ratio: the probes stand in."""
        a = classify(snapshot(total=20, failures=12), T, 1.0, traffic=_traffic(4, 0))
        assert a.severity is S1 and "probes" in a.reasons[0]

    def test_unreachable_service_with_healthy_machines_is_watcher_side(self):
        """Probes that cannot connect while the Machines API reports every machine started
        and passing point at the watcher: no service finding, watcher_side set."""
        snap = dataclasses.replace(snapshot(total=20, failures=20),
                                   failure_kinds=(("timeout", 12), ("connect", 8)))
        a = classify(snap, T, 1.0, machines=HEALTHY)
        assert a.severity is None and a.watcher_side
        assert "Machines API reports 2/2" in a.evidence["watcher_side"][0]

    def test_unreachable_service_with_healthy_traffic_is_watcher_side(self):
        """Probes that cannot connect while real edge traffic is served normally: the watcher
        is blind, the service is fine."""
        snap = dataclasses.replace(snapshot(total=20, failures=20),
                                   failure_kinds=(("timeout", 20),))
        a = classify(snap, T, 1.0, traffic=_traffic(300, 0))
        assert a.severity is None and a.watcher_side
        assert "edge is served normally" in a.evidence["watcher_side"][0]

    def test_5xx_answers_are_never_watcher_side(self):
        """A service that answers 5xx was reached: its errors count even if Fly says healthy."""
        a = classify(snapshot(total=20, failures=20), T, 1.0, machines=HEALTHY)
        assert a.severity is S1 and not a.watcher_side

    def test_fly_unreachable_and_probes_failing(self):
        """When neither the service nor Fly can be reached, the severity stands (page) but
        the assessment is watcher-side (never mitigate)."""
        snap = dataclasses.replace(snapshot(total=20, failures=20),
                                   failure_kinds=(("connect", 20),))
        a = classify(snap, T, 1.0, fly_reachable=False)
        assert a.severity is S1 and a.watcher_side


class TestAutoscaling:
    def test_machines_never_stop_when_idle(self):
        """Autostop on, several machines started for longer than idle_stop_after_s at almost
        no traffic: SEV-3 auto-scaling misbehaving."""
        m = MachineFacts(at=5000.0, total=3, started_healthy=3, down=0, autostop=True,
                         min_running=1, started_since=1000.0)
        a = classify(snapshot(), T, 5000.0, machines=m, traffic=_traffic(12, 0))
        assert a.severity is S3 and a.findings[0].reason is Reason.AUTOSCALING
        assert "never stop when idle" in a.reasons[0]

    def test_not_before_the_idle_period(self):
        """Machines started recently are not yet a finding."""
        m = MachineFacts(at=5000.0, total=3, started_healthy=3, down=0, autostop=True,
                         min_running=1, started_since=4700.0)
        assert classify(snapshot(), T, 5000.0, machines=m, traffic=_traffic(12, 0)).severity \
            is None

    def test_requests_fail_while_all_stopped(self):
        """Every machine idle-stopped, autostart on, and requests failing: SEV-3 finding
        besides the error rate."""
        m = MachineFacts(at=1, total=2, started_healthy=0, down=0, idle_stopped=2)
        a = classify(snapshot(total=20, failures=3), T, 1.0, machines=m)
        assert Reason.AUTOSCALING in [f.reason for f in a.findings]
        assert "do not start on request" in " ".join(a.reasons)
