"""The simulated world: Fly's state machine, flyd's restart policy, the proxy and every fault's
consistency rule, in scenario seconds on a manual clock (no HTTP here)."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from hotdash_watch.clock import ManualClock
from hotdash_watch.sim import Fault, World
from hotdash_watch.sim.world import ApiError, SimMachine
from tests.sim.helpers import make_scenario, step

APP = "hotdash-api"


def world_of(clock: ManualClock, *faults: dict[str, Any], seed: int = 0,
             **app: Any) -> World:
    """A begun world with one app (3 machines by default) and ``faults``."""
    spec = {"name": APP, "machines": 3, **app}
    w = World(make_scenario(spec, faults=faults, seed=seed), clock)
    w.begin()
    return w


def machines(w: World) -> list[SimMachine]:
    return w.apps[APP].machines


def exits(m: SimMachine) -> list[dict[str, Any]]:
    return [e.request["exit_event"] for e in m.events if e.type == "exit" and e.request]


def settle(w: World, clock: ManualClock, m: SimMachine) -> None:
    """Step until ``m`` is started or stopped, with no flyd restart pending."""
    while m.state not in ("started", "stopped") or m.flyd_pending:
        step(w, clock, 0.25)


def update_body(m: SimMachine, **changes: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(m.config)
    if "memory_mb" in changes:
        cfg["guest"]["memory_mb"] = changes.pop("memory_mb")
    if "image" in changes:
        cfg["image"] = changes.pop("image")
    return {"config": cfg, "current_version": m.instance_id, **changes}


class TestWorldStart:
    """The world at t=0: deterministic identities, a release history, healthy machines."""

    def test_identities_are_deterministic(self, clock: ManualClock):
        """Ids and names come from the seed: same seed, same world; other seed, other ids."""
        a, b = world_of(clock), world_of(clock)
        other = world_of(clock, seed=7)
        ids = [m.id for m in machines(a)]
        assert ids == [m.id for m in machines(b)]
        assert [m.name for m in machines(a)] == [m.name for m in machines(b)]
        assert ids != [m.id for m in machines(other)]
        for m in machines(a):
            assert re.fullmatch(r"[0-9a-f]{14}", m.id)
            assert re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", m.name)
            assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", m.instance_id)

    def test_releases_a_day_apart_and_machines_run_the_current_one(self, clock: ManualClock):
        """Releases count up, a day apart before t=0; every machine runs the newest image."""
        w = world_of(clock, releases=["good", "good", "good"])
        rels = w.releases(APP)
        assert [r.version for r in rels] == [3, 2, 1]
        assert [r.created_s for r in rels] == [-86400.0, -172800.0, -259200.0]
        assert len({r.image for r in rels}) == 3
        assert all(re.fullmatch(rf"registry\.fly\.io/{APP}:deployment-[0-9A-Z]{{26}}", r.image)
                   for r in rels)
        assert {m.image for m in machines(w)} == {rels[0].image}
        assert {m.config["metadata"]["fly_release_version"] for m in machines(w)} == {"3"}

    def test_starts_healthy(self, clock: ManualClock):
        """Every machine is started with passing checks; no fault means nothing to recover."""
        w = world_of(clock)
        step(w, clock, 60)
        assert [m.state for m in machines(w)] == ["started"] * 3
        assert w.healthy(APP)
        assert w.recovered_at_s is None and w.fault_log == []
        for m in machines(w):
            j = w.machine_json(m)
            assert [c["status"] for c in j["checks"]] == ["passing", "passing"]
            assert j["events"][-1]["type"] == "launch"

    def test_bad_current_release_leaves_machines_stopped(self, clock: ManualClock):
        """A current "bad" release crashed on start: machines stopped, flyd gave up."""
        w = world_of(clock, releases=["good", "bad"])
        assert {m.state for m in machines(w)} == {"stopped"}
        last = exits(machines(w)[0])[-1]
        assert (last["exit_code"], last["restarting"], last["requested_stop"]) == (1, False, False)
        assert not w.healthy(APP)
        assert w.releases(APP)[0].status == "failed"


class TestLifecycle:
    """Machines API operations move machines through Fly's states with realistic delays."""

    def test_restart(self, clock: ManualClock):
        """started → restarting (exit requested_stop, restarting) → started after ~3 s."""
        w = world_of(clock)
        m = machines(w)[0]
        w.restart(m, None)
        assert m.state == "restarting"
        assert exits(m)[-1]["requested_stop"] and exits(m)[-1]["restarting"]
        step(w, clock, 2.9)
        assert m.state == "restarting"
        step(w, clock, 0.2)
        assert m.state == "started"
        assert (m.events[-1].type, m.events[-1].status, m.events[-1].source) == (
            "start", "started", "flyd")

    def test_stop_then_start(self, clock: ManualClock):
        """stop: stopping → stopped (~2 s); restart is refused then; start brings it back."""
        w = world_of(clock)
        m = machines(w)[0]
        w.stop(m, {"signal": "SIGTERM", "timeout": "10s"})
        assert m.state == "stopping"
        step(w, clock, 2.0)
        assert m.state == "stopped"
        assert exits(m)[-1] == {**exits(m)[-1], "requested_stop": True, "restarting": False,
                                "exit_code": 0}
        with pytest.raises(ApiError) as err:
            w.restart(m, None)
        assert (err.value.status, err.value.message) == (
            409, "unable to restart machine, not currently started")
        assert w.start(m)["previous_state"] == "stopped"
        assert m.state == "starting"
        step(w, clock, 2.0)
        assert m.state == "started"

    def test_update_replaces_with_a_new_version(self, clock: ManualClock):
        """update: replacing → started after ~5 s, with a new instance_id and the new config."""
        w = world_of(clock)
        m = machines(w)[0]
        before = m.instance_id
        out = w.update(m, update_body(m, memory_mb=1024))
        assert out["instance_id"] != before and out["state"] == "replacing"
        assert (m.events[-1].type, m.events[-1].status, m.events[-1].source) == (
            "update", "replacing", "user")
        step(w, clock, 4.9)
        assert m.state == "replacing"
        step(w, clock, 0.2)
        assert m.state == "started" and m.memory_mb == 1024
        assert w.wait_result(m, {"started"}, out["instance_id"]) is not None
        assert w.wait_result(m, {"started"}, before) is None

    @pytest.mark.parametrize("body", [{"signal": "SIGNOPE"}, {"timeout": "soon"}])
    def test_stop_is_validated(self, clock: ManualClock, body: dict[str, Any]):
        """stop takes a known signal and a Go duration as timeout."""
        w = world_of(clock)
        with pytest.raises(ApiError) as err:
            w.stop(machines(w)[0], body)
        assert err.value.status == 400 and machines(w)[0].state == "started"

    def test_update_with_skip_launch_leaves_a_stopped_machine_stopped(self, clock: ManualClock):
        """A stopped machine updated with skip_launch=true stays stopped, at the new version."""
        w = world_of(clock)
        m = machines(w)[0]
        w.stop(m, None)
        step(w, clock, 3)
        before = m.instance_id
        w.update(m, update_body(m, skip_launch=True))
        step(w, clock, 10)
        assert m.state == "stopped" and m.instance_id != before

    @pytest.mark.parametrize(("body", "status", "text"), [
        ({"skip_launch": True}, 400, "config is required"),
        ("not an object", 400, "config is required"),
        ({"config": {"guest": {"cpus": 1, "memory_mb": 512}}}, 400, "image is required"),
        ("memory 500", 422, "multiples of 256 MB"),
        ("memory 4096", 422, "between 256 and 2048 MB"),
        ("stale version", 409, "current_version mismatch"),
        ("new region", 400, "region cannot be changed"),
    ])
    def test_update_is_validated(self, clock: ManualClock, body: Any, status: int, text: str):
        """Updates need the full config, a valid guest and the current version."""
        w = world_of(clock)
        m = machines(w)[0]
        if body == "memory 500":
            body = update_body(m, memory_mb=500)
        elif body == "memory 4096":
            body = update_body(m, memory_mb=4096)
        elif body == "stale version":
            body = {**update_body(m), "current_version": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
        elif body == "new region":
            body = {**update_body(m), "region": "ord"}
        with pytest.raises(ApiError) as err:
            w.update(m, body)
        assert err.value.status == status and text in err.value.message
        assert m.state == "started"


class TestFlyd:
    """flyd's on-failure policy restarts a crashing machine, then gives up."""

    def test_restarts_up_to_max_retries_then_leaves_it_stopped(self, clock: ManualClock):
        """restart_count grows with restarting=true; after 10 within 5 min: stopped, false."""
        w = world_of(clock, {"at_s": 10, "kind": "crash", "machines": 1, "until_s": 890})
        m = machines(w)[0]
        step(w, clock, 14)
        assert exits(m)[-1]["restarting"] is True
        assert m.state == "started"  # the state stays started while flyd restarts it
        step(w, clock, 120)
        assert m.state == "stopped"
        crash = [e for e in m.events if e.type == "exit" and e.t >= 10]
        assert [e.request["restart_count"] for e in crash] == list(range(11))
        assert [e.request["exit_event"]["restarting"] for e in crash] == [True] * 10 + [False]
        assert {e.request["exit_event"]["exit_code"] for e in crash} == {1}
        assert not w.healthy(APP)


class TestFaults:
    """Each fault changes the world, which then stays consistent (config/scenarios/README.md)."""

    def test_crash_is_cured_by_start(self, clock: ManualClock):
        """crash without until_s: machines stay stopped (no flyd restart) until started."""
        w = world_of(clock, {"at_s": 10, "kind": "crash", "machines": "all"}, autostart=False)
        step(w, clock, 30)
        assert {m.state for m in machines(w)} == {"stopped"}
        assert {exits(m)[-1]["restarting"] for m in machines(w)} == {False}
        assert not w.healthy(APP)
        for m in machines(w):
            w.start(m)
        step(w, clock, 40)
        assert w.healthy(APP)
        assert [e["event"] for e in w.fault_log] == ["fired", "cured"]
        assert w.recovered_at_s is not None and 32 <= w.recovered_at_s <= 70

    def test_crash_meets_autostart(self, clock: ManualClock):
        """With autostart on, the next request makes Fly's proxy start one crashed machine."""
        w = world_of(clock, {"at_s": 10, "kind": "crash", "machines": "all"})
        step(w, clock, 30)
        assert sorted(m.state for m in machines(w)) == ["started", "stopped", "stopped"]
        assert w.mutations == []

    def test_crash_with_until_s_crashes_again_after_a_start(self, clock: ManualClock):
        """crash with until_s: a start does not help before until_s; after it, it does."""
        w = world_of(clock, {"at_s": 5, "kind": "crash", "machines": 1, "until_s": 300})
        m = machines(w)[0]
        step(w, clock, 200)
        assert m.state == "stopped"
        w.start(m)
        step(w, clock, 10)
        assert exits(m)[-1]["exit_code"] == 1 and m.events[-1].t > 200
        step(w, clock, 120)
        assert m.state == "stopped" and w.fault_log[-1]["event"] == "ended"
        w.start(m)
        step(w, clock, 40)
        assert m.state == "started" and w.healthy(APP)

    def test_oom_keeps_killing_until_memory_is_raised(self, clock: ManualClock):
        """oom: killed 5-10 s after every start; a restart changes nothing; memory cures it."""
        w = world_of(clock, {"at_s": 0, "kind": "oom", "machines": 1, "need_mb": 1024})
        m = machines(w)[0]
        step(w, clock, 40)
        kills = [x for x in exits(m) if x["oom_killed"]]
        assert len(kills) >= 3
        assert {(x["exit_code"], x["restarting"]) for x in kills} == {(137, True)}
        assert any("Out of memory: Killed process" in ln.message for ln in w.apps[APP].logs)
        assert any("OOM killed" in ln.message for ln in w.apps[APP].logs)
        step(w, clock, 0.5)
        while m.state != "started" or not m.app_up:
            step(w, clock, 0.5)
        w.restart(m, None)
        step(w, clock, 15)
        assert len([x for x in exits(m) if x["oom_killed"]]) > len(kills)
        while m.state != "started":
            step(w, clock, 0.5)
        w.update(m, update_body(m, memory_mb=1024))
        assert w.fault_log[-1]["event"] == "cured"
        step(w, clock, 6)
        count = len([x for x in exits(m) if x["oom_killed"]])
        step(w, clock, 120)
        assert len([x for x in exits(m) if x["oom_killed"]]) == count
        assert w.healthy(APP) and w.recovered_at_s is not None

    def test_bad_release_is_cured_by_rollback_not_restart(self, clock: ManualClock):
        """bad_release: a new release crashes on start; restarts fail again, a rollback works."""
        w = world_of(clock, {"at_s": 10, "kind": "bad_release", "rate": 1.0}, machines=2)
        step(w, clock, 11)
        v3, v2 = w.releases(APP)[:2]
        assert v3.version == 3 and v3.created_s == 10.0
        assert {m.state for m in machines(w)} == {"replacing"}
        assert {m.image for m in machines(w)} == {v3.image}
        step(w, clock, 10)
        assert w.releases(APP)[0].status == "failed"
        m = machines(w)[0]
        assert any(x["exit_code"] == 1 and x["restarting"] for x in exits(m))
        settle(w, clock, m)
        acted = w.now
        if m.state == "started":
            w.restart(m, None)
        else:
            w.start(m)
        step(w, clock, 10)
        assert m.events[-1].t > acted and exits(m)[-1]["exit_code"] == 1  # crashes again
        for m in machines(w):
            settle(w, clock, m)
            w.update(m, update_body(m, image=v2.image))
        assert w.fault_log[-1]["event"] == "cured"
        step(w, clock, 40)
        assert {m.state for m in machines(w)} == {"started"}
        assert w.healthy(APP)

    def test_errors_are_cured_by_restart(self, clock: ManualClock):
        """errors without until_s: that fraction fails; restarting each machine cures it."""
        w = world_of(clock, {"at_s": 0, "kind": "errors", "rate": 0.3}, traffic_rps=20.0)
        step(w, clock, 100)
        resp = w.apps[APP].responses
        ratio = resp["500"] / sum(resp.values())
        assert 0.22 < ratio < 0.38
        assert {m.checks["servicecheck-00-http-8080"].status for m in machines(w)} == {"passing"}
        for m in machines(w):
            w.restart(m, None)
        step(w, clock, 40)
        before = resp["500"]
        step(w, clock, 60)
        assert resp["500"] == before
        assert w.fault_log[-1]["event"] == "cured" and w.healthy(APP)

    def test_errors_with_until_s_ignore_restarts_and_critical_check(self, clock: ManualClock):
        """errors with until_s last until then; at rate >= 0.5 the machine's check is critical."""
        w = world_of(clock, {"at_s": 0, "kind": "errors", "rate": 0.6, "machines": 1,
                             "until_s": 120})
        m = machines(w)[0]
        step(w, clock, 30)
        assert m.checks["servicecheck-00-http-8080"].status == "critical"
        w.restart(m, None)
        step(w, clock, 40)
        assert m.checks["servicecheck-00-http-8080"].status == "critical"
        assert w.fault_log[-1]["event"] == "fired"
        step(w, clock, 80)
        assert w.fault_log[-1]["event"] == "ended"
        assert m.checks["servicecheck-00-http-8080"].status == "passing"

    def test_latency_has_the_asked_p95_and_memory_cures_it(self, clock: ManualClock):
        """latency: served latency has about that p95; raising memory (update) cures it."""
        w = world_of(clock, {"at_s": 0, "kind": "latency", "p95_ms": 2500}, machines=2,
                     traffic_rps=0)
        step(w, clock, 1)
        app = w.apps[APP]
        samples = sorted(w.serve(app, machines(w)[i % 2], "/x", log_all=False)[1]
                         for i in range(2000))
        assert 2.1 < samples[int(0.95 * len(samples))] < 2.9
        for m in machines(w):
            w.restart(m, None)
        step(w, clock, 5)
        assert w.fault_log[-1]["event"] == "fired"  # a restart is no cure
        for m in machines(w):
            w.update(m, update_body(m, memory_mb=1024))
        assert w.fault_log[-1]["event"] == "cured"
        step(w, clock, 40)
        fast = sorted(w.serve(app, machines(w)[0], "/x", log_all=False)[1] for _ in range(500))
        assert fast[int(0.95 * len(fast))] < 0.2
        assert w.healthy(APP)

    def test_dependency_down_ignores_restarts(self, clock: ManualClock):
        """dependency_down: /health and 60 % fail, checks critical, logs say why, restarts do
        nothing; it ends at until_s."""
        w = world_of(clock, {"at_s": 0, "kind": "dependency_down", "until_s": 200},
                     machines=2, traffic_rps=10.0)
        app = w.apps[APP]
        step(w, clock, 40)
        assert {c.status for m in machines(w) for c in m.checks.values()} == {"critical"}
        assert w.serve(app, machines(w)[0], "/health", log_all=True)[0] == 503
        statuses = [w.serve(app, machines(w)[0], "/api", log_all=False)[0] for _ in range(1000)]
        assert 0.5 < statuses.count(503) / 1000 < 0.7
        messages = " ".join(ln.message for ln in app.logs)
        assert "Supabase connection timeout" in messages and "OpenAI API error 503" in messages
        for m in machines(w):
            w.restart(m, None)
        step(w, clock, 60)
        assert not w.healthy(APP)
        assert {c.status for m in machines(w) for c in m.checks.values()} == {"critical"}
        step(w, clock, 140)
        assert w.healthy(APP) and w.recovered_at_s is not None and w.recovered_at_s >= 200

    def test_flap_alternates(self, clock: ManualClock):
        """flap: the machine's health endpoint and check alternate bad/good every period_s;
        the other requests it serves succeed."""
        w = world_of(clock, {"at_s": 0, "kind": "flap", "machines": 1, "period_s": 20,
                             "until_s": 400}, traffic_rps=0)
        m = machines(w)[0]
        seen = set()
        for _ in range(200):
            step(w, clock, 1)
            seen.add(m.checks["servicecheck-00-http-8080"].status)
        assert seen == {"passing", "critical"}
        assert {w.serve(w.apps[APP], m, "/health", log_all=False)[0] for _ in range(3)} == {503}
        assert {w.serve(w.apps[APP], m, "/x", log_all=False)[0] for _ in range(3)} == {200}
        step(w, clock, 20)
        assert {w.serve(w.apps[APP], m, "/health", log_all=False)[0] for _ in range(3)} == {200}
        assert {c.status for c in machines(w)[1].checks.values()} == {"passing"}

    def test_autostop_stops_idle_machines_down_to_min(self, clock: ManualClock):
        """With autostop on and no traffic, the proxy stops one machine per period to the min."""
        w = world_of(clock, autostop=True, min_machines_running=1, traffic_rps=0)
        step(w, clock, 303)
        assert [m.state for m in machines(w)].count("stopped") == 1
        stopped = next(m for m in machines(w) if m.state == "stopped")
        last = w.machine_json(stopped)["events"][0]
        assert (last["type"], last["source"]) == ("exit", "flyd")
        assert last["request"]["exit_event"]["requested_stop"] is True
        step(w, clock, 600)
        assert [m.state for m in machines(w)].count("started") == 1
        assert w.healthy(APP)  # autostopped machines are idle, not down

    def test_autostop_broken_never_stops(self, clock: ManualClock):
        """autostop_broken: idle machines stay up although autostop is on."""
        w = world_of(clock, {"at_s": 10, "kind": "autostop_broken"}, autostop=True,
                     traffic_rps=0)
        step(w, clock, 900)
        assert {m.state for m in machines(w)} == {"started"}
        assert w.healthy(APP)  # requests are fine...
        assert w.recovered_at_s is None  # ...but the fault is still there

    def test_autostart_starts_a_machine_for_a_request(self, clock: ManualClock):
        """With every machine stopped and autostart on, a request makes the proxy start one."""
        w = world_of(clock, machines=2, traffic_rps=0)
        for m in machines(w):
            w.stop(m, None)
        step(w, clock, 3)
        app = w.apps[APP]
        assert w.route(app) is None
        assert [m.state for m in machines(w)].count("starting") == 1
        assert w.can_wait(app)
        step(w, clock, 2)
        assert w.route(app) is not None
        assert w.mutations == []  # the proxy's start is not an API call

    def test_no_autostart_means_503(self, clock: ManualClock):
        """Without autostart, background requests meet a 503 at the edge when all are down."""
        w = world_of(clock, {"at_s": 0, "kind": "crash"}, autostart=False)
        step(w, clock, 10)
        assert w.route(w.apps[APP]) is None and not w.can_wait(w.apps[APP])
        assert w.apps[APP].responses["503"] >= 40

    def test_recover_ends_faults(self, clock: ManualClock):
        """recover ends the app's faults; with machines, only those machines' part."""
        w = world_of(clock, {"at_s": 0, "kind": "errors", "rate": 0.2, "until_s": 800},
                     {"at_s": 0, "kind": "latency", "p95_ms": 3000},
                     {"at_s": 50, "kind": "recover", "app": APP, "machines": 1},
                     {"at_s": 100, "kind": "recover"})
        step(w, clock, 60)
        assert all(e["event"] == "fired" for e in w.fault_log)
        errors = next(af for af in w.faults if af.kind == "errors")
        assert machines(w)[0].id not in errors.targets and len(errors.targets) == 2
        step(w, clock, 60)
        ended = {e["kind"] for e in w.fault_log if e["event"] == "ended"}
        assert ended == {"errors", "latency"}
        assert w.healthy(APP) and w.recovered_at_s == 100.0

    def test_platform_faults_are_flags(self, clock: ManualClock):
        """fly_api_down and watcher_partition leave the services healthy."""
        w = world_of(clock, {"at_s": 5, "kind": "fly_api_down", "until_s": 50},
                     {"at_s": 5, "kind": "watcher_partition", "until_s": 60})
        step(w, clock, 10)
        assert w.api_down() and w.partitioned(APP) and w.healthy(APP)
        step(w, clock, 45)
        assert not w.api_down() and w.partitioned(APP)
        step(w, clock, 10)
        assert not w.partitioned(APP) and w.recovered_at_s == 60.0


class TestRecovery:
    """healthy() and recovered_at_s: the simulator's own truth."""

    def test_injected_fault_resets_and_sets_recovery(self, clock: ManualClock):
        """inject fires now; recovered_at_s is None until every fault is over and all healthy."""
        w = world_of(clock)
        step(w, clock, 20)
        w.inject(Fault(at_s=0, kind="errors", app=APP, rate=0.9, machines=1))
        assert w.fault_log[-1] == {"at_s": 20.0, "kind": "errors", "app": APP,
                                   "event": "fired", "how": w.fault_log[-1]["how"]}
        assert not w.healthy(APP) and w.recovered_at_s is None
        m = machines(w)[0]
        step(w, clock, 20)
        w.restart(m, None)
        step(w, clock, 40)
        assert w.recovered_at_s is not None and w.recovered_at_s > 40
        first = w.recovered_at_s
        w.inject(Fault(at_s=0, kind="dependency_down", app=APP, until_s=100))
        assert w.recovered_at_s is None
        step(w, clock, 60)
        assert w.recovered_at_s is not None and w.recovered_at_s > first

    def test_waits_for_scheduled_faults(self, clock: ManualClock):
        """Recovery counts only after the last scheduled fault has begun."""
        w = world_of(clock, {"at_s": 0, "kind": "fly_api_down", "until_s": 10},
                     {"at_s": 100, "kind": "fly_api_down", "until_s": 110})
        step(w, clock, 50)
        assert w.recovered_at_s is None
        step(w, clock, 70)
        assert w.recovered_at_s == 110.0


class TestTraffic:
    """Background traffic flows through the proxy and counts at the edge."""

    def test_rate_and_counters(self, clock: ManualClock):
        """traffic_rps requests per scenario second; counters and histograms only go up."""
        w = world_of(clock, traffic_rps=2.5)
        step(w, clock, 100)
        app = w.apps[APP]
        assert sum(app.responses.values()) == 250 == app.latency_count
        assert sum(app.buckets) == 250
        served = {ln.instance for ln in app.logs if ln.t > 0}
        assert served == {m.id for m in machines(w)}  # spread over the machines

    def test_clock_is_respected(self):
        """World time is clock time since begin(), whatever the clock's epoch."""
        clock = ManualClock(datetime(2030, 5, 1, tzinfo=UTC))
        w = world_of(clock)
        clock.advance(12.5)
        assert w.t() == 12.5
        w.step_to()
        assert w.now == 12.5
