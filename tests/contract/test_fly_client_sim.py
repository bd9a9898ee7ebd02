"""The real FlyClient against the real Fly simulator (SimServer) over loopback HTTP.

A client that works against the simulator must also work against Fly, so the two have to agree
on paths, bodies, status codes, error texts and time units. Every test reads the simulator's
truth (``sim.world``) and checks that what the client parsed from the wire matches it.

Time: the simulator runs on one ``ManualClock``. The client gets a ``SharedClock`` that reads the
same time and, when the client sleeps (retry backoff, Retry-After), moves that clock forward by
the amount asked, so the simulator's rate-limit bucket sees exactly the wait the client made and
nothing really sleeps. Long polls (``wait``) are awaited with ``drive``, which moves the clock in
small steps while the request is in flight, as the simulator's own tests do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import pytest
import structlog
from pydantic import SecretStr

from hotdash_watch.clock import ManualClock
from hotdash_watch.fly import (
    FlyClient,
    FlyConflict,
    FlyError,
    FlyNotFound,
    FlyRateLimited,
    FlyUnauthorized,
    FlyUnavailable,
    LeaseHeld,
    LogFollower,
    Machine,
)
from hotdash_watch.sim import Fault, SimServer, parse_scenario
from hotdash_watch.sim.world import SIM_OWNER

T = TypeVar("T")
LogEntries = list[MutableMapping[str, Any]]

APP = "hotdash-api"
OTHER = "hotdash-web"
GONE = "0123456789dead"  # a machine id no app has
# Made-up macaroon-shaped tokens: the simulator accepts TOKEN only.
TOKEN = SecretStr("fm2_lJPECAAAAAAAAMN1xkZGsim-contract-not-a-real-token-7f3a")
WRONG = SecretStr("fm2_lJPECAAAAAAAAMN1xkZGwrong-token-not-a-real-one-0b9e")
SECRETS = (TOKEN.get_secret_value(), WRONG.get_secret_value())

SCENARIO = parse_scenario({
    "name": "fly-client-contract",
    "duration_s": 3600,
    "seed": 0,
    "apps": [
        # Lots of traffic, so that the world keeps logging while the follower polls.
        {"name": APP, "machines": 3, "memory_mb": 512, "traffic_rps": 50.0},
        {"name": OTHER, "machines": 1},
    ],
}, "test_fly_client_sim")


class SharedClock:
    """The client's clock: the simulator's time; a sleep moves that time forward at once."""

    rate = 1.0

    def __init__(self, base: ManualClock) -> None:
        self.base = base
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.base.now()

    def timestamp(self) -> float:
        return self.base.timestamp()

    def monotonic(self) -> float:
        return self.base.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.base.advance(max(0.0, seconds))
        await asyncio.sleep(0)


async def drive(clock: ManualClock, awaitable: Awaitable[T], *, step_s: float = 0.25,
                limit_s: float = 180.0) -> T:
    """Await ``awaitable`` while moving ``clock`` forward (a long poll is waiting on it)."""
    task = asyncio.ensure_future(awaitable)
    moved = 0.0
    try:
        while not task.done():
            await asyncio.sleep(0.001)  # let the socket I/O through (a real, tiny wait)
            if task.done():
                break
            assert moved < limit_s, f"still waiting after {moved:g} clock seconds"
            clock.advance(step_s)
            moved += step_s
        return await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def assert_leaks_no_secret(exc: BaseException | None, entries: LogEntries) -> None:
    """No token is in the error's str/repr/attributes (causes included) nor in any log entry."""
    texts = [repr(entries)]
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts += [str(exc), repr(exc), repr(getattr(exc, "__dict__", {}))]
        exc = exc.__cause__ or exc.__context__
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def retries(entries: LogEntries) -> list[MutableMapping[str, Any]]:
    return [e for e in entries if e["event"] == "fly_call_retry"]


