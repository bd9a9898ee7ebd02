"""The runbook's mitigation table (Phase 2 and Scenarios 1-5): situation in, ordered plan out."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.findings import Reason
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import (
    STOPPED,
    MachineView,
    Plan,
    Situation,
    Step,
    Why,
    next_memory_mb,
    plan,
)
from tests.unit.mitigation_factories import (
    APP,
    BAD,
    GOOD,
    NOW,
    OLD,
    OPENED,
    RECENT_S,
    crashed,
    crashed_again,
    failing,
    healthy,
    idle,
    record,
    release,
    settings,
    situation,
    spare,
    standby,
    summary,
)

K, W, R = ActionKind, Why, Reason
S1, S2, S3 = Severity.SEV1, Severity.SEV2, Severity.SEV3
ERRORS = (R.ERROR_RATE_CRITICAL, R.ERROR_RATE_MAJOR, R.ERROR_RATE_MINOR)
FAILING = (*ERRORS, R.ALL_MACHINES_DOWN, R.PARTIAL_OUTAGE)
LATENCY = (R.LATENCY_MAJOR, R.LATENCY_MINOR)
TRIED = (Outcome.STARTED, Outcome.OK, Outcome.FAILED)  # reached Fly; a dry-run did not


def steps_of(s: Situation, **overrides: object) -> list[tuple[ActionKind, str, Why]]:
    """The plan for ``s`` at the default settings (with ``overrides``), as table rows."""
    return summary(plan(s, settings(**overrides), RECENT_S).steps)


def only(s: Situation, **overrides: object) -> Step:
    """The single step the plan holds for ``s``."""
    (one,) = plan(s, settings(**overrides), RECENT_S).steps
    return one


class TestWatcherSide:
    @pytest.mark.parametrize("reasons", [(R.ALL_MACHINES_DOWN,), ERRORS, (R.OPERATOR_SIGNAL,)])
    def test_nothing_is_ours_to_do(self, reasons: tuple[Reason, ...]):
        """When the failure is on the watcher's side the plan is empty, whatever the reasons."""
        s = situation(*reasons, machines=(crashed("m1"), failing("m2")), current=BAD,
                      rollback_to=GOOD, severity=S1, watcher_side=True)
        p = plan(s, settings(allow_scale_to_zero=True), RECENT_S)
        assert p == Plan()
        assert not p


class TestOperatorSignal:
    def test_only_a_page(self):
        """An operator or inbound alert is paged and nothing else is planned, even with crashed
        machines and a suspect release."""
        s = situation(R.OPERATOR_SIGNAL, R.ALL_MACHINES_DOWN, R.OOM_KILLS_MULTIPLE,
                      machines=(crashed("m1", oom_kills=3), failing("m2")), current=BAD,
                      rollback_to=GOOD, severity=S1)
        assert steps_of(s, allow_scale_to_zero=True) == [(K.PAGE, APP, W.OPERATOR_SIGNAL)]


class TestDependencyFailure:
    @pytest.mark.parametrize("reason", FAILING)
    def test_paged_never_restarted(self, reason: Reason):
        """Errors or an outage with dependency hints in the logs page a person and plan no
        restart, start or rollback, even soon after a release."""
        s = situation(reason, machines=(crashed("m1"), failing("m2"), healthy("m3")),
                      current=BAD, rollback_to=GOOD, severity=S1,
                      dependency_hints=("supabase", "openai"))
        step = only(s)
        assert (step.kind, step.why) == (K.PAGE, W.DEPENDENCY)
        assert "supabase, openai" in step.text

    def test_hints_without_failures_do_not_page_a_dependency(self):
        """Dependency hints alone (no errors, no outage) are not a dependency failure."""
        s = situation(R.LATENCY_MAJOR, machines=(healthy("m1"), spare("m2")),
                      dependency_hints=("supabase",))
        assert steps_of(s) == [(K.SCALE_OUT, "m2", W.LATENCY_SCALE_OUT)]


