"""The guard chain: each guard alone, then their order, then what holds for any step."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdash_watch.guards import (
    GUARDS,
    Decision,
    GuardContext,
    GuardName,
    Verdict,
    allow_list,
    blast_radius,
    check,
    cooldown,
    dry_run,
    lease_backoff,
    one_at_a_time,
    restart_budget,
    rollback_once,
    rollback_target,
    suspended,
)
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import MachineView, Step
from tests.unit.mitigation_factories import (
    APP,
    FLY_KINDS,
    GOOD,
    NOW,
    context,
    crashed,
    failing,
    healthy,
    record,
    rollback_step,
    settings,
    standby,
    step,
)

K, D, G, Out = ActionKind, Decision, GuardName, Outcome
TOOK_EFFECT = (Out.STARTED, Out.OK, Out.FAILED)
NOT_DONE = (Out.VETOED, Out.DRY_RUN, Out.DEFERRED)
ALL = ["restart", "start", "rollback", "raise_memory", "scale_out", "stop"]


def restarts(target: str, n: int, outcome: Outcome = Out.OK) -> tuple[ActionRecord, ...]:
    """``n`` watcher restarts of ``target`` in the budget window, each a cooldown ago."""
    return tuple(record(K.RESTART, target, outcome, ago_s=300.0 + 200.0 * i) for i in range(n))


def decided(v: Verdict) -> tuple[Decision, GuardName | None]:
    return v.decision, v.guard


class TestAllowList:
    @pytest.mark.parametrize(
        ("kind", "cfg", "expected"),
        [
            (K.RESTART, {}, D.ALLOW),
            (K.START, {}, D.ALLOW),
            (K.ROLLBACK, {}, D.ALLOW),
            (K.RAISE_MEMORY, {}, D.VETO),  # Level 1 authority: not by default
            (K.SCALE_OUT, {}, D.VETO),
            (K.RAISE_MEMORY, {"allowed_actions": ["raise_memory"]}, D.ALLOW),
            (K.SCALE_OUT, {"allowed_actions": ["scale_out"]}, D.ALLOW),
            (K.RESTART, {"allowed_actions": ["start"]}, D.VETO),
            (K.STOP, {"allowed_actions": ALL}, D.VETO),  # needs allow_scale_to_zero too
            (K.STOP, {"allow_scale_to_zero": True}, D.VETO),  # ... and the allow-list
            (K.STOP, {"allowed_actions": ["stop"], "allow_scale_to_zero": True}, D.ALLOW),
            (K.PAGE, {"allowed_actions": []}, D.ALLOW),
        ],
    )
    def test_kinds(self, kind: ActionKind, cfg: dict[str, object], expected: Decision):
        """A step passes only when its kind is in ``mitigation.allowed_actions``; a stop also
        needs ``allow_scale_to_zero``; a page always passes."""
        v = allow_list(step(kind), context(settings=cfg))
        assert v.decision is expected
        assert v.guard is (None if expected is D.ALLOW else G.ALLOW_LIST)

    def test_veto_names_the_setting(self):
        """A veto names ``mitigation.allowed_actions``, lists what is allowed and says how to
        allow more."""
        v = allow_list(step(K.RAISE_MEMORY), context())
        assert "raise_memory is not in mitigation.allowed_actions (restart, start, rollback)" \
            in v.text
        assert v.evidence == {"allowed_actions": ["restart", "start", "rollback"]}

    def test_empty_allow_list_says_empty(self):
        """With nothing allowed, the veto says the list is empty."""
        assert "(empty)" in allow_list(step(K.RESTART), context(settings={"allowed_actions": []}
                                                                )).text

    def test_stop_veto_names_allow_scale_to_zero(self):
        """Stopping a machine is refused by naming ``mitigation.allow_scale_to_zero``."""
        v = allow_list(step(K.STOP), context(settings={"allowed_actions": ALL}))
        assert "mitigation.allow_scale_to_zero = true" in v.text


class TestSuspended:
    @pytest.mark.parametrize("kind", FLY_KINDS)
    def test_vetoes_every_fly_step(self, kind: ActionKind):
        """A silence that suspends mitigation vetoes every step that touches Fly, saying why."""
        v = suspended(step(kind), context(suspended="silence #4 by ana (deploy)"))
        assert decided(v) == (D.VETO, G.SUSPENDED)
        assert v.text == "mitigation is suspended: silence #4 by ana (deploy)"

    @pytest.mark.parametrize(("kind", "why"), [(K.PAGE, "silence #4"), (K.RESTART, None)])
    def test_pages_and_unsuspended_apps_pass(self, kind: ActionKind, why: str | None):
        """Pages still go out while suspended, and without a silence nothing is vetoed."""
        assert suspended(step(kind), context(suspended=why)).allowed


class TestOneAtATime:
    @pytest.mark.parametrize("kind", FLY_KINDS)
    def test_defers_while_an_action_runs(self, kind: ActionKind):
        """While an action runs on the app, every other Fly step waits."""
        assert decided(one_at_a_time(step(kind), context(busy=True))) == (D.DEFER,
                                                                         G.ONE_AT_A_TIME)

    @pytest.mark.parametrize(("kind", "busy"), [(K.PAGE, True), (K.RESTART, False)])
    def test_pages_and_idle_apps_pass(self, kind: ActionKind, busy: bool):
        """A page is never held back, and an app with nothing running is free to act."""
        assert one_at_a_time(step(kind), context(busy=busy)).allowed


class TestLeaseBackoff:
    @pytest.mark.parametrize(
        ("until", "expected"),
        [(None, D.ALLOW), (NOW + 30.0, D.DEFER), (NOW + 0.5, D.DEFER), (NOW, D.ALLOW),
         (NOW - 1.0, D.ALLOW)],
    )
    def test_waits_until_the_backoff_ends(self, until: float | None, expected: Decision):
        """After finding someone else's lease, Fly steps wait until the backoff time, then go."""
        v = lease_backoff(step(K.RESTART), context(lease_backoff_until=until))
        assert v.decision is expected

    def test_deferral_says_how_long(self):
        """The deferral says a deploy may hold the lease and how long is left."""
        v = lease_backoff(step(K.START), context(lease_backoff_until=NOW + 30.0))
        assert decided(v) == (D.DEFER, G.LEASE)
        assert "waiting 30 s more" in v.text
        assert v.evidence == {"until": NOW + 30.0}

    def test_pages_pass(self):
        """A page is never held back by a lease."""
        assert lease_backoff(step(K.PAGE), context(lease_backoff_until=NOW + 30.0)).allowed