def mutations(sim: SimServer, machine: str, call: str) -> list[int]:
    """The statuses the simulator answered to ``call`` on ``machine``, in order."""
    return [m["status"] for m in sim.world.mutations
            if m["machine"] == machine and m["call"] == call]


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[SimServer]:
    server = SimServer(SCENARIO, clock, token=TOKEN.get_secret_value())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def session(sim: SimServer) -> AsyncIterator[aiohttp.ClientSession]:
    # Depends on ``sim`` so that the session is closed before the server stops.
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def shared(clock: ManualClock) -> SharedClock:
    return SharedClock(clock)


@pytest.fixture
def make_client(session: aiohttp.ClientSession, shared: SharedClock,
                sim: SimServer) -> Callable[..., FlyClient]:
    def make(**kw: Any) -> FlyClient:
        kw.setdefault("timeout_s", 5.0)
        return FlyClient(session, shared, token=kw.pop("token", TOKEN),
                         machines_url=sim.machines_url, api_url=sim.api_url, **kw)

    return make


@pytest.fixture
def client(make_client: Callable[..., FlyClient]) -> FlyClient:
    return make_client()


@pytest.fixture
def captured() -> Iterator[LogEntries]:
    with structlog.testing.capture_logs() as entries:
        yield entries


@pytest.fixture
def mid(sim: SimServer) -> str:
    """The first machine of APP."""
    return sim.world.machine_ids(APP)[0]


async def stop_and_settle(client: FlyClient, clock: ManualClock, machine_id: str) -> Machine:
    """Stop ``machine_id`` through the client and wait until it is stopped."""
    before = await client.get_machine(APP, machine_id)
    await client.stop(APP, machine_id)
    assert await drive(clock, client.wait(APP, machine_id, state="stopped",
                                          version=before.instance_id, timeout_s=30))
    return await client.get_machine(APP, machine_id)


# --- reads ----------------------------------------------------------------------------------------


class TestListMachines:
    async def test_states_checks_and_events_match_the_world(self, client, sim, clock):
        """Every machine's state, version, image, memory, checks and events match the sim's."""
        stopped_id = sim.world.machine_ids(APP)[1]
        await stop_and_settle(client, clock, stopped_id)
        machines = await client.list_machines(APP)
        assert [m.id for m in machines] == sim.world.machine_ids(APP)
        for m in machines:
            truth = sim.world.machine(APP, m.id)
            assert (m.name, m.state, m.region, m.instance_id) == (
                truth.name, truth.state, truth.region, truth.instance_id)
            assert m.image == truth.image and m.memory_mb == truth.memory_mb == 512
            assert m.process_group == "app" and m.is_app_machine
            assert m.release_version == str(sim.world.releases(APP)[0].version)
            assert m.config_copy() == truth.config
            want_events = list(reversed(truth.events[-5:]))
            assert [(e.type, e.status, e.source) for e in m.events] == [
                (e.type, e.status, e.source) for e in want_events]
            assert [e.timestamp for e in m.events] == pytest.approx(
                [sim.world.ts(e.t) for e in want_events], abs=1e-3)
            assert all(e.id is None for e in m.events)  # embedded events carry no id
            if m.id == stopped_id:
                assert m.state == "stopped" and m.checks == () and m.checks_passing is None
                assert m.autostopped  # newest exit: requested_stop=true
                assert m.latest_exit is not None and m.latest_exit.exit is not None
                assert m.latest_exit.exit.exit_code == 0
            else:
                assert m.state == "started" and m.checks_passing is True
                assert {(c.name, c.status) for c in m.checks} == {
                    (name, c.status) for name, c in truth.checks.items()}
                assert all(c.updated_at is not None for c in m.checks)

    async def test_app_machines_only(self, client, sim, mid):
        """Only the app's own machines: not another app's, not a release-command machine."""
        other = await client.list_machines(OTHER)
        assert [m.id for m in other] == sim.world.machine_ids(OTHER)
        assert not {m.id for m in other} & set(sim.world.machine_ids(APP))
        m = await client.get_machine(APP, mid)
        config = m.config_copy()
        config["metadata"]["fly_process_group"] = "fly_app_release_command"
        updated = await client.update(APP, mid, config=config, current_version=m.instance_id,
                                      skip_launch=False)
        assert updated.process_group == "fly_app_release_command" and not updated.is_app_machine
        listed = [m.id for m in await client.list_machines(APP)]
        assert listed == sim.world.machine_ids(APP)[1:]
        assert (await client.get_machine(APP, mid)).id == mid  # still readable by id

    async def test_unknown_app_is_not_found(self, client, captured):
        """An app the simulator does not run raises FlyNotFound, once."""
        with pytest.raises(FlyNotFound) as info:
            await client.list_machines("no-such-app")
        assert info.value.status == 404 and info.value.app == "no-such-app"
        assert retries(captured) == []
        assert_leaks_no_secret(info.value, captured)