class TestMachinesDown:
    @pytest.mark.parametrize(
        ("machines", "expected"),
        [
            pytest.param((crashed("m2"), crashed("m1")), ["m1", "m2"], id="all-down-by-id"),
            pytest.param((crashed("m1", state="failed"), crashed("m2", state="suspended")),
                         ["m1", "m2"], id="failed-and-suspended-states"),
            pytest.param((crashed("m1"), standby("s1"), idle("i1"), healthy("m2")), ["m1"],
                         id="never-standby-or-idle"),
        ],
    )
    def test_start_each_down_machine_in_order(self, machines: tuple[MachineView, ...],
                                              expected: list[str]):
        """Machines stopped after a crash are started one per step, ordered by id; standby and
        autostopped machines are left alone."""
        s = situation(R.ALL_MACHINES_DOWN, machines=machines, current=OLD, severity=S1)
        assert steps_of(s) == [(K.START, m, W.MACHINE_DOWN) for m in expected]

    def test_first_crash_after_a_release_is_started_not_rolled_back(self):
        """A recent release alone does not roll back: the first answer to a crash is a start."""
        s = situation(R.ALL_MACHINES_DOWN, machines=(crashed("m1"),), current=BAD,
                      rollback_to=GOOD, severity=S1)
        assert steps_of(s) == [(K.START, "m1", W.MACHINE_DOWN)]

    @pytest.mark.parametrize(
        ("machines", "history"),
        [
            pytest.param((crashed("m1"), crashed("m2")), (crashed_again("m1"),),
                         id="our-start-crashed-again"),
            pytest.param((crashed("m1", fly_restarts=2), crashed("m2")), (),
                         id="fly-supervisor-restarts"),
        ],
    )
    def test_crashed_again_after_a_release_rolls_back_once(
            self, machines: tuple[MachineView, ...], history: tuple[ActionRecord, ...]):
        """A machine that came back and crashed again soon after a release gives exactly one
        rollback to the known-healthy release, and no start."""
        s = situation(R.ALL_MACHINES_DOWN, machines=machines, current=BAD, rollback_to=GOOD,
                      history=history, severity=S1)
        step = only(s)
        assert (step.kind, step.target, step.why) == (K.ROLLBACK, APP,
                                                      W.CRASHED_AFTER_RELEASE)
        assert step.params == {"version": 6, "image": GOOD.image, "from_version": 7,
                               "from_image": BAD.image}
        assert "m1 crashed again" in step.text

    def test_crashed_again_without_a_release_pages_and_keeps_starting(self):
        """Without a recent release, a machine that crashes again pages "restarts do not hold"
        and the starts stay in the plan (the restart budget stops them), the crashed one last."""
        s = situation(R.ALL_MACHINES_DOWN, machines=(crashed("m1", fly_restarts=1),
                                                     crashed("m2")),
                      current=OLD, rollback_to=release(6, 100_000.0), severity=S1)
        assert steps_of(s) == [(K.PAGE, APP, W.RESTARTS_DO_NOT_HOLD),
                               (K.START, "m2", W.MACHINE_DOWN),
                               (K.START, "m1", W.MACHINE_DOWN)]

    @pytest.mark.parametrize("outcome", TRIED)
    def test_no_second_rollback(self, outcome: Outcome):
        """Once a rollback was started, done or failed in this incident, a crash again
        pages "restarts do not hold" and starts instead of proposing another rollback."""
        s = situation(R.ALL_MACHINES_DOWN, machines=(crashed("m1"),), current=BAD,
                      rollback_to=GOOD, severity=S1,
                      history=(record(K.ROLLBACK, APP, outcome, ago_s=250.0),
                               crashed_again("m1", ago_s=100.0)))
        assert steps_of(s) == [(K.PAGE, APP, W.RESTARTS_DO_NOT_HOLD),
                               (K.START, "m1", W.MACHINE_DOWN)]

    @pytest.mark.parametrize("outcome", [Outcome.VETOED, Outcome.DEFERRED, Outcome.DRY_RUN])
    def test_a_rollback_not_carried_out_is_not_tried(self, outcome: Outcome):
        """A vetoed, deferred or dry-run rollback changed nothing, so it is proposed again (a
        dry-run's record is kept once, so this repeats nothing)."""
        s = situation(R.ALL_MACHINES_DOWN, machines=(crashed("m1"),), current=BAD,
                      rollback_to=GOOD, severity=S1,
                      history=(record(K.ROLLBACK, APP, outcome), crashed_again("m1")))
        assert steps_of(s) == [(K.ROLLBACK, APP, W.CRASHED_AFTER_RELEASE)]

    def test_a_failed_start_that_did_not_crash_is_no_crash_again(self):
        """A start that failed without ``crashed_again`` (Fly refused it) is simply retried."""
        s = situation(R.ALL_MACHINES_DOWN, machines=(crashed("m1"),), current=BAD,
                      rollback_to=GOOD, severity=S1,
                      history=(record(K.START, "m1", Outcome.FAILED, ago_s=200.0),))
        assert steps_of(s) == [(K.START, "m1", W.MACHINE_DOWN)]

    def test_fly_restarts_of_a_serving_machine_are_no_crash_again(self):
        """Supervisor restarts of a machine that is serving again do not make the release a
        suspect."""
        s = situation(R.PARTIAL_OUTAGE, machines=(crashed("m1"), healthy("m2", fly_restarts=2)),
                      current=BAD, rollback_to=GOOD)
        assert steps_of(s) == [(K.START, "m1", W.MACHINE_DOWN)]


