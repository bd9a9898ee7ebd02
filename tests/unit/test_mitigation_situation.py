"""What the policy reads about an app: machine views, exit counts, the running image and the
release a rollback may go to, built from plain values (no probe, no store, no clock)."""

from __future__ import annotations

from typing import Any

import pytest

from hotdash_watch.classify import Assessment
from hotdash_watch.config import MitigationSettings
from hotdash_watch.fly import Machine, Release
from hotdash_watch.fly.models import CheckStatus, ExitInfo, MachineEvent
from hotdash_watch.mitigation.situation import (
    AppFacts,
    MachineExits,
    exits_by_machine,
    images_left,
    machine_views,
    situation,
)
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import ReleaseView
from hotdash_watch.probes.machines import MachineFacts, MachinesReport
from hotdash_watch.probes.releases import ReleasesReport
from hotdash_watch.release_health import ImageHealth, rollback_target, running_image

APP = "svc"
NOW = 100_000.0
WINDOW_S = 3600.0
V5, V6, V7, V8 = (f"registry.fly.io/{APP}:v{n}" for n in (5, 6, 7, 8))


def machine(mid: str, state: str = "started", *, image: str = V6, checks: tuple[str, ...] = (),
            events: tuple[MachineEvent, ...] = (), **kw: Any) -> Machine:
    """A machine of the app as the Machines API lists it."""
    fields: dict[str, Any] = {
        "memory_mb": 512, "cpus": 1, "cpu_kind": "shared", "process_group": "app",
        "release_version": None, "is_standby": False, **kw}
    return Machine(id=mid, name=mid, state=state, region="ams", instance_id=f"i-{mid}",
                   image=image, host_status="ok",
                   checks=tuple(CheckStatus("svc", s, "", None) for s in checks),
                   events=events, autostop=None, autostart=None, restart_policy=None,
                   config={}, **fields)


def exit_at(at: float, *, restart_count: int | None = None, requested: bool = False,
            oom: bool = False) -> MachineEvent:
    """An exit event at ``at``: a crash unless ``requested`` (an autostop)."""
    return MachineEvent(id=f"e{at}", type="exit", status="stopped", source="flyd",
                        timestamp=at, exit=ExitInfo(137 if oom else 1, oom, requested,
                                                    not requested, at),
                        restart_count=restart_count)


def report(*machines: Machine, down: tuple[str, ...] = ()) -> MachinesReport:
    """One machines poll at ``NOW``; ``down`` are the ids the facts count as down."""
    facts = MachineFacts(at=NOW, total=len(machines), started_healthy=0, down=len(down),
                         down_ids=down)
    return MachinesReport(APP, NOW, facts, tuple(machines))


def releases(current: tuple[int, str], previous: tuple[int, str] | None = None
             ) -> ReleasesReport:
    """Fly's current release (version, image) and the one before."""
    def rel(version: int, image: str) -> Release:
        return Release(f"r{version}", version, "complete", image, True, NOW - 600.0, "", "",
                       None)
    return ReleasesReport(APP, NOW, rel(*current), rel(*previous) if previous else None)


def view(m: Machine, *, down: bool = False, exits: MachineExits | None = None) -> Any:
    """The one view of ``m``."""
    [v] = machine_views(report(m, down=(m.id,) if down else ()),
                        {m.id: exits} if exits else {}, NOW, WINDOW_S)
    return v