class TestGetMachineAndEvents:
    async def test_get_machine(self, client, sim, mid):
        """get_machine returns the machine as the world has it, config included."""
        m = await client.get_machine(APP, mid)
        truth = sim.world.machine(APP, mid)
        assert (m.id, m.state, m.instance_id, m.cpus, m.cpu_kind) == (
            mid, "started", truth.instance_id, 1, "shared")
        assert m.config_copy() == truth.config and m.host_status == "ok" and not m.incomplete
        assert m.autostart is True and m.autostop is False and m.restart_policy == "on-failure"
        assert m.updated_at == pytest.approx(sim.world.ts(truth.updated_s))

    async def test_events(self, client, sim, mid):
        """events have ids, come newest first, and are in epoch seconds (not milliseconds)."""
        events = await client.events(APP, mid, limit=50)
        truth = list(reversed(sim.world.machine(APP, mid).events[-50:]))
        assert [e.id for e in events] == [e.id for e in truth]
        assert all(e.id for e in events)
        assert [e.type for e in events] == [e.type for e in truth]
        stamps = [e.timestamp for e in events]
        assert stamps == sorted(stamps, reverse=True)
        assert stamps == pytest.approx([sim.world.ts(e.t) for e in truth], abs=1e-3)
        assert all(abs(s - sim.world.ts(0.0)) < 30 * 86400 for s in stamps)  # seconds
        assert len(await client.events(APP, mid, limit=2)) == 2


# --- actions --------------------------------------------------------------------------------------


class TestActions:
    async def test_start_stopped_machine_then_wait_started(self, client, sim, clock, mid):
        """A stopped machine starts, and wait(state='started') returns True once it is up."""
        await stop_and_settle(client, clock, mid)
        await client.start(APP, mid)
        assert sim.world.machine(APP, mid).state == "starting"
        assert await drive(clock, client.wait(APP, mid, state="started", timeout_s=30)) is True
        m = await client.get_machine(APP, mid)
        assert m.state == "started" and m.events[0].type == "start"

    async def test_stop_then_wait_stopped_with_version(self, client, sim, clock, mid):
        """stop, then wait for 'stopped' with the machine's version, returns True."""
        version = (await client.get_machine(APP, mid)).instance_id
        await client.stop(APP, mid, signal="SIGTERM", timeout_s=30)
        assert sim.world.machine(APP, mid).state == "stopping"
        assert await drive(clock, client.wait(APP, mid, state="stopped", version=version,
                                              timeout_s=30)) is True
        m = await client.get_machine(APP, mid)
        assert m.state == "stopped" and m.instance_id == version

    async def test_wait_for_a_state_that_never_comes_is_false(self, client, clock, mid,
                                                              captured):
        """A long poll the simulator ends with 408 after the timeout makes wait() False."""
        waited_from = clock.monotonic()
        assert await drive(clock, client.wait(APP, mid, state="suspended", timeout_s=5)) is False
        assert clock.monotonic() - waited_from >= 5
        assert retries(captured) == []

    async def test_restart_started_machine(self, client, sim, clock, mid):
        """A started machine restarts: a requested, restarting exit, then started again."""
        await client.restart(APP, mid)
        assert sim.world.machine(APP, mid).state == "restarting"
        assert await drive(clock, client.wait(APP, mid, state="started", timeout_s=30)) is True
        events = await client.events(APP, mid, limit=2)
        assert [e.type for e in events] == ["start", "exit"]
        exit_info = events[1].exit
        assert exit_info is not None and exit_info.requested_stop and exit_info.restarting
        assert mutations(sim, mid, "restart") == [200]

    async def test_restart_of_stopped_machine_conflicts_and_start_works(
            self, client, sim, clock, mid, captured):
        """Restarting a stopped machine is a FlyConflict (trap 8.1), not retried; start works."""
        await stop_and_settle(client, clock, mid)
        with pytest.raises(FlyConflict) as info:
            await client.restart(APP, mid)
        exc = info.value
        assert type(exc) is FlyConflict and exc.status == 409
        assert "not currently started" in str(exc)
        assert mutations(sim, mid, "restart") == [409] and retries(captured) == []
        assert_leaks_no_secret(exc, captured)
        await client.start(APP, mid)
        assert await drive(clock, client.wait(APP, mid, state="started", timeout_s=30))

    async def test_stop_of_stopped_machine_conflicts(self, client, clock, mid, captured):
        """Stopping a machine that is already stopped is a FlyConflict (409), not retried."""
        await stop_and_settle(client, clock, mid)
        with pytest.raises(FlyConflict) as info:
            await client.stop(APP, mid)
        assert info.value.status == 409 and retries(captured) == []
        assert_leaks_no_secret(info.value, captured)