class TestErrors:
    @pytest.mark.parametrize("reason", ERRORS)
    def test_soon_after_a_release_rolls_back(self, reason: Reason):
        """Errors soon after a release give one rollback to the known-healthy release, carrying
        its version and image and the version it leaves."""
        s = situation(reason, machines=(healthy("m1"), failing("m2")), current=BAD,
                      rollback_to=GOOD)
        step = only(s)
        assert (step.kind, step.target, step.why) == (K.ROLLBACK, APP, W.ERRORS_AFTER_RELEASE)
        assert step.params == {"version": 6, "image": GOOD.image, "from_version": 7,
                               "from_image": BAD.image}
        assert "errors began soon after release v7" in step.text

    def test_failing_checks_soon_after_a_release_roll_back(self):
        """A machine failing its own checks soon after a release (no error-rate finding) also
        points at the release."""
        s = situation(R.PARTIAL_OUTAGE, machines=(healthy("m1"), failing("m2")), current=BAD,
                      rollback_to=GOOD)
        step = only(s)
        assert (step.kind, step.why) == (K.ROLLBACK, W.ERRORS_AFTER_RELEASE)
        assert "machines fail their checks" in step.text

    @pytest.mark.parametrize(
        ("age_at_open_s", "rolls_back"),
        [
            pytest.param(0.0, True, id="deployed-as-it-opened"),
            pytest.param(RECENT_S, True, id="exactly-recent_release_s"),
            pytest.param(RECENT_S + 1, False, id="older"),
            pytest.param(-60.0, False, id="deployed-after-it-opened"),
        ],
    )
    def test_what_counts_as_a_recent_release(self, age_at_open_s: float, rolls_back: bool):
        """A release is a suspect when deployed before the incident opened and at most
        ``recent_release_s`` before it."""
        s = situation(R.ERROR_RATE_MAJOR, machines=(healthy("m1"), failing("m2")),
                      current=release(7, age_at_open_s), rollback_to=GOOD)
        expected = ((K.ROLLBACK, APP, W.ERRORS_AFTER_RELEASE) if rolls_back
                    else (K.RESTART, "m2", W.CHECKS_FAILING))
        assert steps_of(s) == [expected]

    @pytest.mark.parametrize(
        ("current", "history"),
        [
            pytest.param(OLD, (), id="no-recent-release"),
            pytest.param(None, (), id="release-unknown"),
            pytest.param(BAD, (record(K.ROLLBACK, APP, Outcome.OK),), id="already-rolled-back"),
        ],
    )
    def test_restart_only_the_machines_whose_checks_fail(
            self, current: object, history: tuple[ActionRecord, ...]):
        """Without a release to blame, only the started machines whose own checks fail are
        restarted, in machine order; healthy machines are not touched."""
        s = situation(R.ERROR_RATE_MAJOR,
                      machines=(healthy("m1"), failing("m2"), healthy("m3"), failing("m4")),
                      current=current, rollback_to=GOOD, history=history)
        assert steps_of(s) == [(K.RESTART, "m2", W.CHECKS_FAILING),
                               (K.RESTART, "m4", W.CHECKS_FAILING)]

    def test_none_failing_pages_no_safe_action(self):
        """Errors while every machine passes its checks and no release explains them: page, do
        not restart healthy machines."""
        s = situation(R.ERROR_RATE_MAJOR, machines=(healthy("m1"), healthy("m2")), current=OLD)
        step = only(s)
        assert (step.kind, step.why) == (K.PAGE, W.NO_SAFE_ACTION)

    @pytest.mark.parametrize(
        "kw",
        [
            pytest.param({"busy": True}, id="an-action-runs"),
            pytest.param({"machines": (healthy("m1"), MachineView("m2", "starting"))},
                         id="machine-starting"),
            pytest.param({"machines": (healthy("m1"), MachineView("m2", "replacing"))},
                         id="machine-replacing"),
            pytest.param({"history": (record(K.RESTART, "m1", ago_s=100.0, took_s=20.0),)},
                         id="restart-ended-80s-ago"),
            pytest.param({"history": (record(K.ROLLBACK, APP, Outcome.FAILED, ago_s=119.0,
                                             took_s=None),)},
                         id="rollback-began-119s-ago"),
            pytest.param({"history": (record(K.RAISE_MEMORY, "m1", Outcome.STARTED,
                                             ago_s=30.0, took_s=None),)},
                         id="raise-in-progress"),
        ],
    )
    def test_no_page_while_settling(self, kw: dict[str, object]):
        """While an action runs, a machine is in flux or a Fly action ended less than
        ``recovery_check_s`` ago, errors may be the tail of a fix: no "no safe action" page."""
        base: dict[str, object] = {"machines": (healthy("m1"), healthy("m2")), "current": OLD}
        s = situation(R.ERROR_RATE_MAJOR, **{**base, **kw})
        assert s.settling(settings().recovery_check_s)
        assert steps_of(s) == []

    @pytest.mark.parametrize(
        "history",
        [
            pytest.param((record(K.RESTART, "m1", ago_s=150.0, took_s=30.0),),
                         id="restart-ended-exactly-recovery_check_s-ago"),
            pytest.param((record(K.PAGE, APP, ago_s=10.0, took_s=0.0),), id="a-page"),
            pytest.param((record(K.RESTART, "m1", Outcome.VETOED, ago_s=10.0, took_s=0.0),),
                         id="a-veto"),
            pytest.param((record(K.RESTART, "m1", Outcome.DRY_RUN, ago_s=10.0, took_s=0.0),),
                         id="a-dry-run"),
        ],
    )
    def test_settled_again(self, history: tuple[ActionRecord, ...]):
        """Pages, vetoes, dry runs and actions ended ``recovery_check_s`` ago or more do not
        hold the "no safe action" page back."""
        s = situation(R.ERROR_RATE_MAJOR, machines=(healthy("m1"), healthy("m2")), current=OLD,
                      history=history)
        assert not s.settling(settings().recovery_check_s)
        assert steps_of(s) == [(K.PAGE, APP, W.NO_SAFE_ACTION)]

    def test_no_safe_action_is_not_paged_beside_a_safe_action(self):
        """Errors with high latency and a spare: the spare is started and no "no safe action"
        page contradicts it."""
        s = situation(R.ERROR_RATE_MAJOR, R.LATENCY_MAJOR, machines=(healthy("m1"), spare("m2")),
                      current=OLD)
        assert steps_of(s) == [(K.SCALE_OUT, "m2", W.LATENCY_SCALE_OUT)]

    def test_down_machines_are_started_before_errors_are_judged(self):
        """With a crashed machine and errors, the crashed machine is started and no "no safe
        action" page is sent."""
        s = situation(R.ERROR_RATE_MAJOR, R.PARTIAL_OUTAGE,
                      machines=(crashed("m1"), healthy("m2")), current=OLD)
        assert steps_of(s) == [(K.START, "m1", W.MACHINE_DOWN)]