class TestCooldown:
    @pytest.mark.parametrize(
        ("ended_ago_s", "expected"),
        [(0.0, D.DEFER), (10.0, D.DEFER), (59.9, D.DEFER), (60.0, D.ALLOW), (600.0, D.ALLOW)],
    )
    def test_same_target_waits_cooldown_s(self, ended_ago_s: float, expected: Decision):
        """A target acted on less than ``cooldown_s`` (60 s) ago waits; after that it may be
        acted on again."""
        h = (record(K.RESTART, "m1", ago_s=ended_ago_s + 30.0, took_s=30.0),)
        assert cooldown(step(K.RESTART), context(app_history=h)).decision is expected

    @pytest.mark.parametrize("outcome", TOOK_EFFECT)
    def test_counts_actions_that_took_effect(self, outcome: Outcome):
        """Started, done and failed actions all start the cooldown; one still running counts
        from its start."""
        h = (record(K.START, "m1", outcome, ago_s=20.0, took_s=None),)
        v = cooldown(step(K.RESTART), context(app_history=h))
        assert decided(v) == (D.DEFER, G.COOLDOWN)
        assert v.evidence == {"last_action_at": NOW - 20.0}
        assert "m1 was acted on 20 s ago (cooldown 60 s)" in v.text

    @pytest.mark.parametrize("outcome", NOT_DONE)
    def test_ignores_steps_that_changed_nothing(self, outcome: Outcome):
        """Vetoed, dry-run and deferred steps changed nothing: no cooldown."""
        h = (record(K.RESTART, "m1", outcome, ago_s=5.0, took_s=0.0),)
        assert cooldown(step(K.RESTART), context(app_history=h)).allowed

    def test_other_targets_are_unaffected(self):
        """An action on one machine does not hold back another machine."""
        h = (record(K.RESTART, "m2", ago_s=5.0, took_s=1.0),)
        assert cooldown(step(K.RESTART, "m1"), context(app_history=h)).allowed

    def test_the_newest_action_counts(self):
        """Of several actions on the target, the last one to end sets the cooldown."""
        h = (record(K.RESTART, "m1", ago_s=900.0), record(K.START, "m1", ago_s=40.0, took_s=5.0))
        v = cooldown(step(K.RESTART), context(app_history=h))
        assert v.evidence == {"last_action_at": NOW - 35.0}

    @pytest.mark.parametrize(("kind", "cfg"), [(K.PAGE, {}), (K.RESTART, {"cooldown_s": 0})])
    def test_pages_and_zero_cooldown_pass(self, kind: ActionKind, cfg: dict[str, object]):
        """A page has no cooldown, and ``cooldown_s = 0`` switches the guard off."""
        h = (record(K.RESTART, "m1", ago_s=1.0, took_s=0.0),
             record(K.PAGE, "m1", ago_s=1.0, took_s=0.0))
        assert cooldown(step(kind), context(app_history=h, settings=cfg)).allowed

    def test_a_page_is_not_an_action_on_the_app(self):
        """A page recorded on the app a moment ago does not put the app's rollback in
        cooldown."""
        h = (record(K.PAGE, APP, Out.OK, ago_s=10.0, took_s=0.0),)
        assert cooldown(rollback_step(), context(app_history=h)).allowed