class TestMachineViews:
    @pytest.mark.parametrize(("m", "down", "expected"), [
        (machine("m1", checks=("passing",)), False, (True, False, False, False)),
        (machine("m1", checks=("critical",)), True, (False, True, False, False)),
        (machine("m1", "stopped", events=(exit_at(NOW - 60),)), True,
         (False, True, False, False)),
        (machine("m1", "stopped", events=(exit_at(NOW - 60, requested=True),)), False,
         (False, False, True, False)),
        (machine("m1", "stopped", events=(exit_at(NOW - 60, requested=True),)), True,
         (False, True, False, False)),
        (machine("m1", "stopped", is_standby=True), False, (False, False, False, True)),
    ], ids=["healthy", "checks-failing", "crashed", "idle", "autostopped-but-down",
            "standby"])
    def test_state_to_healthy_down_idle_standby(self, m: Machine, down: bool,
                                                expected: tuple[bool, ...]):
        """Healthy is started and not down; idle is autostopped and not down; standby is as
        the API says."""
        v = view(m, down=down)
        assert (v.healthy, v.down, v.idle, v.standby) == expected

    def test_only_the_apps_own_machines(self):
        """A release-command or console machine, or a destroyed one, is not a view."""
        views = machine_views(report(machine("m1"),
                                     machine("rc", process_group="fly_app_release_command"),
                                     machine("gone", "destroyed")), {}, NOW, WINDOW_S)
        assert [v.id for v in views] == ["m1"]

    def test_no_facts_no_views(self):
        """A poll that failed (no facts) gives no machines, and so does no poll."""
        failed = MachinesReport(APP, NOW, None, (machine("m1"),), error="FlyUnavailable")
        assert machine_views(failed, {}, NOW, WINDOW_S) == ()
        assert machine_views(None, {}, NOW, WINDOW_S) == ()

    def test_unknown_size_is_the_smallest(self):
        """Memory, CPU kind and count missing from the API read as 0 MB, shared, 1 CPU."""
        v = view(machine("m1", memory_mb=None, cpu_kind=None, cpus=None))
        assert (v.memory_mb, v.cpu_kind, v.cpus, v.image) == (0, "shared", 1, V6)

    @pytest.mark.parametrize(("events", "counted", "expected"), [
        ((), 2, 2),
        ((exit_at(NOW - 60, restart_count=5),), 2, 5),
        ((exit_at(NOW - 60, restart_count=1),), 3, 3),
        ((exit_at(NOW - 60, restart_count=5, requested=True),), 2, 2),
        ((exit_at(NOW - WINDOW_S - 1, restart_count=5),), 2, 2),
        ((exit_at(NOW - 10), exit_at(NOW - 60, restart_count=9)), 0, 0),
    ], ids=["ledger-only", "latest-exit-says-more", "ledger-says-more", "requested-stop",
            "outside-window", "only-the-latest-exit"])
    def test_fly_restarts_from_the_latest_exit(self, events: tuple[MachineEvent, ...],
                                               counted: int, expected: int):
        """Fly's restarts are the probe's count, raised to the latest exit's restart count
        when that exit is a crash inside the budget window."""
        m = machine("m1", "started", events=events)
        assert view(m, exits=MachineExits(fly_restarts=counted)).fly_restarts == expected

    def test_oom_kills_and_their_last_time(self):
        """OOM kills and the last one's time come from the exit counts; a machine with none
        counted has 0 and no time."""
        views = machine_views(report(machine("m1"), machine("m2")),
                              {"m1": MachineExits(oom_kills=3, last_oom_at=NOW - 5)},
                              NOW, WINDOW_S)
        assert [(v.oom_kills, v.last_oom_at) for v in views] == [(3, NOW - 5), (0, None)]


class TestExitsByMachine:
    def test_restarts_from_the_budget_window_ooms_from_the_oom_window(self):
        """Restarts are read from the budget window's tally, OOM kills and the last OOM time
        from the OOM window's; a time of 0 is no time."""
        exits = exits_by_machine({"m1": (1, 4, 50.0), "m3": (2, 2, 0.0)},
                                 {"m1": (3, 1, 90.0), "m2": (1, 0, 70.0)})
        assert exits == {"m1": MachineExits(4, 3, 90.0), "m2": MachineExits(0, 1, 70.0),
                         "m3": MachineExits(2, 0, None)}


class TestRunningImage:
    @pytest.mark.parametrize(("machines", "rel", "expected"), [
        ((), None, (None, None)),
        ((machine("a"), machine("b")), releases((7, V7), (6, V6)), (V6, 6)),
        ((machine("a"), machine("b", image=V7)), releases((7, V7)), (None, None)),
        ((machine("a"), machine("s", image=V7, is_standby=True)),
         releases((6, V6)), (V6, 6)),
        ((machine("a"), machine("b", "stopped", image=V7)), releases((6, V6)), (V6, 6)),
        ((machine("a", release_version="6"), machine("b", release_version="6")), None,
         (V6, 6)),
        ((machine("a", release_version="6"), machine("b", release_version="5")), None,
         (V6, None)),
        ((machine("a", release_version="six"),), None, (V6, None)),
        ((machine("a", "stopped"),), None, (None, None)),
    ], ids=["no-machines", "release-names-it", "mid-deploy", "standby-ignored",
            "stopped-ignored", "tag", "tags-differ", "tag-not-a-number", "none-started"])
    def test_the_one_image_and_its_version(self, machines: tuple[Machine, ...],
                                           rel: ReleasesReport | None,
                                           expected: tuple[str | None, int | None]):
        """The image every started app machine runs, versioned by the release that names it,
        else by the machines' common release tag."""
        machines_report = report(*machines) if machines else None
        assert running_image(machines_report, rel) == expected


def health(*entries: tuple[str, int | None, float]) -> dict[str, ImageHealth]:
    """A release health record: (image, version, healthy seconds) per image."""
    return {image: ImageHealth(image, version, healthy_s, NOW, NOW - 86_400.0 + (version or 0))
            for image, version, healthy_s in entries}


CURRENT = ReleaseView(7, V7, NOW - 600.0)
AFTER_S = 600.0