class TestLatency:
    @pytest.mark.parametrize("reason", LATENCY)
    def test_scale_out_to_a_stopped_spare(self, reason: Reason):
        """High latency with a stopped machine that is not down starts that one spare."""
        s = situation(reason, machines=(healthy("m1"), spare("m2"), spare("m3")), severity=S3)
        assert steps_of(s) == [(K.SCALE_OUT, "m2", W.LATENCY_SCALE_OUT)]

    def test_an_autostopped_machine_is_a_spare(self):
        """An autostopped (idle) machine is capacity too: it is started for latency."""
        s = situation(R.LATENCY_MAJOR, machines=(healthy("m1"), idle("i1")))
        assert steps_of(s) == [(K.SCALE_OUT, "i1", W.LATENCY_SCALE_OUT)]

    @pytest.mark.parametrize("reason", LATENCY)
    def test_without_a_spare_raise_memory_of_each_started_machine(self, reason: Reason):
        """Without a spare, each started machine's memory is raised one step; a standby machine
        is not a spare."""
        s = situation(reason, machines=(
            healthy("m1"), healthy("m2", memory_mb=1024),
            MachineView("s1", "stopped", healthy=False, standby=True)))
        p = plan(s, settings(), RECENT_S)
        assert summary(p.steps) == [(K.RAISE_MEMORY, "m1", W.LATENCY_MEMORY),
                                    (K.RAISE_MEMORY, "m2", W.LATENCY_MEMORY)]
        assert [st.params for st in p.steps] == [{"memory_mb": 1024, "from_mb": 512},
                                                 {"memory_mb": 2048, "from_mb": 1024}]

    def test_memory_at_the_cap_pages(self):
        """When every started machine is at the memory cap, a person is paged, naming the cap's
        setting."""
        s = situation(R.LATENCY_MAJOR, machines=(healthy("m1", memory_mb=2048),
                                                 healthy("m2", memory_mb=2048)))
        step = only(s)
        assert (step.kind, step.why) == (K.PAGE, W.MEMORY_AT_CAP)
        assert "m1, m2" in step.text
        assert "2048 MB, mitigation.memory_cap_mb" in step.text

    def test_a_machine_at_the_cap_does_not_stop_the_others(self):
        """A machine already at the cap is skipped while another can still be raised."""
        s = situation(R.LATENCY_MAJOR, machines=(healthy("m1", memory_mb=2048), healthy("m2")))
        assert steps_of(s) == [(K.RAISE_MEMORY, "m2", W.LATENCY_MEMORY)]

    def test_down_machines_come_first(self):
        """With a crashed machine, latency is not answered by scale-out or memory: the crashed
        machine is started."""
        s = situation(R.LATENCY_MAJOR, R.PARTIAL_OUTAGE,
                      machines=(healthy("m1"), crashed("m2"), spare("m3")))
        assert steps_of(s) == [(K.START, "m2", W.MACHINE_DOWN)]