class TestRestartBudget:
    @pytest.mark.parametrize(
        ("ours", "fly", "expected"),
        [(0, 0, D.ALLOW), (2, 0, D.ALLOW), (0, 2, D.ALLOW), (3, 0, D.VETO), (2, 1, D.VETO),
         (0, 3, D.VETO), (1, 5, D.VETO)],
    )
    @pytest.mark.parametrize("kind", [K.RESTART, K.START])
    def test_machine_budget(self, kind: ActionKind, ours: int, fly: int, expected: Decision):
        """The watcher's restarts and starts of a machine plus Fly's supervisor restarts of it
        may not reach ``restart_budget_machine`` (3)."""
        ctx = context((crashed("m1", fly_restarts=fly), healthy("m2")),
                      app_history=restarts("m1", ours))
        assert restart_budget(step(kind), ctx).decision is expected

    def test_veto_shows_both_counts(self):
        """The veto says how many restarts were the watcher's and how many Fly's, the window
        and the budget, and that the loop stops."""
        ctx = context((crashed("m1", fly_restarts=1),), app_history=restarts("m1", 2))
        v = restart_budget(step(K.START), ctx)
        assert decided(v) == (D.VETO, G.MACHINE_BUDGET)
        assert v.text == ("restart budget of m1 exhausted: 3 restarts in the last 1 h (2 by the "
                          "watcher, 1 by Fly's supervisor), budget 3; the restart loop stops here")
        assert v.evidence == {"watcher": 2, "fly": 1, "budget": 3}

    def test_window_in_minutes(self):
        """A budget window under an hour is named in minutes."""
        ctx = context((crashed("m1"),), app_history=restarts("m1", 1),
                      settings={"restart_budget_machine": 1, "budget_window_s": 1800})
        assert "in the last 30 min" in restart_budget(step(K.START), ctx).text

    @pytest.mark.parametrize("outcome", NOT_DONE)
    def test_steps_that_changed_nothing_are_free(self, outcome: Outcome):
        """Vetoed, dry-run and deferred restarts do not use the budget."""
        ctx = context((crashed("m1"),), app_history=restarts("m1", 5, outcome))
        assert restart_budget(step(K.START), ctx).allowed

    def test_other_machines_do_not_use_this_machines_budget(self):
        """Restarts of other machines count against the app budget only."""
        ctx = context((crashed("m1"), crashed("m2", fly_restarts=2)),
                      app_history=restarts("m3", 2))
        assert restart_budget(step(K.START, "m1"), ctx).allowed

    def test_app_budget(self):
        """The app's restarts (every machine, the watcher's and Fly's) may not reach
        ``restart_budget_app`` (6), even when each machine is within its own budget."""
        ctx = context((crashed("m1", fly_restarts=1), crashed("m2"), crashed("m3"),
                       crashed("m4")),
                      app_history=(*restarts("m2", 2), *restarts("m3", 2), *restarts("m4", 1)))
        v = restart_budget(step(K.START, "m1"), ctx)
        assert decided(v) == (D.VETO, G.APP_BUDGET)
        assert "(5 by the watcher, 1 by Fly's supervisor), budget 6" in v.text
        assert v.evidence == {"watcher": 5, "fly": 1, "budget": 6}

    @pytest.mark.parametrize("kind", [K.ROLLBACK, K.RAISE_MEMORY, K.SCALE_OUT, K.STOP, K.PAGE])
    def test_other_kinds_are_unaffected(self, kind: ActionKind):
        """Only restarts and starts are budgeted."""
        ctx = context((crashed("m1", fly_restarts=9),), app_history=restarts("m1", 9))
        assert restart_budget(step(kind), ctx).allowed

    def test_zero_budget_refuses_every_restart(self):
        """``restart_budget_machine = 0`` means the watcher never restarts by itself."""
        ctx = context((crashed("m1"),), settings={"restart_budget_machine": 0})
        assert decided(restart_budget(step(K.START), ctx)) == (D.VETO, G.MACHINE_BUDGET)


