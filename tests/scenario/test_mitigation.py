"""Auto-mitigation end to end: the simulator and the daemon on one virtual clock (``simulate``).

Each test reads as a timeline in scenario seconds: the fault fires at 120 s, the daemon detects
it, plans, guards and acts on the simulated Fly, and the world's own truth (``World``) says what
was changed. Timing targets (first action <= 10 s after detection, recovery <= 90 s / 180 s) are
measured by ``bench/mttr.py``; these tests assert what was done, in what order, and how often.
"""

from __future__ import annotations

import asyncio
import itertools
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hotdash_watch.config import Settings
from hotdash_watch.daemon import Daemon
from hotdash_watch.sim.app import SimServer
from hotdash_watch.sim.runner import PageReceiver, run_scenario, settings_for, simulate_scenario
from hotdash_watch.sim.scenario import Fault, load_scenario, parse_scenario
from hotdash_watch.sim.world import World
from hotdash_watch.virtual_time import VirtualClock
from tests.support.virtual import on_virtual_time

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
#: Scenario seconds between two looks of a test's outside actor (virtual time: free).
LOOK_S = 0.1
MCP = "hotdash-llamaindex-mcp"
AGENT = "hotdash-agent-service"


def _run(name: str, tmp_path: Path, *, stop_at_s: float, config: str | None = None,
         dry_run: bool | None = None) -> tuple[dict[str, Any], World]:
    keep: list[Any] = []
    cfg = None
    if config is not None:
        cfg = tmp_path / "watch.toml"
        cfg.write_text(config)
    report = simulate_scenario(load_scenario(SCENARIOS / f"{name}.toml"),
                               registry=CollectorRegistry(), workdir=tmp_path,
                               stop_at_s=stop_at_s, keep=keep, config=cfg, dry_run=dry_run)
    return report, keep[0]


@on_virtual_time
async def _run_with(name: str, tmp_path: Path, *, stop_at_s: float,
                    when: Callable[[World], bool], do: Callable[[World], Any]
                    ) -> tuple[dict[str, Any], World]:
    """Run the scenario, and call ``do(world)`` as soon as ``when(world)`` holds (an outside
    actor: a deploy taking leases, Fly's API going down), looking every ``LOOK_S`` scenario
    seconds."""
    keep: list[Any] = []
    clock = VirtualClock.running()

    async def actor() -> None:
        while not keep:
            await clock.sleep(LOOK_S)
        world = keep[0]
        while not when(world) and world.t() < stop_at_s:
            await clock.sleep(LOOK_S)
        do(world)

    task = asyncio.create_task(actor())
    report = await run_scenario(load_scenario(SCENARIOS / f"{name}.toml"), clock,
                                registry=CollectorRegistry(), workdir=tmp_path,
                                stop_at_s=stop_at_s, keep=keep)
    await task
    return report, keep[0]


def _calls(world: World, app: str) -> Counter[tuple[str, str]]:
    """(call, machine) -> how many times the simulator received that mutation for ``app``."""
    return Counter((m["call"], m["machine"]) for m in world.mutations
                   if m["app"] == app and m["call"] in ("start", "restart", "stop", "update"))


def _acted(report: dict[str, Any], *outcomes: str) -> list[dict[str, Any]]:
    return [a for a in report["actions"] if not outcomes or a["outcome"] in outcomes]


MEMORY_ALLOWED = """
[mitigation]
allowed_actions = ["restart", "start", "rollback", "raise_memory", "scale_out"]
"""