class TestUpdate:
    async def test_update_memory_returns_new_version(self, client, sim, clock, mid):
        """update with the edited full config returns the new instance_id and the new memory."""
        m = await client.get_machine(APP, mid)
        config = m.config_copy()
        config["guest"]["memory_mb"] = 1024
        updated = await client.update(APP, mid, config=config, current_version=m.instance_id,
                                      skip_launch=False)
        truth = sim.world.machine(APP, mid)
        assert updated.instance_id != m.instance_id
        assert updated.instance_id == truth.instance_id and truth.memory_mb == 1024
        assert updated.memory_mb == 1024 and updated.state == "replacing"
        assert updated.image == m.image and updated.config_copy() == truth.config
        assert await drive(clock, client.wait(APP, mid, state="started",
                                              version=updated.instance_id, timeout_s=30))
        after = await client.get_machine(APP, mid)
        assert (after.state, after.memory_mb, after.instance_id) == (
            "started", 1024, updated.instance_id)

    async def test_stale_current_version_conflicts(self, client, sim, mid, captured):
        """A current_version that is no longer the machine's gives FlyConflict, sent once."""
        m = await client.get_machine(APP, mid)
        config = m.config_copy()
        config["guest"]["memory_mb"] = 1024
        await client.update(APP, mid, config=config, current_version=m.instance_id,
                            skip_launch=False)
        with pytest.raises(FlyConflict) as info:
            await client.update(APP, mid, config=config, current_version=m.instance_id,
                                skip_launch=False)
        assert type(info.value) is FlyConflict and info.value.status == 409
        assert mutations(sim, mid, "update") == [200, 409] and retries(captured) == []
        assert_leaks_no_secret(info.value, captured)


# --- leases ---------------------------------------------------------------------------------------