class TestOomKills:
    def test_multiple_raise_memory_of_the_killed_machines_out_of_service_first(self):
        """Repeated OOM kills raise the memory of the machines that were killed, those out of
        service first; they are not restarted (a restart would only be killed again)."""
        s = situation(R.OOM_KILLS_MULTIPLE, R.PARTIAL_OUTAGE, machines=(
            healthy("m1", oom_kills=2), failing("m2", oom_kills=1), healthy("m3"),
            crashed("m4", oom_kills=3)))
        p = plan(s, settings(), RECENT_S)
        assert summary(p.steps) == [(K.RAISE_MEMORY, "m2", W.OOM_MEMORY),
                                    (K.RAISE_MEMORY, "m4", W.OOM_MEMORY),
                                    (K.RAISE_MEMORY, "m1", W.OOM_MEMORY)]
        assert {st.params["memory_mb"] for st in p.steps} == {1024}

    def test_without_per_machine_counts_every_started_machine_is_raised(self):
        """When the kills are not attributed to machines, every started machine is raised."""
        s = situation(R.OOM_KILLS_MULTIPLE, machines=(healthy("m1"), healthy("m2"), spare("m3")))
        assert steps_of(s) == [(K.RAISE_MEMORY, "m1", W.OOM_MEMORY),
                               (K.RAISE_MEMORY, "m2", W.OOM_MEMORY)]

    @pytest.mark.parametrize(
        ("outcome", "last_oom_ago_s", "raised_again"),
        [
            pytest.param(Outcome.OK, None, False, id="raised-no-kill-since"),
            pytest.param(Outcome.OK, 700.0, False, id="raised-kill-before-the-raise"),
            pytest.param(Outcome.OK, 100.0, True, id="raised-killed-again-since"),
            pytest.param(Outcome.FAILED, None, True, id="raise-failed"),
        ],
    )
    def test_a_raised_machine_is_raised_again_only_if_killed_since(
            self, outcome: Outcome, last_oom_ago_s: float | None, raised_again: bool):
        """A machine whose memory was raised is raised again only when an OOM kill came after
        that raise ended; a failed raise does not count."""
        last = None if last_oom_ago_s is None else NOW - last_oom_ago_s
        s = situation(R.OOM_KILLS_MULTIPLE,
                      machines=(healthy("m1", memory_mb=1024, oom_kills=3, last_oom_at=last),),
                      history=(record(K.RAISE_MEMORY, "m1", outcome, ago_s=600.0, took_s=30.0),))
        expected = [(K.RAISE_MEMORY, "m1", W.OOM_MEMORY)] if raised_again else []
        assert steps_of(s) == expected

    def test_at_the_cap_pages(self):
        """Repeated OOM kills of a machine already at the cap page a person to look for the
        leak."""
        s = situation(R.OOM_KILLS_MULTIPLE, machines=(healthy("m1", memory_mb=2048, oom_kills=2),))
        step = only(s)
        assert (step.kind, step.why) == (K.PAGE, W.MEMORY_AT_CAP)
        assert "repeated OOM kills" in step.text

    def test_single_kill_is_watched(self):
        """A single OOM kill is recorded and watched (SEV-3): a page, no action."""
        s = situation(R.OOM_KILL_SINGLE, machines=(healthy("m1", oom_kills=1),), severity=S3)
        assert steps_of(s) == [(K.PAGE, APP, W.OOM_WATCH)]

    def test_single_kill_after_a_raise_is_not_paged_again(self):
        """After memory was already raised in this incident, a single kill adds no page."""
        s = situation(R.OOM_KILL_SINGLE, machines=(healthy("m1", oom_kills=1),), severity=S3,
                      history=(record(K.RAISE_MEMORY, "m1"),))
        assert steps_of(s) == []

    def test_a_machine_is_raised_once_per_plan(self):
        """With OOM kills and high latency together, each machine gets one memory raise."""
        s = situation(R.OOM_KILLS_MULTIPLE, R.LATENCY_MAJOR,
                      machines=(healthy("m1", oom_kills=3), healthy("m2")))
        raised = [st.target for st in plan(s, settings(), RECENT_S).steps
                  if st.kind is K.RAISE_MEMORY]
        assert sorted(raised) == ["m1", "m2"]