class TestRunbookScenarios:
    def test_all_machines_down_is_resolved_by_starts(self, tmp_path: Path):
        """Three crashed machines are started one at a time, each once, and the world heals;
        nothing is restarted, nothing rolled back, the other app is never touched."""
        report, world = _run("all-machines-down", tmp_path, stop_at_s=420)
        actions = _acted(report)
        assert [a["kind"] for a in actions] == ["start", "start", "start"], actions
        assert all(a["outcome"] == "ok" for a in actions), actions
        assert len({a["target"] for a in actions}) == 3
        assert [a["at_s"] for a in actions] == sorted(a["at_s"] for a in actions)
        for a, b in itertools.pairwise(actions):
            assert a["ended_at_s"] <= b["at_s"], "one action at a time per app"
        calls = _calls(world, MCP)
        assert set(calls) == {("start", a["target"]) for a in actions}
        assert all(n == 1 for n in calls.values()), calls
        assert _calls(world, AGENT) == Counter()
        assert world.recovered_at_s is not None
        inc = report["incidents"][0]
        assert [e["event"] for e in inc["timeline"]][:2] == ["opened", "mitigating"]

    def test_bad_release_is_rolled_back_exactly_once(self, tmp_path: Path):
        """A release failing 80 % of requests is rolled back once, machine by machine, to the
        image the watcher saw healthy; no machine is restarted and none updated twice."""
        report, world = _run("bad-release", tmp_path, stop_at_s=420)
        rollbacks = [a for a in _acted(report) if a["kind"] == "rollback"]
        assert len(rollbacks) == 1 and rollbacks[0]["outcome"] == "ok", report["actions"]
        assert not [a for a in _acted(report, "ok", "failed", "started")
                    if a["kind"] in ("start", "restart")]
        calls = _calls(world, AGENT)
        updates = {m for (call, m) in calls if call == "update"}
        assert len(updates) == 3 and all(calls[("update", m)] == 1 for m in updates), calls
        assert not [c for c in calls if c[0] == "restart"]
        app = world.apps[AGENT]
        good = sorted(app.releases, key=lambda r: r.version)[-2].image
        assert {m.image for m in app.machines} == {good}
        assert "config and secrets" in rollbacks[0]["reason"]
        assert world.recovered_at_s is not None

    def test_oom_kills_are_resolved_by_a_memory_raise(self, tmp_path: Path):
        """With raise_memory allowed, the OOM-ing machines get 1024 MB, each once; the page and
        the timeline say the raise lasts until the next deploy."""
        report, world = _run("oom-kills", tmp_path, stop_at_s=420, config=MEMORY_ALLOWED)
        raises = [a for a in _acted(report, "ok") if a["kind"] == "raise_memory"]
        assert len(raises) == 2 and len({a["target"] for a in raises}) == 2, report["actions"]
        assert not [a for a in _acted(report) if a["kind"] in ("start", "restart")]
        memory = {m.id: m.memory_mb for m in world.apps[MCP].machines}
        assert all(memory[a["target"]] == 1024 for a in raises), memory
        assert world.recovered_at_s is not None
        notes = [r for i in report["incidents"] for e in i["timeline"] for r in e["reasons"]]
        assert any("[[vm]]" in n and "next deploy" in n for n in notes)

    def test_memory_raise_is_vetoed_and_paged_by_default(self, tmp_path: Path):
        """At the default authority (restart, start, rollback) the memory raise is not done:
        it is recorded as vetoed with the setting to change, and paged."""
        report, world = _run("oom-kills", tmp_path, stop_at_s=240)
        vetoed = _acted(report, "vetoed")
        assert vetoed and {a["kind"] for a in vetoed} == {"raise_memory"}
        assert all(a["guard"] == "allowed_actions" for a in vetoed)
        assert _calls(world, MCP) == Counter()
        assert any(p["event"] == "vetoed" for p in report["pages"])

    def test_dependency_down_is_paged_never_restarted(self, tmp_path: Path):
        """Logs that name the database and the model API: paged, and no machine is started,
        restarted or updated although the app is down."""
        report, world = _run("dependency-down", tmp_path, stop_at_s=420)
        assert _acted(report, "ok", "failed", "started", "dry_run") == []
        assert _calls(world, AGENT) == Counter()
        notes = [r for i in report["incidents"] for e in i["timeline"] for r in e["reasons"]]
        assert any("dependency" in n and "not restarted" in n for n in notes), notes
        assert any(p["event"] == "action" for p in report["pages"])

    def test_crash_loop_stops_at_the_restart_budget_and_pages(self, tmp_path: Path):
        """A machine that crashes on every start has been restarted by Fly's supervisor past the
        budget: the start is vetoed with both counts, paged, and never sent."""
        report, world = _run("crash-loop", tmp_path, stop_at_s=360)
        vetoed = _acted(report, "vetoed")
        assert vetoed and vetoed[0]["guard"] == "restart_budget_machine", report["actions"]
        assert "by Fly's supervisor" in vetoed[0]["reason"]
        assert _acted(report, "ok", "failed", "started") == []
        assert _calls(world, MCP) == Counter()
        assert [p for p in report["pages"] if p["event"] == "vetoed"]

    def test_dry_run_changes_nothing(self, tmp_path: Path):
        """Dry-run plans and records "would have done" (three starts), and the simulator
        receives no mutation at all."""
        report, world = _run("all-machines-down", tmp_path, stop_at_s=260, dry_run=True)
        would = _acted(report, "dry_run")
        assert [a["kind"] for a in would] == ["start", "start", "start"], report["actions"]
        assert world.mutations == []
        assert world.recovered_at_s is None


