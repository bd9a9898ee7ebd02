"""The action executors (``hotdash_watch.actions``) against the real Fly simulator over sockets.

Every test runs an executor the way the mitigation loop does - a ``Step`` and an
``ActionContext`` holding a real ``FlyClient`` - and then reads the simulator's truth
(``sim.world``: machine state, config, leases, ``mutations``, ``fault_log``) to check what was
done on "Fly", not only what the executor says it did.

Time: the simulator, the proxy, the client and the executors share one ``VirtualClock`` in a
``VirtualTimeLoop`` (``@on_virtual_time``): the clock moves only when every task waits, straight
to the next timer, so a rollback that takes minutes of Fly time takes the CPU it needs and the
outcome is the same on a busy machine as on an idle one. Outside actors (Fly's proxy
autostarting a machine, a slow update) are tasks or proxy hooks that wait on that clock.
Fly API faults the simulator cannot make on a single call (a 500, a 429 on one start) come from
``FaultProxy`` (actions_support.py), a real HTTP proxy in front of the simulator, on that loop.
"""

from __future__ import annotations

import copy
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from hotdash_watch.actions import EXECUTORS, ActionContext, ActionResult
from hotdash_watch.actions.base import POLL_S
from hotdash_watch.clock import Clock
from hotdash_watch.config import MitigationSettings
from hotdash_watch.fly import FlyClient
from hotdash_watch.fly.retry import RetryPolicy
from hotdash_watch.model.action import ActionKind, Outcome
from hotdash_watch.policy import Step, Why
from hotdash_watch.sim import Fault, Scenario, SimServer, parse_scenario
from hotdash_watch.sim.world import SERVICE_CHECK, SIM_OWNER, START_S
from tests.contract.actions_support import (
    LOOK_S,
    Reply,
    SimulatedFly,
    events_after,
    events_since,
    mutation_log,
    simulated_fly,
    wait_until,
)
from tests.support.virtual import on_virtual_time

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # scenario second 0
APP = "hotdash-api"
GONE = "0123456789dead"  # a machine id the app does not have
TOKEN = SecretStr("fm2_lJPECAAAAAAAAMN1xkZGsim-actions-not-a-real-token-5c1d")
SETTINGS = MitigationSettings(settle_s=10.0, action_timeout_s=90.0, lease_ttl_s=60.0)
WRITES = ("start", "stop", "restart", "update")
ATTEMPTS = 4  # tries of one Fly call, where a test counts them
#: Tolerance of "the same instant": the simulator records a mutation's ``at_s`` rounded to the
#: millisecond (events and the world's ``now`` are not rounded).
EXACT = 1e-3

SCENARIO = parse_scenario({
    "name": "actions-contract",
    "duration_s": 7200,
    "seed": 0,
    "apps": [{"name": APP, "machines": 3, "memory_mb": 512}],
}, "test_actions")
# The same app without Fly's proxy autostart: stopped machines stay stopped whatever the traffic.
NO_AUTOSTART = parse_scenario({
    "name": "actions-contract-no-autostart",
    "duration_s": 7200,
    "seed": 0,
    "apps": [{"name": APP, "machines": 3, "memory_mb": 512, "autostart": False}],
}, "test_actions")

LogEntries = list[MutableMapping[str, Any]]


# --- the simulated Fly, and fixtures --------------------------------------------------------------


@asynccontextmanager
async def simulated(scenario: Scenario = SCENARIO) -> AsyncIterator[SimulatedFly]:
    """The simulator (``scenario``), the fault proxy and a client session on the test's virtual
    clock (the test body runs ``@on_virtual_time``); all stopped when the body ends."""
    async with simulated_fly(scenario, token=TOKEN, start=START) as fly:
        yield fly


@pytest.fixture
def captured() -> Iterator[LogEntries]:
    with structlog.testing.capture_logs() as entries:
        yield entries


class Run:
    """An executor run: its context, every progress snapshot it saved, and its result."""

    def __init__(self, client: FlyClient, clock: Clock,
                 detail: dict[str, Any] | None = None,
                 settings: MitigationSettings = SETTINGS) -> None:
        self.saved: list[dict[str, Any]] = []
        self.ctx = ActionContext(client, clock, settings, APP, dict(detail or {}), self._save)

    async def _save(self, detail: dict[str, Any]) -> None:
        # A copy, as the store serializes it at once (the detail's lists are shared with the
        # executor, which goes on appending to them).
        self.saved.append(copy.deepcopy(detail))

    async def __call__(self, step: Step) -> ActionResult:
        result = await EXECUTORS[step.kind](step, self.ctx)
        assert isinstance(result, ActionResult)
        return result


def make_step(kind: ActionKind, target: str, **params: Any) -> Step:
    return Step(kind, target, Why.MACHINE_DOWN, f"{kind.value} {target}", params)


def writes(sim: SimServer, machine: str, *, ok_only: bool = True) -> list[dict[str, Any]]:
    """The machine-changing calls the simulator received for ``machine``."""
    return [m for m in mutation_log(sim, machine, calls=WRITES)
            if not ok_only or m["status"] < 300]


def healthy(sim: SimServer, machine: str) -> bool:
    m = sim.world.machine(APP, machine)
    return (m.state == "started" and m.app_up and bool(m.checks)
            and all(c.status == "passing" for c in m.checks.values()))