def fleet(n_healthy: int, n_out: int) -> tuple[MachineView, ...]:
    """``n_healthy`` serving machines h1.. then ``n_out`` failing ones x1.."""
    return (*(healthy(f"h{i}") for i in range(1, n_healthy + 1)),
            *(failing(f"x{i}") for i in range(1, n_out + 1)))


class TestBlastRadius:
    @pytest.mark.parametrize(
        ("machines", "fraction", "expected"),
        [
            pytest.param(fleet(1, 0), 0.5, (D.VETO, G.LAST_HEALTHY), id="only-machine"),
            pytest.param(fleet(1, 2), 1.0, (D.VETO, G.LAST_HEALTHY), id="last-healthy"),
            pytest.param((*fleet(1, 0), standby("s1", healthy=True, down=False)), 1.0,
                         (D.VETO, G.LAST_HEALTHY), id="a-standby-is-no-second"),
            pytest.param(fleet(2, 0), 0.5, (D.ALLOW, None), id="2-of-2-one-out-at-most"),
            pytest.param(fleet(3, 1), 0.5, (D.ALLOW, None), id="4-machines-1-out"),
            pytest.param(fleet(2, 2), 0.5, (D.DEFER, G.BLAST_RADIUS), id="4-machines-2-out"),
            pytest.param(fleet(2, 1), 0.5, (D.DEFER, G.BLAST_RADIUS), id="3-machines-floor"),
            pytest.param(fleet(10, 0), 0.1, (D.ALLOW, None), id="at-least-one"),
            pytest.param(fleet(9, 1), 0.1, (D.DEFER, G.BLAST_RADIUS), id="10pc-already-out"),
            pytest.param(fleet(8, 2), 0.3, (D.ALLOW, None), id="3-of-10"),
        ],
    )
    @pytest.mark.parametrize("kind", [K.RESTART, K.STOP, K.RAISE_MEMORY])
    def test_healthy_targets(self, kind: ActionKind, machines: tuple[MachineView, ...],
                             fraction: float, expected: tuple[Decision, GuardName | None]):
        """Taking a healthy machine out is refused for the last healthy one and waits while it
        would put more than max(1, floor(fraction * machines)) out of service."""
        ctx = context(machines, settings={"max_unavailable_fraction": fraction})
        assert decided(blast_radius(step(kind, "h1"), ctx)) == expected

    def test_deferral_shows_the_numbers(self):
        """The deferral gives machines out, the total and the allowed number, with the
        setting's name."""
        v = blast_radius(step(K.RESTART, "h1"), context(fleet(2, 2)))
        assert v.evidence == {"out": 2, "total": 4, "allowed": 2}
        assert "mitigation.max_unavailable_fraction 0.5" in v.text

    def test_last_healthy_veto_says_it(self):
        """The veto says the target is the last healthy machine and the app would go down."""
        v = blast_radius(step(K.RESTART, "h1"), context(fleet(1, 1)))
        assert v.text == "h1 is the last healthy machine: a restart would take the app down"
        assert v.evidence == {"healthy": 1, "total": 2}

    @pytest.mark.parametrize("target", ["x1", "unknown"])
    @pytest.mark.parametrize("kind", [K.RESTART, K.STOP, K.RAISE_MEMORY])
    def test_an_unhealthy_target_costs_no_capacity(self, kind: ActionKind, target: str):
        """Acting on a machine that serves nothing (or is not known) always passes."""
        assert blast_radius(step(kind, target), context(fleet(1, 3))).allowed

    @pytest.mark.parametrize("kind", [K.START, K.SCALE_OUT, K.ROLLBACK, K.PAGE])
    def test_adding_capacity_is_never_blocked(self, kind: ActionKind):
        """Starts, scale-out, rollbacks and pages are not blast-radius limited."""
        assert blast_radius(step(kind, "h1"), context(fleet(1, 3))).allowed