class TestAutoscaling:
    def test_recorded_and_paged(self):
        """Auto-scaling misbehaving is paged at SEV-3 and nothing is changed."""
        s = situation(R.AUTOSCALING, machines=(healthy("m1"), idle("i1")), severity=S3)
        step = only(s)
        assert (step.kind, step.why) == (K.PAGE, W.AUTOSCALING)
        assert "auto_stop_machines" in step.text

    @pytest.mark.parametrize("reason", [
        R.ALL_MACHINES_DOWN,
        R.ERROR_RATE_CRITICAL,
    ])
    def test_start_one_when_requests_fail_while_all_are_stopped(self, reason: Reason):
        """When requests fail while every machine is autostopped, one machine is started, then
        the page follows."""
        s = situation(R.AUTOSCALING, reason, machines=(idle("i1"), idle("i2")), severity=S1)
        assert steps_of(s) == [(K.START, "i1", W.AUTOSCALING_START),
                               (K.PAGE, APP, W.AUTOSCALING)]

    def test_no_start_while_requests_succeed(self):
        """Every machine stopped but no request failing: page only."""
        s = situation(R.AUTOSCALING, machines=(idle("i1"), idle("i2")), severity=S3)
        assert steps_of(s) == [(K.PAGE, APP, W.AUTOSCALING)]


class TestScaleToZero:
    def test_sev1_with_nothing_to_do_proposes_it_in_a_page(self):
        """A SEV-1 with no Fly step proposes scale to zero in a page (never done by default)."""
        s = situation(R.ERROR_RATE_CRITICAL, machines=(healthy("m1"), healthy("m2")),
                      current=OLD, severity=S1)
        p = plan(s, settings(), RECENT_S)
        assert summary(p.steps) == [(K.PAGE, APP, W.NO_SAFE_ACTION),
                                    (K.PAGE, APP, W.SCALE_TO_ZERO)]
        assert "fly scale count 0 -a svc" in p.steps[-1].text
        assert "mitigation.allow_scale_to_zero" in p.steps[-1].text
        assert p.actions == ()

    def test_allowed_it_stops_each_started_machine(self):
        """With ``allow_scale_to_zero`` the last resort stops each started, non-standby
        machine."""
        s = situation(R.ERROR_RATE_CRITICAL, machines=(
            healthy("m1"), healthy("m2"), spare("m3"),
            MachineView("s1", "started", standby=True)), current=OLD, severity=S1)
        assert steps_of(s, allow_scale_to_zero=True) == [
            (K.PAGE, APP, W.NO_SAFE_ACTION), (K.STOP, "m1", W.SCALE_TO_ZERO),
            (K.STOP, "m2", W.SCALE_TO_ZERO)]

    @pytest.mark.parametrize(
        ("severity", "machines"),
        [
            pytest.param(S2, (healthy("m1"),), id="sev2"),
            pytest.param(S1, (failing("m1"), healthy("m2")), id="sev1-with-a-restart"),
        ],
    )
    def test_not_proposed_otherwise(self, severity: Severity, machines: tuple[MachineView, ...]):
        """Below SEV-1, or when the plan holds a Fly step, scale to zero is not mentioned."""
        s = situation(R.ERROR_RATE_CRITICAL, machines=machines, current=OLD, severity=severity)
        whys = [why for _, _, why in steps_of(s, allow_scale_to_zero=True)]
        assert W.SCALE_TO_ZERO not in whys