def assert_confirmed_by_settling(sim: SimServer, machine: str) -> None:
    """The executor confirmed the machine the way it says: healthy (started, every check
    passing) for ``settle_s``, and it noticed within one poll (``POLL_S``) of that."""
    m = sim.world.machine(APP, machine)
    assert m.boot_s is not None and healthy(sim, machine)
    healthy_since = max([m.boot_s, *(c.changed_s for c in m.checks.values())])
    up = sim.world.now - healthy_since
    assert SETTINGS.settle_s - EXACT <= up < SETTINGS.settle_s + POLL_S, up


def lease_cycle(sim: SimServer, machine: str) -> list[tuple[str, int]]:
    return [(m["call"], m["status"])
            for m in mutation_log(sim, machine, calls=("lease_acquire", "lease_release"))]


def crash_to_stopped(sim: SimServer, machine: str) -> None:
    """The machine's process crashes for good (exit 1, flyd does not restart it): stopped."""
    sim.world.inject(Fault(at_s=0, kind="crash", app=APP, machines=(machine,)))
    m = sim.world.machine(APP, machine)
    assert m.state == "stopped" and not m.last_exit_requested


async def stop_for_good(client: FlyClient, machine: str) -> None:
    """Stop a machine the way autostop or a person would (a requested stop)."""
    before = await client.get_machine(APP, machine)
    await client.stop(APP, machine)
    assert await client.wait(APP, machine, state="stopped", version=before.instance_id,
                             timeout_s=30)


async def bad_release(sim: SimServer, rate: float) -> tuple[Any, Any]:
    """Deploy a bad release; returns (bad, previous good) releases once it has settled in
    (rate 1.0: its machines crash on start and flyd restarts them)."""
    sim.world.inject(Fault(at_s=0, kind="bad_release", app=APP, rate=rate))
    bad, good = sim.world.releases(APP)[:2]
    ids = sim.world.machine_ids(APP)

    def on_bad_image() -> bool:
        return all(sim.world.machine(APP, i).image == bad.image
                   and sim.world.machine(APP, i).state == "started" for i in ids)

    await wait_until(on_bad_image, sim, what="the bad release running everywhere")
    if 0.5 <= rate < 1.0:  # it serves but its checks fail: wait until Fly's checks say so
        await wait_until(lambda: all(
            sim.world.machine(APP, i).checks[SERVICE_CHECK].status == "critical" for i in ids),
            sim, what="the bad release's checks failing")
    return bad, good


def rollback_step(good: Any, bad: Any) -> Step:
    return Step(ActionKind.ROLLBACK, APP, Why.ERRORS_AFTER_RELEASE,
                f"roll back v{bad.version} -> v{good.version}",
                {"image": good.image, "version": good.version, "from_version": bad.version,
                 "from_image": bad.image})


def retry_wait_bounds(attempt: int, retry_after: float | None = None) -> tuple[float, float]:
    """The client's wait after failed attempt ``attempt`` (1-based), by its retry policy:
    ``max(Retry-After, backoff)``, the backoff drawn from ``[b / 2, b]``."""
    policy = RetryPolicy()
    b = min(policy.max_backoff_s, policy.initial_s * 2 ** (attempt - 1))
    low, high = b / 2, b
    if retry_after is not None:
        low, high = max(low, retry_after), max(high, retry_after)
    return low, high


def assert_retry_gaps(arrivals: list[float], retry_after: list[float | None],
                      logged: list[dict[str, Any]]) -> None:
    """The clock time between two attempts of a call, as they reached the proxy, is exactly the
    wait the client logged, and that wait is within the policy's bounds for that attempt."""
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(gaps) == len(retry_after) == len(logged)
    for n, (gap, ra, entry) in enumerate(zip(gaps, retry_after, logged, strict=True), 1):
        low, high = retry_wait_bounds(n, ra)
        assert gap == pytest.approx(entry["wait_s"], abs=EXACT), (n, gaps, logged)
        assert low - EXACT <= gap <= high + EXACT, (n, gap, low, high)


def assert_no_secret(result: ActionResult, entries: LogEntries) -> None:
    secret = TOKEN.get_secret_value()
    assert secret not in result.text and secret not in repr(result.detail)
    assert secret not in repr(entries)


# --- the registry ---------------------------------------------------------------------------------


def test_every_fly_action_kind_has_exactly_one_executor():
    """Every kind that touches Fly has an executor; nothing else (page) has one."""
    assert set(EXECUTORS) == {k for k in ActionKind if k.touches_fly}
    assert ActionKind.PAGE not in EXECUTORS
    for kind, executor in EXECUTORS.items():
        assert inspect.iscoroutinefunction(executor), kind
        assert list(inspect.signature(executor).parameters) == ["step", "ctx"], kind


# --- start, restart, stop -------------------------------------------------------------------------