class TestLeases:
    async def test_lease_context_write_with_nonce_then_released(self, client, sim, mid):
        """Inside lease() a write with the nonce works; on exit the lease is given back."""
        version = sim.world.machine(APP, mid).instance_id
        async with client.lease(APP, mid, ttl_s=30, description="contract") as lease:
            held = sim.world.machine(APP, mid).lease
            assert held is not None and held.nonce == lease.nonce
            assert lease.owner == SIM_OWNER and lease.version == version
            assert lease.description == "contract"
            assert lease.expires_at == pytest.approx(sim.world.ts(sim.world.now + 30), abs=1)
            await client.restart(APP, mid, nonce=lease.nonce)
        assert sim.world.machine(APP, mid).lease is None
        assert mutations(sim, mid, "restart") == [200]
        assert mutations(sim, mid, "lease_release") == [200]
        again = await client.acquire_lease(APP, mid)  # free again
        await client.release_lease(APP, mid, again.nonce)

    async def test_lease_released_when_body_raises(self, client, sim, mid):
        """The lease is given back when the body fails, and the body's error propagates."""
        with pytest.raises(RuntimeError, match="boom"):
            async with client.lease(APP, mid):
                raise RuntimeError("boom")
        assert sim.world.machine(APP, mid).lease is None

    async def test_held_by_someone_else(self, client, sim, clock, mid, captured):
        """Someone else's lease: acquire is LeaseHeld naming the owner; nonce-less writes too."""
        sim.world.hold_lease(APP, mid, owner="deploy@ci", ttl_s=120)
        expires = sim.world.ts(sim.world.now + 120)
        with pytest.raises(LeaseHeld) as info:
            await client.acquire_lease(APP, mid)
        assert info.value.owner == "deploy@ci" and info.value.status == 409
        assert info.value.expires_at == pytest.approx(expires, abs=1)
        assert_leaks_no_secret(info.value, captured)
        with pytest.raises(LeaseHeld) as info:
            async with client.lease(APP, mid):
                pytest.fail("the body must not run without the lease")
        writes: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.restart(APP, mid),
            lambda: client.stop(APP, mid),
            lambda: client.restart(APP, mid, nonce="0123456789ab"),
        ]
        for write in writes:
            with pytest.raises(LeaseHeld) as info:
                await write()
            assert info.value.owner == "deploy@ci"
            assert_leaks_no_secret(info.value, captured)
        assert mutations(sim, mid, "restart") == [409, 409]
        assert mutations(sim, mid, "stop") == [409]
        assert retries(captured) == [] and sim.world.machine(APP, mid).state == "started"
        clock.advance(121)  # the deploy's lease lapses
        lease = await client.acquire_lease(APP, mid)
        await client.release_lease(APP, mid, lease.nonce)


# --- errors ---------------------------------------------------------------------------------------


class TestNotFound:
    async def test_vanished_machine_is_not_found_without_retry(self, client, sim, captured):
        """A machine id the app does not have raises FlyNotFound at once, for reads and writes."""
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.get_machine(APP, GONE),
            lambda: client.events(APP, GONE),
            lambda: client.wait(APP, GONE, state="started", timeout_s=5),
            lambda: client.restart(APP, GONE),
            lambda: client.start(APP, GONE),
            lambda: client.acquire_lease(APP, GONE),
        ]
        for call in calls:
            with pytest.raises(FlyNotFound) as info:
                await call()
            exc = info.value
            assert exc.status == 404 and exc.machine == GONE and exc.app == APP
            assert exc.request_id and exc.request_id.endswith("-iad")
            assert_leaks_no_secret(exc, captured)
        assert retries(captured) == []
        assert mutations(sim, GONE, "restart") == [404]
        assert mutations(sim, GONE, "start") == [404]


class TestRateLimit:
    async def test_429_is_retried_after_retry_after(self, client, sim, shared, mid, captured):
        """Past the burst of 3, a 429's Retry-After is waited out, and the retry is accepted."""
        t0 = sim.world.t()
        for _ in range(4):  # start of a started machine is a no-op: only the bucket drains
            await client.start(APP, mid)
        assert mutations(sim, mid, "start") == [200, 200, 200, 429, 200]
        assert shared.slept == [1.0] and sim.world.t() - t0 == pytest.approx(1.0)
        (entry,) = retries(captured)
        assert (entry["call"], entry["machine"], entry["status"], entry["wait_s"]) == (
            "start", mid, 429, 1.0)
        assert_leaks_no_secret(None, captured)

    async def test_429_outlasting_attempts_is_rate_limited(self, make_client, sim, mid,
                                                          captured):
        """With no attempt left, the 429 surfaces as FlyRateLimited carrying Retry-After."""
        client = make_client(attempts=1)
        for _ in range(3):
            await client.start(APP, mid)
        with pytest.raises(FlyRateLimited) as info:
            await client.start(APP, mid)
        assert info.value.retry_after == 1.0 and info.value.status == 429
        assert mutations(sim, mid, "start") == [200, 200, 200, 429]
        assert_leaks_no_secret(info.value, captured)