class TestRollbackOnce:
    @pytest.mark.parametrize("outcome", TOOK_EFFECT)
    def test_at_most_one_per_incident(self, outcome: Outcome):
        """A rollback started, done or failed in this incident vetoes another."""
        ctx = context(incident_history=(record(K.ROLLBACK, APP, outcome),))
        v = rollback_once(rollback_step(), ctx)
        assert decided(v) == (D.VETO, G.ROLLBACK_ONCE)
        assert f"already tried in this incident ({outcome.value})" in v.text

    @pytest.mark.parametrize("outcome", [Out.VETOED, Out.DEFERRED, Out.DRY_RUN])
    def test_a_rollback_that_never_ran_does_not_count(self, outcome: Outcome):
        """A vetoed, deferred or dry-run rollback changed nothing: it was not tried."""
        ctx = context(incident_history=(record(K.ROLLBACK, APP, outcome),))
        assert rollback_once(rollback_step(), ctx).allowed

    def test_another_incidents_rollback_does_not_count(self):
        """A rollback in an earlier incident (app history only) allows one in this incident."""
        ctx = context(app_history=(record(K.ROLLBACK, APP, incident_id="inc-0"),))
        assert rollback_once(rollback_step(), ctx).allowed

    @pytest.mark.parametrize("kind", [K.RESTART, K.START, K.PAGE])
    def test_other_kinds_are_unaffected(self, kind: ActionKind):
        """Only rollbacks are limited."""
        ctx = context(incident_history=(record(K.ROLLBACK, APP),))
        assert rollback_once(step(kind), ctx).allowed


class TestRollbackTarget:
    @pytest.mark.parametrize(
        ("proposed", "ctx_kw", "allowed"),
        [
            pytest.param(rollback_step(), {"current_version": 7}, True, id="known-healthy"),
            pytest.param(rollback_step(version=None), {}, False, id="no-version"),
            pytest.param(rollback_step(image=None), {}, False, id="no-image"),
            pytest.param(rollback_step(image=""), {}, False, id="empty-image"),
            pytest.param(rollback_step(version=7), {"current_version": 7}, False,
                         id="to-the-current-release"),
            pytest.param(rollback_step(version=6), {"current_version": 7, "app_history": (
                record(K.ROLLBACK, APP, Out.OK, detail={"from_version": 6}),)}, False,
                id="back-to-a-release-rolled-back-from"),
            pytest.param(rollback_step(version=6), {"current_version": 7, "app_history": (
                record(K.ROLLBACK, APP, Out.STARTED, took_s=None,
                       detail={"from_version": 6}),)}, False,
                id="from-a-rollback-in-progress"),
            pytest.param(rollback_step(version=6), {"current_version": 7, "app_history": (
                record(K.ROLLBACK, APP, Out.DRY_RUN, detail={"from_version": 6}),)}, True,
                id="a-dry-run-left-nothing"),
            pytest.param(rollback_step(version=6), {"current_version": 7, "app_history": (
                record(K.ROLLBACK, APP, Out.OK, detail={"from_version": 5}),)}, True,
                id="rolled-back-from-another"),
        ],
    )
    def test_only_to_a_known_healthy_release(self, proposed: Step, ctx_kw: dict[str, object],
                                             allowed: bool):
        """A rollback needs a known-healthy target (version and image) that is neither the
        current release nor one the watcher rolled back from."""
        v = rollback_target(proposed, context(**ctx_kw))
        assert decided(v) == ((D.ALLOW, None) if allowed else (D.VETO, G.ROLLBACK_TARGET))

    def test_blind_rollback_veto_says_why(self):
        """Without a target the veto says the watcher does not roll back blind."""
        v = rollback_target(rollback_step(version=None, image=None), context())
        assert "not rolling back blind" in v.text

    def test_other_kinds_are_unaffected(self):
        """Only rollbacks need a target release."""
        assert rollback_target(step(K.RESTART), context(current_version=7)).allowed