class TestBoot:
    @on_virtual_time
    async def test_start_of_a_crashed_machine(self):
        """A crashed (stopped) machine is started under its lease, then confirmed healthy."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            crash_to_stopped(sim, mid)
            run = Run(client, clock)
            result = await run(make_step(ActionKind.START, mid))
            assert result.outcome is Outcome.OK, result.text
            assert not result.crashed_again and f"start of {mid}" in result.text
            m = sim.world.machine(APP, mid)
            assert m.state == "started" and healthy(sim, mid)
            assert [w["call"] for w in writes(sim, mid, ok_only=False)] == ["start"]
            assert [w["status"] for w in writes(sim, mid)] == [200]
            # The lease was taken before the start and given back after it; nobody holds it now.
            assert lease_cycle(sim, mid) == [("lease_acquire", 201), ("lease_release", 200)]
            order = [x["call"] for x in mutation_log(sim, mid)]
            assert order == ["lease_acquire", "start", "lease_release"]
            assert m.lease is None
            assert result.detail["calls"] == [
                {"call": "start", "machine": mid, "result": "ok", "previous_state": "stopped"}]
            assert result.detail["crashed_again"] is False and "since" in result.detail
            # Progress was saved once, right after the start was sent (a copy taken then): a
            # watcher restarted during the wait knows the call went out; nothing was added later.
            assert run.saved == [{"calls": [{"call": "start", "machine": mid, "result": "ok",
                                             "previous_state": "stopped"}],
                                  "since": result.detail["since"]}]
            # Confirmed: it stayed up at least settle_s after it started, without a new exit.
            started_at = mutation_log(sim, mid, calls=("start",))[0]["at_s"]
            (boot,) = events_after(sim, APP, mid, started_at, kind="start")
            assert boot.t == pytest.approx(started_at + START_S, abs=EXACT)  # Fly's 2 s start
            assert sim.world.now - boot.t >= SETTINGS.settle_s
            assert_confirmed_by_settling(sim, mid)
            assert not [e for e in events_after(sim, APP, mid, boot.t, kind="exit")]
            assert [f["event"] for f in sim.world.fault_log if f["kind"] == "crash"] == [
                "fired", "cured"]

    @on_virtual_time
    async def test_restart_of_a_started_machine(self):
        """A started machine is restarted (not started) and comes back healthy."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            run = Run(client, clock)
            result = await run(make_step(ActionKind.RESTART, mid))
            assert result.outcome is Outcome.OK, result.text
            assert [(w["call"], w["status"]) for w in writes(sim, mid, ok_only=False)] == [
                ("restart", 200)]
            assert result.detail["calls"] == [
                {"call": "restart", "machine": mid, "result": "ok", "previous_state": "started"}]
            assert healthy(sim, mid) and sim.world.machine(APP, mid).lease is None
            assert lease_cycle(sim, mid) == [("lease_acquire", 201), ("lease_release", 200)]
            assert_confirmed_by_settling(sim, mid)

    @on_virtual_time
    async def test_a_machine_that_crashes_again_fails(self):
        """A machine whose process keeps crashing is started, exits again: FAILED, crashed."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            await stop_for_good(client, mid)
            sim.world.inject(Fault(at_s=0, kind="crash", app=APP, machines=(mid,),
                                   until_s=sim.world.t() + 100_000))
            mark = len(writes(sim, mid))
            run = Run(client, clock)
            result = await run(make_step(ActionKind.START, mid))
            assert result.outcome is Outcome.FAILED
            assert result.crashed_again is True and result.detail["crashed_again"] is True
            assert f"start of {mid}: {mid} exited with code 1" in result.text
            assert "after the action" in result.text
            assert [w["call"] for w in writes(sim, mid)[mark:]] == ["start"]  # once, not looped
            assert sim.world.machine(APP, mid).lease is None
            # Given up at the first look after the new instance's first exit (within one poll).
            started_at = writes(sim, mid)[mark]["at_s"]
            exit_ = events_since(sim, APP, mid, "start", started_at, kind="exit")[0]
            assert 0.0 <= sim.world.now - exit_.t <= POLL_S + EXACT

    @on_virtual_time
    async def test_stop_of_a_started_machine(self):
        """Scale to zero: a started machine is stopped under its lease."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            run = Run(client, clock)
            result = await run(make_step(ActionKind.STOP, mid))
            assert result.outcome is Outcome.OK, result.text
            m = sim.world.machine(APP, mid)
            assert m.state == "stopped" and m.last_exit_requested
            assert [(w["call"], w["status"]) for w in writes(sim, mid, ok_only=False)] == [
                ("stop", 200)]
            assert result.detail["calls"] == [
                {"call": "stop", "machine": mid, "result": "ok", "previous_state": "started"}]
            assert m.lease is None
            assert lease_cycle(sim, mid) == [("lease_acquire", 201), ("lease_release", 200)]
            others = [i for i in sim.world.machine_ids(APP) if i != mid]
            assert all(sim.world.machine(APP, i).state == "started" for i in others)

    @on_virtual_time
    async def test_stop_of_a_stopped_machine_is_ok_and_does_nothing(self):
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            await stop_for_good(client, mid)
            before = len(writes(sim, mid))
            result = await Run(client, clock)(make_step(ActionKind.STOP, mid))
            assert result.outcome is Outcome.OK and "already stopped" in result.text
            assert len(writes(sim, mid)) == before

    @on_virtual_time
    async def test_scale_out_starts_a_stopped_spare(self):
        """scale_out starts a spare machine that autostop (a requested stop) left stopped."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            await stop_for_good(client, mid)
            result = await Run(client, clock)(make_step(ActionKind.SCALE_OUT, mid))
            assert result.outcome is Outcome.OK, result.text
            assert healthy(sim, mid)
            assert [w["call"] for w in writes(sim, mid)] == ["stop", "start"]


# --- memory ---------------------------------------------------------------------------------------


class TestRaiseMemory:
    @staticmethod
    async def oom_looping(sim: SimServer, machine: str) -> None:
        """An OOM fault (needs 1024 MB) on a 512 MB machine; returns at the first look after an
        OOM kill (at most ``LOOK_S`` later), so the old instance is at least 6 s away from its
        next one (flyd restarts it after 1 s, the next kill comes 5 to 10 s after the boot)."""
        sim.world.inject(Fault(at_s=0, kind="oom", app=APP, machines=(machine,), need_mb=1024))

        def just_killed() -> bool:
            m = sim.world.machine(APP, machine)
            last = m.events[-1]
            return (m.last_exit_oom and last.type == "exit"
                    and sim.world.now - last.t <= LOOK_S + EXACT)

        await wait_until(just_killed, sim, what="an OOM kill")

    @on_virtual_time
    async def test_raise_memory_cures_oom(self):
        """512 -> 1024 MB on an OOM-ing machine: updated once, it stays up, the OOM is cured."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            await self.oom_looping(sim, mid)
            config_before = copy.deepcopy(sim.world.machine(APP, mid).config)  # not the live dict
            run = Run(client, clock)
            result = await run(
                make_step(ActionKind.RAISE_MEMORY, mid, memory_mb=1024, from_mb=512))
            assert result.outcome is Outcome.OK, result.text
            assert not result.crashed_again
            assert "512 -> 1024 MB" in result.text and '[[vm]] memory = "1024mb"' in result.text
            assert "until the next deploy" in result.text
            m = sim.world.machine(APP, mid)
            assert m.memory_mb == 1024 and healthy(sim, mid)
            # The full config was sent back: only guest.memory_mb changed.
            expected = {**config_before, "guest": {**config_before["guest"], "memory_mb": 1024}}
            assert m.config == expected
            assert [(w["call"], w["status"]) for w in writes(sim, mid, ok_only=False)] == [
                ("update", 200)]
            (call,) = result.detail["calls"]
            assert call["call"] == "update" and call["memory_mb"] == 1024 and call["from_mb"] == 512
            assert call["instance_id"] == m.instance_id
            assert [f["event"] for f in sim.world.fault_log if f["kind"] == "oom"] == [
                "fired", "cured"]
            assert m.lease is None

    @on_virtual_time
    async def test_raise_memory_of_a_machine_flyd_gave_up_on(self):
        """A machine stopped after OOM kills is updated without launch, then started."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            await self.oom_looping(sim, mid)
            await wait_until(lambda: sim.world.machine(APP, mid).state == "stopped", sim,
                             what="flyd giving up on the OOM-looping machine")
            result = await Run(client, clock)(
                make_step(ActionKind.RAISE_MEMORY, mid, memory_mb=1024))
            assert result.outcome is Outcome.OK, result.text
            assert [w["call"] for w in writes(sim, mid)] == ["update", "start"]
            assert sim.world.machine(APP, mid).memory_mb == 1024 and healthy(sim, mid)
            assert [c["call"] for c in result.detail["calls"]] == ["update", "start"]

    @on_virtual_time
    async def test_memory_already_raised_is_ok_without_a_call(self):
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            result = await Run(client, clock)(
                make_step(ActionKind.RAISE_MEMORY, mid, memory_mb=512))
            assert result.outcome is Outcome.OK and "already has 512 MB" in result.text
            assert writes(sim, mid, ok_only=False) == []

    @on_virtual_time
    async def test_old_instance_exit_during_the_update_call_is_not_a_crash_again(self):
        """The update call is slow and the old instance is OOM-killed once more meanwhile: the
        new 1024 MB instance never exits, so the raise worked and must be OK."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            mid = sim.world.machine_ids(APP)[0]
            make_client = fly.client
            await self.oom_looping(sim, mid)
            exits_before = len(events_after(sim, APP, mid, 0.0, kind="exit"))
            held_from: list[float] = []

            async def slow_update() -> None:  # the update reaches Fly after one more OOM kill
                held_from.append(sim.world.t())
                await wait_until(
                    lambda: len(events_after(sim, APP, mid, 0.0, kind="exit")) > exits_before,
                    sim, what="another OOM kill of the old instance")

            proxy.before("update", mid, slow_update)
            result = await Run(make_client(via_proxy=True), clock)(
                make_step(ActionKind.RAISE_MEMORY, mid, memory_mb=1024))
            m = sim.world.machine(APP, mid)
            assert m.memory_mb == 1024 and healthy(sim, mid)  # the raise did work
            update_at = mutation_log(sim, mid, calls=("update",))[0]["at_s"]
            # The race did happen: the old instance was OOM-killed while the update call was
            # held, before Fly applied the update.
            (held,) = held_from
            assert [e.t for e in events_after(sim, APP, mid, held, kind="exit")
                    if e.t <= update_at + EXACT and e.request
                    and e.request["exit_event"]["oom_killed"]]
            # The new instance never exited: no exit recorded after the update's own event.
            assert not events_since(sim, APP, mid, "update", update_at, kind="exit")
            assert result.outcome is Outcome.OK, result.text
            assert not result.crashed_again