class TestTexts:
    def test_raise_memory_names_the_fly_toml_change(self):
        """A memory raise says it lasts until the next deploy and names the fly.toml ``[[vm]]``
        memory setting that keeps it."""
        s = situation(R.OOM_KILLS_MULTIPLE, machines=(healthy("m1", oom_kills=2),))
        text = only(s).text
        assert "512 -> 1024 MB" in text
        assert "until the next deploy" in text
        assert '`[[vm]] memory = "1024mb"`' in text
        assert "fly.toml" in text

    def test_rollback_says_config_and_secrets_are_kept(self):
        """A rollback names both versions, says it keeps today's config and secrets and that
        the next deploy rolls forward."""
        s = situation(R.ERROR_RATE_MAJOR, machines=(healthy("m1"),), current=BAD,
                      rollback_to=GOOD)
        text = only(s).text
        assert "v7 -> v6" in text
        assert "keeps today's config and secrets" in text
        assert "next deploy rolls forward" in text

    def test_rollback_without_a_known_healthy_release_carries_no_target(self):
        """Without a release known healthy, the rollback is still planned but names no target,
        so the rollback_target guard vetoes (and pages) it; the restarts that follow it in the
        plan are not lost."""
        s = situation(R.ERROR_RATE_MAJOR, machines=(failing("m1"), healthy("m2")), current=BAD)
        step, *rest = plan(s, settings(), RECENT_S).steps
        assert [(r.kind, r.target) for r in rest] == [(K.RESTART, "m1")]
        assert step.kind is K.ROLLBACK
        assert step.params == {"from_version": 7, "from_image": BAD.image}
        assert "no earlier release is known healthy" in step.text

    @pytest.mark.parametrize(
        ("step", "key"),
        [
            (Step(K.RAISE_MEMORY, "m1", W.OOM_MEMORY, "", {"memory_mb": 1024}),
             "raise_memory:m1:oom_kills_memory:1024"),
            (Step(K.ROLLBACK, APP, W.ERRORS_AFTER_RELEASE, "", {"version": 6}),
             "rollback:svc:errors_after_release:6"),
            (Step(K.PAGE, APP, W.NO_SAFE_ACTION, ""), "page:svc:no_safe_action:"),
        ],
    )
    def test_step_key(self, step: Step, key: str):
        """A step's key names its kind, target, reason and the size or version it goes to."""
        assert step.key == key


class TestNextMemory:
    @pytest.mark.parametrize(
        ("current", "cpu_kind", "cpus", "factor", "cap", "expected"),
        [
            (256, "shared", 1, 2.0, 2048, 512),
            (512, "shared", 1, 2.0, 2048, 1024),
            (1024, "shared", 1, 2.0, 2048, 2048),
            (2048, "shared", 1, 2.0, 2048, None),  # at the cap
            (1536, "shared", 1, 2.0, 2048, 2048),  # clipped to the cap
            (700, "shared", 1, 2.0, 4096, 1536),  # rounded up to a multiple of 256
            (512, "shared", 1, 1.5, 2048, 768),
            (512, "shared", 1, 1.1, 2048, 768),
            (2048, "shared", 1, 2.0, 8192, None),  # shared: at most 2048 MB per CPU
            (2048, "shared", 2, 2.0, 8192, 4096),
            (512, "shared", 1, 2.0, 1000, 768),  # the cap rounded down to 256
            (4096, "shared", 1, 2.0, 2048, None),  # above the cap already
            (0, "shared", 1, 2.0, 2048, 256),  # unknown size: the smallest
            (2048, "performance", 1, 2.0, 16384, 4096),
            (3000, "performance", 1, 2.0, 16384, 6144),  # multiples of 1024
            (8192, "performance", 1, 2.0, 16384, None),  # performance: 8192 MB per CPU
            (8192, "performance", 2, 2.0, 16384, 16384),
            (2048, "performance", 1, 2.0, 3000, None),  # cap rounds down to 2048
        ],
    )
    def test_sizes(self, current: int, cpu_kind: str, cpus: int, factor: float, cap: int,
                   expected: int | None):
        """The next size is ``current * factor`` rounded up to Fly's unit for the CPU kind,
        within the cap and the per-CPU maximum; None when there is no room."""
        assert next_memory_mb(current, cpu_kind, cpus, factor, cap) == expected

    @given(current=st.integers(0, 40_000), cpu_kind=st.sampled_from(["shared", "performance"]),
           cpus=st.integers(1, 16), factor=st.floats(1.01, 8.0), cap=st.integers(256, 131_072))
    def test_result_is_a_valid_larger_size_or_none(self, current: int, cpu_kind: str,
                                                    cpus: int, factor: float, cap: int):
        """The result is None exactly when no valid size above ``current`` fits, else a
        multiple of the unit above ``current``, within the cap and the per-CPU maximum."""
        unit, per_cpu = (1024, 8192) if cpu_kind == "performance" else (256, 2048)
        ceiling = min(cap, per_cpu * cpus) // unit * unit
        new = next_memory_mb(current, cpu_kind, cpus, factor, cap)
        if new is None:
            assert ceiling <= current
        else:
            assert current < new <= ceiling
            assert new % unit == 0