class TestDryRun:
    @pytest.mark.parametrize("kind", FLY_KINDS)
    def test_fly_steps_are_only_recorded(self, kind: ActionKind):
        """In dry-run every Fly step becomes "would have done"."""
        v = dry_run(step(kind, "m1"), context(dry_run=True))
        assert decided(v) == (D.DRY_RUN, G.DRY_RUN)
        assert v.text == f"dry-run: would {kind.value} m1"

    @pytest.mark.parametrize(("kind", "on"), [(K.PAGE, True), (K.RESTART, False)])
    def test_pages_and_live_mode_pass(self, kind: ActionKind, on: bool):
        """Pages still go out in dry-run, and outside dry-run nothing is held back."""
        assert dry_run(step(kind), context(dry_run=on)).allowed


class TestChain:
    def test_order(self):
        """Vetoes about the step itself come first, then "not now", and dry-run last."""
        assert [g.__name__ for g in GUARDS] == [
            "allow_list", "suspended", "rollback_once", "rollback_target", "restart_budget",
            "blast_radius", "one_at_a_time", "lease_backoff", "cooldown", "dry_run"]

    @pytest.mark.parametrize(
        ("proposed", "ctx", "expected"),
        [
            pytest.param(step(K.RAISE_MEMORY, "h1"),
                         context(fleet(1, 0), busy=True, suspended="s", dry_run=True),
                         (D.VETO, G.ALLOW_LIST), id="allow-list-first"),
            pytest.param(step(K.START, "x1"), context(fleet(1, 1), suspended="s", busy=True),
                         (D.VETO, G.SUSPENDED), id="suspended-before-busy"),
            pytest.param(rollback_step(), context(
                incident_history=(record(K.ROLLBACK, APP),), current_version=6),
                (D.VETO, G.ROLLBACK_ONCE), id="once-before-target"),
            pytest.param(rollback_step(version=None),
                         context(busy=True, dry_run=True),
                         (D.VETO, G.ROLLBACK_TARGET), id="target-before-busy"),
            pytest.param(step(K.RESTART, "h1"), context(
                fleet(1, 0), app_history=restarts("h1", 3), dry_run=True),
                (D.VETO, G.MACHINE_BUDGET), id="budget-before-last-healthy-and-dry-run"),
            pytest.param(step(K.RESTART, "h1"), context(fleet(1, 1), busy=True),
                         (D.VETO, G.LAST_HEALTHY), id="last-healthy-before-busy"),
            pytest.param(step(K.RESTART, "h1"), context(fleet(2, 2), busy=True),
                         (D.DEFER, G.BLAST_RADIUS), id="blast-radius-before-busy"),
            pytest.param(step(K.START, "x1"),
                         context(fleet(1, 1), busy=True, lease_backoff_until=NOW + 5),
                         (D.DEFER, G.ONE_AT_A_TIME), id="busy-before-lease"),
            pytest.param(step(K.START, "x1"), context(
                fleet(1, 1), lease_backoff_until=NOW + 5,
                app_history=(record(K.START, "x1", ago_s=5.0, took_s=1.0),)),
                (D.DEFER, G.LEASE), id="lease-before-cooldown"),
            pytest.param(step(K.START, "x1"), context(
                fleet(1, 1), dry_run=True,
                app_history=(record(K.START, "x1", ago_s=5.0, took_s=1.0),)),
                (D.DEFER, G.COOLDOWN), id="cooldown-before-dry-run"),
            pytest.param(step(K.START, "x1"), context(fleet(1, 1), dry_run=True),
                         (D.DRY_RUN, G.DRY_RUN), id="dry-run-when-all-pass"),
            pytest.param(step(K.START, "x1"), context(fleet(1, 1)), (D.ALLOW, None),
                         id="all-pass"),
            pytest.param(rollback_step(), context(fleet(1, 1), current_version=7),
                         (D.ALLOW, None), id="rollback-all-pass"),
        ],
    )
    def test_first_objection_wins(self, proposed: Step, ctx: GuardContext,
                                  expected: tuple[Decision, GuardName | None]):
        """``check`` returns the verdict of the first guard in the chain that objects."""
        assert decided(check(proposed, ctx)) == expected

    def test_custom_chain(self):
        """``check`` runs the guards it is given, and an empty chain allows everything."""
        ctx = context(busy=True)
        assert check(step(K.RESTART), ctx, guards=()).allowed
        assert decided(check(step(K.RESTART), ctx, guards=(one_at_a_time,))) == (
            D.DEFER, G.ONE_AT_A_TIME)