class TestLeaseHeldElsewhere:
    def test_a_deploy_holding_the_leases_is_waited_for_not_fought(self, tmp_path: Path):
        """While someone else (a deploy) holds every machine's lease, the start is deferred and
        recorded; the lease is never cleared; once it expires the machines are started."""
        def deploy_holds_leases(world: World) -> None:
            for m in world.apps[MCP].machines:
                world.hold_lease(MCP, m.id, owner="deploy@ci", ttl_s=60)

        report, world = _run_with("all-machines-down", tmp_path, stop_at_s=400,
                                        when=lambda w: w.t() >= 121, do=deploy_holds_leases)
        deferred = _acted(report, "deferred")
        assert deferred and deferred[0]["kind"] == "start", report["actions"]
        assert deferred[0]["at_s"] < 181
        started = [a for a in _acted(report, "ok") if a["kind"] == "start"]
        assert len(started) == 3 and all(a["at_s"] >= 181 for a in started), report["actions"]
        assert not [m for m in world.mutations if m["call"] == "release_lease"
                    and m["status"] != 200]


class Live:
    """The simulator and daemons started on it by hand (to add a silence, or to kill a daemon
    mid-action and start another on the same store)."""

    def __init__(self, clock: VirtualClock, sim: SimServer, settings: Settings) -> None:
        self.clock, self.sim, self.settings = clock, sim, settings
        self.running: list[Daemon] = []

    @property
    def world(self) -> World:
        return self.sim.world

    async def daemon(self) -> Daemon:
        d = Daemon(self.settings, self.clock, CollectorRegistry())
        self.running.append(d)
        await d.start()
        return d

    async def kill(self, d: Daemon, app: str) -> None:
        """As if the process died: no more passes, the running action dies where it is (its
        record stays "started"), then the rest shuts down."""
        assert d.scheduler is not None and d.pipeline is not None
        await d.scheduler.stop(0)
        task = d.mitigator.tasks[app]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.running.remove(d)
        await d.stop()

    async def until(self, cond: Callable[[], bool], limit_s: float) -> None:
        """Wait (scenario time, at most ``limit_s`` more) until ``cond()`` holds, looking every
        ``LOOK_S`` scenario seconds."""
        deadline = self.world.t() + limit_s
        while not cond() and self.world.t() < deadline:
            await self.clock.sleep(LOOK_S)
        assert cond(), f"not reached by {self.world.t():.0f} s: {self.world.mutations}"

    def calls(self, app: str, call: str) -> Counter[str]:
        """machine -> how many ``call`` mutations the simulator received for ``app``."""
        return Counter(m["machine"] for m in self.world.mutations
                       if m["app"] == app and m["call"] == call)


@asynccontextmanager
async def live(name: str, tmp_path: Path) -> AsyncIterator[Live]:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    clock = VirtualClock.running()
    sim = SimServer(scenario, clock)
    receiver = PageReceiver(clock)
    await receiver.start()
    await sim.start()
    run = Live(clock, sim, settings_for(scenario, sim, workdir=tmp_path, page_url=receiver.url))
    try:
        yield run
    finally:
        for d in run.running:
            await d.stop()
        await sim.stop()
        await receiver.stop()


class TestSilenceSuspendsMitigation:
    @on_virtual_time
    async def test_a_maintenance_silence_vetoes_every_action(self, tmp_path: Path):
        """A silence with suspend_mitigation (a planned maintenance) keeps the watcher's hands
        off: the starts are vetoed with the silence named, and nothing reaches Fly."""
        async with live("all-machines-down", tmp_path) as run:
            daemon = await run.daemon()
            assert daemon.store is not None
            now = run.clock.timestamp()
            await daemon.store.add_silence(MCP, now, now + 3600, author="ops@example",
                                           reason="disk migration", created_at=now,
                                           suspend_mitigation=True)
            await run.clock.sleep(max(0.0, 240 - run.world.t()))
            rows = await daemon.store.actions_since(0.0, app=MCP)
            assert rows and all(r.outcome.value == "vetoed" for r in rows), rows
            assert {r.guard for r in rows} == {"mitigation_suspended"}
            assert "disk migration" in rows[0].text
            assert run.world.mutations == []


STUCK_ERRORS = """
name = "stuck-errors"
duration_s = 900
[[apps]]
name = "hotdash-llamaindex-mcp"
machines = 2
traffic_rps = 5.0
[[faults]]
at_s = 120
kind = "errors"
app = "hotdash-llamaindex-mcp"
machines = 1
rate = 0.9
until_s = 100000
"""