# --- releases and logs ----------------------------------------------------------------------------


class TestReleases:
    async def test_versions_newest_first_and_images(self, client, sim):
        """Releases come newest first; the newest image is the one every machine runs."""
        releases = await client.releases(APP)
        truth = sim.world.releases(APP)
        assert [r.version for r in releases] == [r.version for r in truth] == [2, 1]
        assert [r.image_ref for r in releases] == [r.image for r in truth]
        assert [r.id for r in releases] == [r.id for r in truth]
        assert all(r.status == "complete" and r.stable for r in releases)
        assert [r.created_at for r in releases] == pytest.approx(
            [sim.world.ts(r.created_s) for r in truth], abs=1)
        assert releases[0].user == "ci-bot@hotdash.example"
        machines = await client.list_machines(APP)
        assert {m.image for m in machines} == {releases[0].image_ref}
        assert {m.release_version for m in machines} == {str(releases[0].version)}
        assert len(await client.releases(APP, limit=1)) == 1

    async def test_after_bad_release_the_newest_is_the_new_one(self, client, sim, clock):
        """After a bad_release fault the newest release is the new image the machines run."""
        before = await client.releases(APP)
        sim.world.inject(Fault(at_s=0, kind="bad_release", app=APP, rate=1.0))
        releases = await client.releases(APP)
        newest = releases[0]
        assert newest.version == before[0].version + 1 and newest.status == "running"
        assert not newest.stable and newest.image_ref not in {r.image_ref for r in before}
        assert [(r.version, r.image_ref) for r in releases[1:]] == [
            (r.version, r.image_ref) for r in before]
        machines = await client.list_machines(APP)
        assert {m.image for m in machines} == {newest.image_ref}
        assert {m.release_version for m in machines} == {str(newest.version)}
        clock.advance(10)
        settled = await client.releases(APP)
        assert settled[0].version == newest.version and settled[0].status == "failed"
        assert settled[1].stable  # the rollback target

    async def test_unknown_app_is_not_found(self, client, captured):
        """GraphQL's 'Could not find App' (HTTP 200) raises FlyNotFound, not retried."""
        with pytest.raises(FlyNotFound) as info:
            await client.releases("no-such-app")
        assert retries(captured) == []
        assert_leaks_no_secret(info.value, captured)


class TestLogs:
    async def test_follower_never_repeats_a_line_while_the_world_logs(self, client, sim, clock,
                                                                      mid):
        """Across polls, each line comes once, in order, and none the world logged is missed."""
        follower = LogFollower(client, APP)
        got = list(await follower.poll())
        assert got
        # Some polls see < 100 new lines, some > 100 (the page limit), some none at all.
        for step in (0.0, 3.0, 0.5, 45.0, 0.0, 7.0, 30.0, 1.0):
            clock.advance(step)
            if step == 7.0:
                await client.restart(APP, mid)  # runner and app lines among the traffic
            got += await follower.poll()
        for _ in range(20):
            fresh = await follower.poll()
            if not fresh:
                break
            got += fresh
        else:
            pytest.fail("the follower never caught up")
        ids = [line.id for line in got]
        assert len(ids) == len(set(ids)), "a line was returned twice"
        world = sim.world.apps[APP].logs
        world_ids = [line.id for line in world]
        start = world_ids.index(ids[0])
        assert ids == world_ids[start:], "lines were missed or reordered"
        assert [line.timestamp for line in got] == pytest.approx(
            [line.ns / 1e9 for line in world[start:]], abs=1e-6)
        assert len(got) > 300 and any(line.instance == mid for line in got)
        assert await follower.poll() == ()


# --- outage and auth ------------------------------------------------------------------------------