# --- rollback -------------------------------------------------------------------------------------


class TestRollback:
    @on_virtual_time
    async def test_bad_release_rolled_back_one_machine_at_a_time(self):
        """Every machine gets the previous image once, each started and settled before the
        next one is touched; the bad release is cured and the app is healthy again."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            bad, good = await bad_release(sim, rate=0.8)
            ids = sim.world.machine_ids(APP)
            mutations_before = len(sim.world.mutations)
            run = Run(client, clock)
            result = await run(rollback_step(good, bad))
            assert result.outcome is Outcome.OK, result.text
            assert f"rolled back 3 machine(s) to v{good.version}" in result.text
            assert "config and secrets" in result.text and "rolls forward" in result.text
            for i in ids:
                m = sim.world.machine(APP, i)
                assert m.image == good.image and m.lease is None and healthy(sim, i)
                # The full config was kept: only the image changed (metadata stays the deploy's).
                assert m.memory_mb == 512 and m.config["services"]
            assert sim.world.healthy(APP)
            assert [f["event"] for f in sim.world.fault_log if f["kind"] == "bad_release"] == [
                "fired", "cured"]
            new = sim.world.mutations[mutations_before:]
            updates = [x for x in new if x["call"] == "update"]
            assert [u["status"] for u in updates] == [200, 200, 200]
            assert sorted(u["machine"] for u in updates) == sorted(ids)  # each exactly once
            assert not [x for x in new if x["call"] in ("start", "stop", "restart")]
            for u, nxt in itertools.pairwise(updates):
                # The new instance's boot: the first start recorded after the update's own
                # event (an old instance may have booted at the very instant of the update).
                boot = events_since(sim, APP, u["machine"], "update", u["at_s"],
                                    kind="start")[0]
                assert boot.t < nxt["at_s"], "the next machine was updated before it started"
                assert nxt["at_s"] - boot.t >= SETTINGS.settle_s - EXACT, (
                    "the next machine was updated before this one had settled")
            # Progress was saved after each machine, in the order they were done.
            order = [u["machine"] for u in updates]
            dones = [s["done"] for s in run.saved]
            assert dones[0] == [] and dones[-1] == order
            assert [d for i, d in enumerate(dones) if i == 0 or d != dones[i - 1]] == [
                order[:n] for n in range(4)]
            assert result.detail["done"] == order and result.detail["image"] == good.image
            assert [c["call"] for c in result.detail["calls"]] == ["update"] * 3

    @on_virtual_time
    async def test_crashing_release_rolled_back_after_flyd_gave_up(self):
        """A release that crashes on start (rate 1.0): once flyd gave up, every machine is
        stopped; each is updated without launch, then started, one at a time."""
        async with simulated(NO_AUTOSTART) as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            bad, good = await bad_release(sim, rate=1.0)
            ids = sim.world.machine_ids(APP)
            await wait_until(
                lambda: all(sim.world.machine(APP, i).state == "stopped" for i in ids),
                sim, what="flyd giving up on every machine")
            mark = len(sim.world.mutations)
            result = await Run(client, clock)(rollback_step(good, bad))
            assert result.outcome is Outcome.OK, result.text
            new = [x for x in sim.world.mutations[mark:] if x["call"] in WRITES]
            assert [x["status"] for x in new] == [200] * 6
            order = [x["machine"] for x in new[::2]]
            assert sorted(order) == sorted(ids)
            # Not interleaved: each machine's update and start before the next machine's.
            assert new == [x for mid in order for x in new if x["machine"] == mid]
            assert [x["call"] for x in new] == ["update", "start"] * 3
            starts = new[1::2]
            for started, nxt in zip(starts, new[2::2], strict=False):
                boot = events_after(sim, APP, started["machine"], started["at_s"],
                                    kind="start")[0]
                assert boot.t == pytest.approx(started["at_s"] + START_S, abs=EXACT)
                assert nxt["at_s"] - boot.t >= SETTINGS.settle_s - EXACT, (
                    "the next machine was updated before this one had settled")
            assert all(sim.world.machine(APP, i).image == good.image for i in ids)
            assert sim.world.healthy(APP)

    @on_virtual_time
    async def test_machine_starting_when_updated_does_not_fail_the_rollback(self):
        """Between the rollback's read and its update, Fly's proxy starts the (stopped) machine
        for a request; it has just begun its 2 s start when the update arrives, and Fly refuses
        the update (412). The rollback lets it settle (re-reading every ``POLL_S``), updates it
        then, and goes on: it does not fail."""
        async with simulated(NO_AUTOSTART) as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            make_client = fly.client
            bad, good = await bad_release(sim, rate=1.0)
            ids = sim.world.machine_ids(APP)
            await wait_until(
                lambda: all(sim.world.machine(APP, i).state == "stopped" for i in ids),
                sim, what="flyd giving up on every machine")
            first = sorted(ids)[0]  # every machine is out of service: the rollback goes by id
            autostarted_at: list[float] = []

            async def autostart() -> None:
                if not autostarted_at:
                    sim.world.step_to()
                    sim.world.start(sim.world.machine(APP, first))  # as Fly's proxy does
                    autostarted_at.append(sim.world.now)

            proxy.before("update", first, autostart)
            result = await Run(make_client(via_proxy=True), clock)(rollback_step(good, bad))
            (autostart_s,) = autostarted_at
            updates = mutation_log(sim, first, calls=("update",))
            # Refused at the very instant of the autostart (no clock time passes in between),
            # then sent again, once, after the machine had finished starting, within one poll.
            assert [u["status"] for u in updates] == [412, 200]
            refused, retried = updates
            assert refused["at_s"] == pytest.approx(autostart_s, abs=EXACT)
            boot = events_after(sim, APP, first, autostart_s, kind="start")[0]
            assert boot.t == pytest.approx(autostart_s + START_S, abs=EXACT)
            assert boot.t <= retried["at_s"] <= boot.t + POLL_S + EXACT
            assert result.outcome is Outcome.OK, result.text
            assert all(sim.world.machine(APP, i).image == good.image for i in ids)

    @on_virtual_time
    async def test_crash_of_the_old_instance_during_the_update_is_not_a_crash_again(self):
        """The bad release crash-loops under flyd; the update call is slow and the old
        instance crashes once more meanwhile: the rollback must still go on and succeed."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            make_client = fly.client
            bad, good = await bad_release(sim, rate=1.0)
            ids = sim.world.machine_ids(APP)

            held_from: dict[str, float] = {}

            def slow_update(machine: str) -> Callable[[], Any]:
                async def hold() -> None:
                    held_from.setdefault(machine, sim.world.t())
                    before = len(events_after(sim, APP, machine, 0.0, kind="exit"))
                    # Until the old instance crashes once more (or flyd has given up on it and it
                    # stays stopped: then there is no crash left to race with).
                    await wait_until(
                        lambda: len(events_after(sim, APP, machine, 0.0, kind="exit")) > before
                        or sim.world.machine(APP, machine).state == "stopped",
                        sim, what="another crash of the old instance")
                return hold

            for i in ids:
                proxy.before("update", i, slow_update(i))
            result = await Run(make_client(via_proxy=True), clock)(rollback_step(good, bad))
            first = mutation_log(sim, calls=("update",))[0]
            assert sim.world.machine(APP, first["machine"]).image == good.image
            # The race did happen on the first machine: its old instance crashed while the
            # update call was held (it may be the same instant the update then reached Fly).
            crashed = [e for e in events_after(sim, APP, first["machine"],
                                               held_from[first["machine"]], kind="exit")
                       if e.t <= first["at_s"] + EXACT]
            assert crashed, "the old instance did not crash during the held update"
            # The new instance never exited: nothing after the update's own event.
            assert not events_since(sim, APP, first["machine"], "update", first["at_s"],
                                    kind="exit")
            assert result.outcome is Outcome.OK, result.text
            assert all(sim.world.machine(APP, i).image == good.image for i in ids)

    @on_virtual_time
    async def test_resumed_rollback_does_not_update_a_done_machine_again(self):
        """A rollback resumed with ``done = [first]`` (updated and confirmed before the
        watcher restarted) updates only the others, each once."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            bad, good = await bad_release(sim, rate=0.8)
            ids = sim.world.machine_ids(APP)
            first = sorted(ids)[0]  # all are out of service: the rollback goes by id
            m = await client.get_machine(APP, first)
            config = m.config_copy()
            config["image"] = good.image
            async with client.lease(APP, first) as lease:
                await client.update(APP, first, config=config, current_version=m.instance_id,
                                    nonce=lease.nonce, skip_launch=False)
            await wait_until(lambda: healthy(sim, first), sim, what="the first machine healthy")
            mark = len(sim.world.mutations)
            run = Run(client, clock, detail={"done": [first], "image": good.image,
                                             "version": good.version})
            result = await run(rollback_step(good, bad))
            assert result.outcome is Outcome.OK, result.text
            new = sim.world.mutations[mark:]
            assert not [x for x in new if x["machine"] == first and x["call"] in WRITES]
            updates = [x["machine"] for x in new if x["call"] == "update"]
            assert sorted(updates) == sorted(set(ids) - {first})
            assert result.detail["done"] == [first, *updates]
            assert all(sim.world.machine(APP, i).image == good.image for i in ids)
            assert sim.world.healthy(APP)

    @on_virtual_time
    async def test_resumed_rollback_waits_for_the_machine_in_flight(self):
        """The watcher died while the first machine was replacing: the resumed rollback must
        not take the second machine down before the first one is back."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            bad, good = await bad_release(sim, rate=0.3)  # errors, but checks pass: all serving
            ids = sorted(sim.world.machine_ids(APP))
            first = ids[0]
            m = await client.get_machine(APP, first)
            config = m.config_copy()
            config["image"] = good.image
            async with client.lease(APP, first) as lease:
                await client.update(APP, first, config=config, current_version=m.instance_id,
                                    nonce=lease.nonce, skip_launch=False)
            assert sim.world.machine(APP, first).state == "replacing"
            update_first = mutation_log(sim, first, calls=("update",))[-1]["at_s"]
            run = Run(client, clock, detail={"done": [first], "image": good.image,
                                             "version": good.version})
            result = await run(rollback_step(good, bad))
            assert result.outcome is Outcome.OK, result.text
            boot = events_since(sim, APP, first, "update", update_first, kind="start")[0]
            later = [x for x in mutation_log(sim, calls=("update",))
                     if x["machine"] != first and x["status"] == 200]
            assert later and all(x["at_s"] > boot.t for x in later), (
                f"{later[0]['machine']} updated at {later[0]['at_s']} s while {first} was still "
                f"replacing (started at {boot.t} s)")
            # Back means settled: started and passing for settle_s, as for any machine it updates.
            assert all(x["at_s"] - boot.t >= SETTINGS.settle_s - EXACT for x in later), (
                f"{later[0]['machine']} updated {later[0]['at_s'] - boot.t:.1f} s after {first} "
                "started, before it had settled")

    @on_virtual_time
    async def test_rollback_deferred_by_someone_elses_lease(self):
        """A deploy holds the first machine's lease: the rollback defers, changes nothing."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            bad, good = await bad_release(sim, rate=0.8)
            first = sorted(sim.world.machine_ids(APP))[0]
            nonce = sim.world.hold_lease(APP, first, owner="deploy@ci", ttl_s=600)
            mark = len(sim.world.mutations)
            result = await Run(client, clock)(rollback_step(good, bad))
            assert result.outcome is Outcome.DEFERRED, result.text
            assert "deploy@ci" in result.text
            new = sim.world.mutations[mark:]
            assert [(x["call"], x["machine"], x["status"]) for x in new] == [
                ("lease_acquire", first, 409)]
            lease = sim.world.machine(APP, first).lease
            assert lease is not None and (lease.owner, lease.nonce) == ("deploy@ci", nonce)


# --- leases, gone machines ------------------------------------------------------------------------


KINDS_ON_A_MACHINE = [
    pytest.param(ActionKind.RESTART, {}, id="restart"),
    pytest.param(ActionKind.START, {}, id="start"),
    pytest.param(ActionKind.STOP, {}, id="stop"),
    pytest.param(ActionKind.RAISE_MEMORY, {"memory_mb": 1024}, id="raise_memory"),
]


class TestLeaseAndGone:
    @pytest.mark.parametrize(("kind", "params"), KINDS_ON_A_MACHINE)
    @on_virtual_time
    async def test_lease_held_by_someone_else_defers(self, kind, params, captured):
        """A lease held by another actor (a deploy): DEFERRED, nothing done, lease untouched."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mid = sim.world.machine_ids(APP)[0]
            nonce = sim.world.hold_lease(APP, mid, owner="deploy@ci", ttl_s=600)
            m = sim.world.machine(APP, mid)
            state, version = m.state, m.instance_id
            run = Run(client, clock)
            result = await run(make_step(kind, mid, **params))
            assert result.outcome is Outcome.DEFERRED, result.text
            assert "deploy@ci holds the machine's lease" in result.text
            assert [(x["call"], x["status"]) for x in mutation_log(sim, mid)] == [
                ("lease_acquire", 409)]
            m = sim.world.machine(APP, mid)
            assert (m.state, m.instance_id) == (state, version)
            assert m.lease is not None and (m.lease.owner, m.lease.nonce) == ("deploy@ci", nonce)
            assert result.detail["calls"] == [
                {"call": "acquire_lease", "machine": mid, "result": "LeaseHeld", "status": 409}]
            assert_no_secret(result, captured)

    @pytest.mark.parametrize(("kind", "params"), [
        *KINDS_ON_A_MACHINE, pytest.param(ActionKind.SCALE_OUT, {}, id="scale_out")])
    @on_virtual_time
    async def test_machine_gone_fails_without_raising(self, kind, params, captured):
        """A machine that no longer exists: FAILED, 'gone', no exception, nothing changed."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            client = fly.client()
            mark = len(sim.world.mutations)
            result = await Run(client, clock)(make_step(kind, GONE, **params))
            assert result.outcome is Outcome.FAILED
            assert f"{kind.value} of {GONE} failed: the machine is gone (404)" == result.text
            assert all(x["status"] == 404 for x in sim.world.mutations[mark:])
            assert result.detail["calls"][-1]["result"] == "FlyNotFound"
            assert_no_secret(result, captured)


# --- Fly API failing ------------------------------------------------------------------------------


class TestFlyApiFailing:
    @pytest.mark.parametrize("replies", [
        pytest.param([Reply(500), Reply(500)], id="two-500s"),
        pytest.param([Reply(503, "busy")], id="503"),
        pytest.param([Reply(429, "rate limited", {"Retry-After": "2"})], id="429"),
    ])
    @on_virtual_time
    async def test_transient_failure_of_the_start_is_retried(self, replies, captured):
        """The start call fails a few times, then goes through: OK, one start applied."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            mid = sim.world.machine_ids(APP)[0]
            make_client = fly.client
            crash_to_stopped(sim, mid)
            proxy.fail("start", mid, *replies)
            result = await Run(make_client(via_proxy=True), clock)(make_step(ActionKind.START, mid))
            assert result.outcome is Outcome.OK, result.text
            assert proxy.calls("start", mid) == [r.status for r in replies] + [200]
            assert [(w["call"], w["status"]) for w in writes(sim, mid, ok_only=False)] == [
                ("start", 200)]
            assert healthy(sim, mid) and sim.world.machine(APP, mid).lease is None
            assert result.detail["calls"] == [
                {"call": "start", "machine": mid, "result": "ok", "previous_state": "stopped"}]
            retried = [e for e in captured if e["event"] == "fly_call_retry"]
            assert [e["status"] for e in retried] == [r.status for r in replies]
            # Each retry came exactly its wait later (Retry-After: 2 -> exactly 2 s).
            assert_retry_gaps(proxy.arrivals("start", mid),
                              [float(r.headers["Retry-After"]) if "Retry-After" in r.headers
                               else None for r in replies], retried)
            assert_no_secret(result, captured)

    @pytest.mark.parametrize(("reply", "error"), [
        pytest.param(Reply(500), "FlyUnavailable", id="500"),
        pytest.param(Reply(429, "rate limited", {"Retry-After": "1"}), "FlyRateLimited",
                     id="429"),
    ])
    @on_virtual_time
    async def test_persistent_failure_of_the_start_fails_readably(self, reply, error, captured):
        """The start keeps failing: FAILED after the client's retries, a readable text, the
        lease given back, the machine left as it was."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            mid = sim.world.machine_ids(APP)[0]
            make_client = fly.client
            crash_to_stopped(sim, mid)
            proxy.fail("start", mid, reply, always=True)
            result = await Run(make_client(via_proxy=True, attempts=ATTEMPTS), clock)(
                make_step(ActionKind.START, mid))
            assert result.outcome is Outcome.FAILED
            assert result.text.startswith(
                f"start of {mid} failed: the Fly API is unavailable after retries (")
            assert str(reply.status) in result.text and APP in result.text
            assert proxy.calls("start", mid) == [reply.status] * ATTEMPTS
            assert writes(sim, mid, ok_only=False) == []  # nothing reached the simulator
            m = sim.world.machine(APP, mid)
            assert m.state == "stopped" and m.lease is None
            assert lease_cycle(sim, mid) == [("lease_acquire", 201), ("lease_release", 200)]
            assert result.detail["calls"] == [
                {"call": "start", "machine": mid, "result": error, "status": reply.status}]
            retried = [e for e in captured if e["event"] == "fly_call_retry"]
            ra = float(reply.headers["Retry-After"]) if "Retry-After" in reply.headers else None
            assert_retry_gaps(proxy.arrivals("start", mid), [ra] * (ATTEMPTS - 1), retried)
            assert_no_secret(result, captured)

    @on_virtual_time
    async def test_lease_release_failing_does_not_fail_the_action(self, captured):
        """The start worked but the lease could not be given back: still OK (the lease
        expires by itself), and the failed release is logged."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            mid = sim.world.machine_ids(APP)[0]
            make_client = fly.client
            crash_to_stopped(sim, mid)
            proxy.fail("lease_release", mid, Reply(500), always=True)
            result = await Run(make_client(via_proxy=True, attempts=ATTEMPTS), clock)(
                make_step(ActionKind.START, mid))
            assert result.outcome is Outcome.OK, result.text
            assert healthy(sim, mid)
            # The release was tried as often as the client tries any call, then given up; the
            # lease stays ours and expires by itself exactly lease_ttl_s after it was taken
            # (the confirmation was over before then).
            assert proxy.calls("lease_release", mid) == [500] * ATTEMPTS
            (acquired,) = mutation_log(sim, mid, calls=("lease_acquire",))
            lease = sim.world.machine(APP, mid).lease
            assert lease is not None and lease.owner == SIM_OWNER
            assert lease.expires_s == pytest.approx(acquired["at_s"] + SETTINGS.lease_ttl_s,
                                                    abs=EXACT)
            assert sim.world.now < lease.expires_s
            assert "fly_lease_release_failed" in [e["event"] for e in captured]

    @on_virtual_time
    async def test_fly_api_down_before_the_action(self, captured):
        """fly_api_down (503s and hangs): FAILED after bounded retries, nothing changed."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            mid = sim.world.machine_ids(APP)[0]
            make_client = fly.client
            crash_to_stopped(sim, mid)
            sim.world.inject(Fault(at_s=0, kind="fly_api_down", until_s=sim.world.t() + 3600))
            timeout_s, began = 5.0, clock.monotonic()
            result = await Run(make_client(timeout_s=timeout_s, attempts=ATTEMPTS), clock)(
                make_step(ActionKind.START, mid))
            took = clock.monotonic() - began
            assert result.outcome is Outcome.FAILED
            assert result.text.startswith(
                f"start of {mid} failed: the Fly API is unavailable after retries")
            assert not [x for x in mutation_log(sim, mid) if x["status"] < 300]
            assert sim.world.machine(APP, mid).state == "stopped"
            assert result.detail["calls"][-1]["result"] == "FlyUnavailable"
            # Bounded, exactly: the lease call was tried ATTEMPTS times; each try ended at
            # once (a 503) or at the client's timeout (a hang, no status), with the logged
            # waits in between, and nothing else took clock time.
            retried = [e for e in captured if e["event"] == "fly_call_retry"]
            assert [e["call"] for e in retried] == ["acquire_lease"] * (ATTEMPTS - 1)
            statuses = [e["status"] for e in retried] + [result.detail["calls"][-1]["status"]]
            assert set(statuses) <= {503, None}
            hung = statuses.count(None)
            assert took == pytest.approx(sum(e["wait_s"] for e in retried) + hung * timeout_s,
                                         abs=2 * EXACT)
            assert took <= ATTEMPTS * timeout_s + sum(
                retry_wait_bounds(n)[1] for n in range(1, ATTEMPTS))
            assert_no_secret(result, captured)

    @on_virtual_time
    async def test_fly_api_down_during_the_action(self, captured):
        """The API goes down right after the start went through: FAILED, no crash; the lease
        could not be given back, so it is left to expire."""
        async with simulated() as fly:
            sim, clock = fly.sim, fly.clock
            proxy = fly.proxy
            mid = sim.world.machine_ids(APP)[0]
            make_client = fly.client
            crash_to_stopped(sim, mid)

            def outage(status: int) -> None:
                if status == 200:
                    sim.world.inject(Fault(at_s=0, kind="fly_api_down",
                                           until_s=sim.world.t() + 3600))

            proxy.after("start", mid, outage)
            run = Run(make_client(via_proxy=True, timeout_s=5.0, attempts=ATTEMPTS), clock)
            result = await run(make_step(ActionKind.START, mid))
            assert result.outcome is Outcome.FAILED
            assert "the Fly API is unavailable after retries" in result.text
            assert [(w["call"], w["status"]) for w in writes(sim, mid)] == [("start", 200)]
            assert [c["result"] for c in result.detail["calls"]] == ["ok", "FlyUnavailable"]
            lease = sim.world.machine(APP, mid).lease
            assert lease is not None and lease.owner == SIM_OWNER
            assert lease.description == "hotdash-watch mitigation"
            (acquired,) = mutation_log(sim, mid, calls=("lease_acquire",))
            assert lease.expires_s == pytest.approx(acquired["at_s"] + SETTINGS.lease_ttl_s,
                                                    abs=EXACT)
            # The wait and the release were each tried as often as the client tries a call.
            retried = [e["call"] for e in captured if e["event"] == "fly_call_retry"]
            assert retried == ["wait"] * (ATTEMPTS - 1) + ["release_lease"] * (ATTEMPTS - 1)
            assert "fly_lease_release_failed" in [e["event"] for e in captured]
            assert_no_secret(result, captured)