class TestEscalation:
    def test_sev2_not_resolved_by_its_mitigation_becomes_sev1(self, tmp_path: Path):
        """A machine failing its checks is restarted, keeps failing (the fault outlives the
        restart): the restart's own check fails, and the SEV-2 is escalated to SEV-1 saying
        which mitigation did not work (runbook SEV-2 step 5)."""
        scenario = parse_scenario(tomllib.loads(STUCK_ERRORS), "stuck-errors")
        report = simulate_scenario(scenario, registry=CollectorRegistry(), workdir=tmp_path,
                                   stop_at_s=480)
        [inc] = report["incidents"]
        restarts = [a for a in _acted(report, "ok", "failed") if a["kind"] == "restart"]
        assert restarts, report["actions"]
        escalations = [e for e in inc["timeline"] if e["event"] == "escalated"
                       and any("not resolved" in r for r in e["reasons"])]
        assert escalations and escalations[0]["severity"] == "SEV-1", inc["timeline"]
        ended = min(a["ended_at_s"] for a in restarts)
        assert escalations[0]["at_s"] >= ended
        assert "restart of" in escalations[0]["reasons"][0]
        assert inc["max_severity"] == "SEV-1"


class TestFlyFaultsDuringMitigation:
    def test_fly_api_outage_mid_mitigation_is_recorded_and_retried(self, tmp_path: Path):
        """The Fly API goes down right after the first start is sent, for longer than the
        action may wait: that start is recorded failed (not confirmed), the daemon keeps
        running, and once Fly answers again every machine is started and the world recovers."""
        def first_start(w: World) -> bool:
            return any(m["call"] == "start" for m in w.mutations)

        def outage(w: World) -> None:
            w.inject(Fault(at_s=0, kind="fly_api_down", until_s=w.t() + 140))

        report, world = _run_with("all-machines-down", tmp_path, stop_at_s=480,
                                        when=first_start, do=outage)
        outcomes = Counter(a["outcome"] for a in report["actions"])
        assert outcomes["failed"] >= 1, report["actions"]
        assert world.recovered_at_s is not None
        started = {m["machine"] for m in world.mutations if m["call"] == "start"
                   and m["status"] == 200}
        assert started == {m.id for m in world.apps[MCP].machines}


class TestRestartMidAction:
    @on_virtual_time
    async def test_an_unconfirmed_start_is_checked_not_repeated(self, tmp_path: Path):
        """The watcher dies right after sending a start; on restart it finds the action
        'started', sees the machine up and records it confirmed: the start is not sent again."""
        async with live("all-machines-down", tmp_path) as run:
            first = await run.daemon()
            await run.until(lambda: bool(run.calls(MCP, "start")), 400)
            await run.kill(first, MCP)
            [machine] = run.calls(MCP, "start")
            [unfinished] = await _unfinished(run.settings.store_url)
            assert (unfinished.kind.value, unfinished.target) == ("start", machine)

            second = await run.daemon()
            assert second.store is not None
            rows = {r.id: r for r in await second.store.actions_since(0.0, app=MCP)}
            assert rows[unfinished.id].outcome.value in ("ok", "failed")
            assert "watcher restarted" in rows[unfinished.id].detail["result"]
            await run.until(lambda: len(run.calls(MCP, "start")) == 3, 200)
            starts = run.calls(MCP, "start")
            assert starts[machine] == 1 and all(n == 1 for n in starts.values()), starts


class TestRestartMidRollback:
    @on_virtual_time
    async def test_finishes_the_rollback_without_repeating_anything(self, tmp_path: Path):
        """The watcher is stopped while rolling back (one machine done), then started again on
        the same store: it carries the rollback on; every machine is updated exactly once."""
        async with live("bad-release", tmp_path) as run:
            first = await run.daemon()
            await run.until(lambda: len(run.calls(AGENT, "update")) >= 1, 400)
            await run.kill(first, AGENT)
            assert len(run.calls(AGENT, "update")) < 3
            stored = await _unfinished(run.settings.store_url)
            assert [a.kind.value for a in stored] == ["rollback"]

            second = await run.daemon()
            await run.until(lambda: len(run.calls(AGENT, "update")) == 3
                            and run.world.recovered_at_s is not None, 400)
            updates = run.calls(AGENT, "update")
            assert all(n == 1 for n in updates.values()), updates
            assert not run.calls(AGENT, "restart") and not run.calls(AGENT, "start")
            assert second.store is not None
            # The action's end is written just after the last machine is updated.
            rows = await second.store.actions_since(0.0, app=AGENT)
            deadline = run.world.t() + 60
            while rows[0].outcome.value == "started" and run.world.t() < deadline:
                await run.clock.sleep(LOOK_S)
                rows = await second.store.actions_since(0.0, app=AGENT)
            rollbacks = [a for a in rows if a.kind.value == "rollback"]
            assert len(rollbacks) == 1 and rollbacks[0].outcome.value == "ok", rows


async def _unfinished(url: str) -> list[Any]:
    from hotdash_watch.records.store import Store

    async with await Store.open(url) as store:
        return await store.unfinished_actions()