class TestRollbackTarget:
    @pytest.mark.parametrize(("record", "left", "expected"), [
        (health((V6, 6, 900.0)), (), (6, V6)),
        (health((V6, 6, 900.0), (V5, 5, 900.0)), (), (6, V6)),
        (health((V6, 6, 900.0), (V5, 5, 900.0)), (V6,), (5, V5)),
        (health((V6, 6, 900.0)), (V6,), None),
        (health((V7, 7, 900.0)), (), None),
        (health((V8, 8, 900.0)), (), None),
        (health((V8, 7, 900.0)), (), None),
        (health((V8, None, 900.0)), (), (6, V8)),
        (health((V6, 6, AFTER_S - 1)), (), None),
        ({}, (), None),
    ], ids=["healthy-earlier", "newest-earlier", "not-the-image-left", "only-the-image-left",
            "not-the-current-image", "not-a-later-version", "not-the-same-version",
            "unknown-version-is-the-one-before",
            "not-healthy-long-enough", "nothing-known"])
    def test_only_an_earlier_image_known_healthy(self, record: dict[str, ImageHealth],
                                                 left: tuple[str, ...],
                                                 expected: tuple[int, str] | None):
        """The newest image seen healthy long enough, earlier than the current release, and
        neither the current image nor one a rollback already left."""
        target = rollback_target(record, CURRENT, left=left, healthy_after_s=AFTER_S)
        assert (None if target is None else (target.version, target.image)) == expected

    def test_images_left_by_earlier_rollbacks(self):
        """The images earlier rollbacks went away from; other actions leave none."""
        history = [record(ActionKind.ROLLBACK, detail={"from_image": V7}),
                   record(ActionKind.RESTART, detail={"from_image": V5}),
                   record(ActionKind.ROLLBACK)]
        assert images_left(history) == {V7}


def record(kind: ActionKind, outcome: Outcome = Outcome.OK, **kw: Any) -> ActionRecord:
    return ActionRecord(id=None, app=APP, incident_id="inc-1", kind=kind, target=APP,
                        reason="test", text=kind.value, outcome=outcome, at=NOW - 300.0,
                        ended_at=NOW - 200.0, **kw)


def incident(severity: Severity = Severity.SEV2) -> Incident:
    return Incident(id="inc-1", app=APP, state=State.INVESTIGATING, severity=severity,
                    max_severity=severity, opened_at=NOW - 900.0, updated_at=NOW - 60.0,
                    severity_since=NOW - 900.0)


def assessment(*reasons: Reason, watcher_side: bool = False) -> Assessment:
    return Assessment(APP, NOW, Severity.SEV2,
                      tuple(Finding(r, Severity.SEV2, r.value) for r in reasons), {},
                      watcher_side=watcher_side)


class TestSituation:
    def test_everything_the_policy_reads(self):
        """The situation carries the incident's severity and opening, the findings' reasons,
        the machines, the current release and a healthy earlier one, the logs' hints, the
        history and whether an action runs."""
        facts = AppFacts(APP, report(machine("m1", image=V7), machine("m2", image=V7,
                                                                      checks=("critical",)),
                                     down=("m2",)),
                         releases((7, V7), (6, V6)), {"m2": MachineExits(fly_restarts=2)},
                         ("supabase",))
        history = (record(ActionKind.RESTART),)
        s = situation(facts, assessment(Reason.ERROR_RATE_MAJOR), incident(), history, NOW,
                      cfg=MitigationSettings(release_healthy_after_s=AFTER_S),
                      health=health((V6, 6, 900.0)), busy=True)
        assert (s.app, s.now, s.severity, s.opened_at) == (APP, NOW, Severity.SEV2,
                                                           NOW - 900.0)
        assert s.reasons == {Reason.ERROR_RATE_MAJOR}
        assert [(m.id, m.healthy, m.fly_restarts) for m in s.machines] == [
            ("m1", True, 0), ("m2", False, 2)]
        assert s.current is not None and (s.current.version, s.current.image) == (7, V7)
        assert s.rollback_to is not None and (s.rollback_to.version,
                                              s.rollback_to.image) == (6, V6)
        assert (s.dependency_hints, s.history, s.busy, s.watcher_side) == (
            ("supabase",), history, True, False)

    def test_a_rollback_never_returns_to_the_image_it_left(self):
        """After a rollback left V6 in this incident, V6 is no longer a target."""
        facts = AppFacts(APP, None, releases((7, V7)))
        history = (record(ActionKind.ROLLBACK, detail={"from_image": V6}),)
        s = situation(facts, assessment(Reason.ERROR_RATE_MAJOR), incident(), history, NOW,
                      cfg=MitigationSettings(release_healthy_after_s=AFTER_S),
                      health=health((V6, 6, 900.0)), busy=False)
        assert s.current is not None and s.rollback_to is None

    def test_without_releases_nothing_to_roll_back_to(self):
        """Releases not known: no current release and no target, whatever the record says."""
        s = situation(AppFacts(APP), assessment(Reason.ERROR_RATE_MAJOR, watcher_side=True),
                      incident(), (), NOW, cfg=MitigationSettings(),
                      health=health((V6, 6, 1e9)), busy=False)
        assert (s.current, s.rollback_to, s.machines, s.watcher_side) == (None, None, (), True)