# -- properties over any step and context ------------------------------------------------------

IDS = ("h1", "h2", "x1", "x2")
BUILDERS = (healthy, failing, crashed, standby)

machine_views = st.lists(st.sampled_from(IDS), unique=True, max_size=4).flatmap(
    lambda ids: st.tuples(*(st.builds(lambda b, mid, fly: b(mid, fly_restarts=fly),
                                      st.sampled_from(BUILDERS), st.just(mid),
                                      st.integers(0, 4)) for mid in ids)))

histories = st.lists(st.builds(
    lambda kind, target, outcome, ago, frm: record(kind, target, outcome, ago_s=ago,
                                                   detail={"from_version": frm}),
    st.sampled_from(ActionKind), st.sampled_from((*IDS, APP)), st.sampled_from(Outcome),
    st.floats(0, 3600), st.none() | st.integers(4, 8)), max_size=6).map(tuple)

steps = st.one_of(
    st.builds(step, st.sampled_from(ActionKind), st.sampled_from((*IDS, APP))),
    st.builds(rollback_step, st.none() | st.integers(4, 8), st.sampled_from([None, "", GOOD.image]),
              st.integers(5, 8)))

contexts = st.builds(
    GuardContext, now=st.just(NOW),
    settings=st.builds(settings, allowed_actions=st.lists(st.sampled_from(ALL), unique=True),
                       allow_scale_to_zero=st.booleans(),
                       restart_budget_machine=st.integers(0, 5),
                       restart_budget_app=st.integers(0, 10),
                       cooldown_s=st.sampled_from([0.0, 60.0, 600.0]),
                       max_unavailable_fraction=st.floats(0.01, 1.0)),
    dry_run=st.booleans(), machines=machine_views, app_history=histories,
    incident_history=histories, busy=st.booleans(),
    suspended=st.none() | st.just("silence #1"),
    lease_backoff_until=st.none() | st.floats(NOW - 60, NOW + 60),
    current_version=st.none() | st.integers(5, 8))


class TestChainProperties:
    @given(proposed=steps, ctx=contexts)
    def test_dry_run_never_allows_a_fly_step(self, proposed: Step, ctx: GuardContext):
        """With dry-run on, no step that touches Fly is ever allowed."""
        v = check(proposed, dataclasses.replace(ctx, dry_run=True))
        if proposed.kind.touches_fly:
            assert not v.allowed
        else:
            assert v.allowed

    @given(proposed=steps, ctx=contexts)
    def test_every_objection_names_its_guard_and_reason(self, proposed: Step,
                                                        ctx: GuardContext):
        """A verdict that is not ALLOW names the guard that gave it and a reason in words, and
        a page is always allowed."""
        v = check(proposed, ctx)
        if proposed.kind is K.PAGE:
            assert v.allowed
        if not v.allowed:
            assert v.guard is not None
            assert v.text