class TestOutage:
    async def test_fly_api_down_is_unavailable_after_bounded_retries(
            self, make_client, sim, clock, captured):
        """During fly_api_down (503s and hangs) the client gives up after its attempts."""
        sim.world.inject(Fault(at_s=0, kind="fly_api_down", until_s=sim.world.t() + 60))
        client = make_client(timeout_s=0.3, attempts=3, deadline_s=30)
        with pytest.raises(FlyUnavailable) as info:
            await client.list_machines(APP)
        exc = info.value
        assert not isinstance(exc, FlyRateLimited) and exc.call == "list_machines"
        assert exc.status in (503, None)  # a 503, or no answer within the timeout
        assert [e["attempt"] for e in retries(captured)] == [1, 2]
        assert_leaks_no_secret(exc, captured)
        clock.advance(61)  # the outage ends
        assert [m.id for m in await client.list_machines(APP)] == sim.world.machine_ids(APP)


class TestAuth:
    async def test_wrong_token_is_unauthorized_without_retry(self, make_client, sim, mid,
                                                             captured):
        """A token the API does not accept gives FlyUnauthorized at once, on every API."""
        client = make_client(token=WRONG)
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.list_machines(APP),
            lambda: client.restart(APP, mid),
            lambda: client.releases(APP),
            lambda: client.logs(APP),
        ]
        for call in calls:
            with pytest.raises(FlyUnauthorized) as info:
                await call()
            assert info.value.status == 401
            assert_leaks_no_secret(info.value, captured)
        assert retries(captured) == []
        assert mutations(sim, mid, "restart") == [401]
        assert sim.world.machine(APP, mid).state == "started"

    @pytest.mark.parametrize("form", ["bare", "flyv1", "bearer"])
    async def test_token_forms_are_accepted(self, make_client, form):
        """The token works bare, with a FlyV1 scheme or with a pasted Bearer scheme."""
        raw = TOKEN.get_secret_value()
        secret = {"bare": raw, "flyv1": f"FlyV1 {raw}", "bearer": f"Bearer {raw}"}[form]
        client = make_client(token=SecretStr(secret))
        assert len(await client.list_machines(APP)) == 3


class TestSecrets:
    async def test_token_never_leaks_on_error_paths(self, make_client, sim, mid, captured):
        """No token in any error's text or repr, nor in any log entry, on every error path."""
        client = make_client(attempts=2, timeout_s=0.3, deadline_s=30)
        wrong = make_client(token=WRONG, attempts=2)
        once = make_client(attempts=1)
        leased = sim.world.machine_ids(APP)[1]
        sim.world.hold_lease(APP, leased, owner="deploy@ci")
        stale = (await client.get_machine(APP, mid)).config_copy()
        paths: list[Callable[[], Awaitable[Any]]] = [
            lambda: wrong.list_machines(APP),
            lambda: wrong.releases(APP),
            lambda: wrong.logs(APP),
            lambda: client.get_machine(APP, GONE),
            lambda: client.releases("no-such-app"),
            lambda: client.acquire_lease(APP, leased),
            lambda: client.restart(APP, leased),
            lambda: client.update(APP, mid, config=stale, current_version="01STALEVERSION",
                                  skip_launch=True),
            lambda: client.start(APP, mid),  # the burst of 3, then a 429 with no retry left
            lambda: client.start(APP, mid),
            lambda: client.start(APP, mid),
            lambda: once.start(APP, mid),
        ]
        errors: list[FlyError] = []
        for path in paths:
            try:
                await path()
            except FlyError as exc:
                errors.append(exc)
        sim.world.inject(Fault(at_s=0, kind="fly_api_down", until_s=sim.world.t() + 60))
        for path in (lambda: client.list_machines(APP), lambda: client.releases(APP)):
            with pytest.raises(FlyUnavailable) as info:
                await path()
            errors.append(info.value)
        assert {type(e).__name__ for e in errors} == {
            "FlyUnauthorized", "FlyNotFound", "LeaseHeld", "FlyConflict", "FlyRateLimited",
            "FlyUnavailable"}
        assert captured and retries(captured)
        for exc in errors:
            assert_leaks_no_secret(exc, captured)
        for c in (client, wrong, once):
            assert not any(s in repr(c) for s in SECRETS)