# -- properties over any situation --------------------------------------------------------------

MACHINE_IDS = ("m1", "m2", "m3", "m4")
BUILDERS = (healthy, failing, crashed, idle, spare, standby,
            lambda mid, **kw: MachineView(mid, "starting", healthy=False, **kw))


@st.composite
def machines(draw: st.DrawFn) -> tuple[MachineView, ...]:
    ids = draw(st.lists(st.sampled_from(MACHINE_IDS), unique=True, max_size=4))
    return tuple(draw(st.sampled_from(BUILDERS))(
        mid, memory_mb=draw(st.sampled_from([256, 512, 1024, 2048])),
        oom_kills=draw(st.integers(0, 3)), fly_restarts=draw(st.integers(0, 3)),
        last_oom_at=draw(st.none() | st.floats(OPENED - 600, NOW)))
        for mid in ids)


histories = st.lists(st.builds(
    lambda kind, target, outcome, ago, again: record(
        kind, target, outcome, ago_s=ago, detail={"crashed_again": again}),
    st.sampled_from(ActionKind), st.sampled_from((*MACHINE_IDS, APP)),
    st.sampled_from(Outcome), st.floats(0, 3000), st.booleans()), max_size=5).map(tuple)

situations = st.builds(
    Situation, app=st.just(APP), now=st.just(NOW), severity=st.sampled_from(Severity),
    reasons=st.frozensets(st.sampled_from(Reason)), opened_at=st.just(OPENED),
    machines=machines(),
    current=st.none() | st.builds(release, st.just(7), st.floats(-600, 3 * RECENT_S)),
    rollback_to=st.none() | st.just(GOOD),
    dependency_hints=st.sampled_from([(), ("supabase",)]), history=histories,
    watcher_side=st.booleans(), busy=st.booleans())


class TestPlanProperties:
    @given(s=situations, allow_stop=st.booleans())
    def test_invariants(self, s: Situation, allow_stop: bool):
        """Whatever the situation: no step on a standby or unknown machine, starts only of
        stopped machines and restarts only of failing started ones, at most one rollback (last
        unless it has no known-healthy target), never one already tried, scale to zero only
        when allowed at SEV-1, and every step says why in words."""
        p = plan(s, settings(allow_scale_to_zero=allow_stop), RECENT_S)
        if s.watcher_side:
            assert p == Plan()
            return
        by_id = {m.id: m for m in s.machines}
        for step in p.steps:
            assert step.text
            if step.kind in (K.PAGE, K.ROLLBACK):
                assert step.target == APP
                continue
            m = by_id[step.target]
            assert not m.standby
            if step.kind in (K.START, K.SCALE_OUT):
                assert m.state in STOPPED
            if step.kind is K.RESTART:
                assert m.state == "started" and m.down
            if step.kind is K.START and m.idle:
                assert step.why is W.AUTOSCALING_START
            if step.kind is K.STOP:
                assert allow_stop and s.severity is S1
            if step.kind is K.RAISE_MEMORY:
                assert step.params["from_mb"] < step.params["memory_mb"] <= 2048
        rollbacks = [i for i, step in enumerate(p.steps) if step.kind is K.ROLLBACK]
        assert len(rollbacks) <= 1
        if rollbacks and rollbacks[0] != len(p.steps) - 1:  # steps follow only a blind one
            assert "version" not in p.steps[rollbacks[0]].params
        if any(a.kind is K.ROLLBACK and a.outcome in TRIED for a in s.history):
            assert not rollbacks

    @given(s=situations)
    def test_operator_and_dependency_rows_act_on_nothing(self, s: Situation):
        """An operator signal, or dependency hints with a failure, never yields a Fly step:
        the plan is one page saying why (none at all when the watcher itself is the suspect)."""
        operator = Reason.OPERATOR_SIGNAL in s.reasons
        assume(operator or (s.dependency_hints and s.reasons & set(FAILING)))
        p = plan(s, settings(allow_scale_to_zero=True), RECENT_S)
        if s.watcher_side:
            assert p == Plan()
            return
        (page,) = p.steps
        assert page.kind is K.PAGE and page.target == APP
        assert page.why is (W.OPERATOR_SIGNAL if operator else W.DEPENDENCY)

    @given(s=situations)
    def test_pure(self, s: Situation):
        """The same situation always gives the same plan."""
        assert plan(s, settings(), RECENT_S) == plan(s, settings(), RECENT_S)
