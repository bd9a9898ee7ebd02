"""Support for the action executors' contract tests: the simulator, a fault-injecting HTTP proxy
in front of it and the client's HTTP session on one virtual clock, and small readers of the
simulator's truth.

``FaultProxy`` is a real aiohttp server on a loopback port. It forwards every request to the
simulator unchanged (method, path, query, body, the auth and lease-nonce headers) and returns the
simulator's answer, except for the calls a test scripted: those get the scripted replies (a 500,
a 429 with Retry-After, ...) before the proxy goes back to forwarding. A test may also run a hook
before a call is forwarded (to hold it, or change the world first) and after it was answered (to
start an outage right after a call went through). Nothing is mocked: the client talks HTTP to the
proxy, the proxy talks HTTP to the simulator.

Time: everything runs on one ``VirtualClock`` in a ``VirtualTimeLoop`` (``simulated_fly``). The
proxy serves on that loop, so a request it holds is held in clock time, and a request it
forwards costs none. Outside actors wait for the world's state by looking every ``LOOK_S`` clock
seconds (``wait_until``), never in real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from hotdash_watch.fly import FlyClient
from hotdash_watch.sim import Scenario, SimServer
from hotdash_watch.sim.world import Event
from hotdash_watch.virtual_time import VirtualClock

__all__ = ["LOOK_S", "FaultProxy", "Forwarded", "Reply", "SimulatedFly", "call_name",
           "events_after", "events_since", "mutation_log", "simulated_fly", "wait_until"]

#: Clock seconds between two looks of an outside actor waiting for the world (virtual: free).
LOOK_S = 0.1

_FORWARDED_REQUEST_HEADERS = ("Authorization", "Accept", "Content-Type",
                              "fly-machine-lease-nonce")
_FORWARDED_RESPONSE_HEADERS = ("Content-Type", "fly-request-id", "Retry-After")


@dataclass(frozen=True)
class Reply:
    """A scripted answer in Fly's error shape."""

    status: int
    error: str = "internal error (injected by the test proxy)"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Forwarded:
    """One request the proxy saw: the call's name, the machine, the status it answered, and the
    scenario second it arrived at."""

    call: str
    machine: str
    status: int
    scripted: bool
    at_s: float


Before = Callable[[], Awaitable[None]]
After = Callable[[int], None]


def call_name(method: str, path: str) -> tuple[str, str]:
    """``(call, machine)`` for a Machines API path, named as ``World.mutations`` names them."""
    parts = path.rstrip("/").split("/")  # ['', 'v1', 'apps', app, 'machines', id, action]
    if len(parts) < 5 or parts[1:3] != ["v1", "apps"]:
        return f"{method} {path}", ""
    machine = parts[5] if len(parts) > 5 else ""
    if len(parts) == 5:
        return ("list_machines" if method == "GET" else "create"), ""
    if len(parts) == 6:
        return {"GET": "get_machine", "POST": "update", "DELETE": "destroy"}.get(
            method, method), machine
    action = parts[6]
    if action == "lease":
        return {"GET": "lease_get", "POST": "lease_acquire", "DELETE": "lease_release"}.get(
            method, "lease"), machine
    return action, machine


class FaultProxy:
    """A forwarding proxy to the simulator that fails, holds or watches chosen calls."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim
        self.seen: list[Forwarded] = []
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._repeat: set[tuple[str, str]] = set()
        self._before: dict[tuple[str, str], Before] = {}
        self._after: dict[tuple[str, str], After] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    # --- scripting --------------------------------------------------------------------------

    def fail(self, call: str, machine: str, *replies: Reply, always: bool = False) -> None:
        """Answer the next ``call`` on ``machine`` with ``replies`` in order, then forward again
        (``always``: the last reply is repeated for ever)."""
        self._scripts[(call, machine)] = list(replies)
        if always:
            self._repeat.add((call, machine))

    def before(self, call: str, machine: str, hook: Before) -> None:
        """Await ``hook`` before forwarding ``call`` on ``machine`` (every time)."""
        self._before[(call, machine)] = hook

    def after(self, call: str, machine: str, hook: After) -> None:
        """Run ``hook(status)`` once ``call`` on ``machine`` was answered (every time)."""
        self._after[(call, machine)] = hook

    def calls(self, call: str, machine: str) -> list[int]:
        """The statuses the proxy answered to ``call`` on ``machine``, in order."""
        return [f.status for f in self.seen if f.call == call and f.machine == machine]

    def arrivals(self, call: str, machine: str) -> list[float]:
        """The scenario seconds at which ``call`` on ``machine`` reached the proxy, in order."""
        return [f.at_s for f in self.seen if f.call == call and f.machine == machine]

    # --- serving ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call, machine = call_name(request.method, request.path)
        arrived = self.sim.world.t()
        key = (call, machine)
        script = self._scripts.get(key)
        if script:
            reply = script[0] if key in self._repeat and len(script) == 1 else script.pop(0)
            self.seen.append(Forwarded(call, machine, reply.status, scripted=True,
                                       at_s=arrived))
            return web.json_response({"error": reply.error, "status": "unknown"},
                                     status=reply.status,
                                     headers={"fly-request-id": "proxy-injected",
                                              **reply.headers})
        hook = self._before.get(key)
        if hook is not None:
            await hook()
        assert self._session is not None
        headers = {h: request.headers[h] for h in _FORWARDED_REQUEST_HEADERS
                   if h in request.headers}
        body = await request.read()
        async with self._session.request(request.method, self.sim.base_url + request.path_qs,
                                         data=body or None, headers=headers,
                                         allow_redirects=False) as upstream:
            data = await upstream.read()
            status = upstream.status
            out = {h: upstream.headers[h] for h in _FORWARDED_RESPONSE_HEADERS
                   if h in upstream.headers}
        self.seen.append(Forwarded(call, machine, status, scripted=False, at_s=arrived))
        done = self._after.get(key)
        if done is not None:
            done(status)
        return web.Response(status=status, body=data, headers=out)

    async def start(self) -> None:
        clock = self.sim.clock
        if isinstance(clock, VirtualClock) and clock.loop is not asyncio.get_running_loop():
            raise RuntimeError("the proxy must serve on the simulator's virtual-time loop")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()


# --- reading the simulator's truth ----------------------------------------------------------------


def mutation_log(sim: SimServer, machine: str | None = None, *,
                 calls: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The Machines API mutations the simulator received (optionally for one machine/calls)."""
    return [m for m in sim.world.mutations
            if (machine is None or m["machine"] == machine)
            and (calls is None or m["call"] in calls)]


def events_after(sim: SimServer, app: str, machine: str, t: float, *,
                 kind: str | None = None) -> list[Event]:
    """The machine's events (oldest first) at or after scenario second ``t``."""
    return [e for e in sim.world.machine(app, machine).events
            if e.t >= t and (kind is None or e.type == kind)]


def events_since(sim: SimServer, app: str, machine: str, mark: str, t: float, *,
                 kind: str | None = None) -> list[Event]:
    """The machine's events recorded after its first ``mark`` event (say ``update``) at or after
    scenario second ``t`` (a mutation's ``at_s``, rounded to the millisecond), in the order the
    world recorded them: on a virtual clock an exit of the old instance and the update can share
    an instant, and only the order tells them apart."""
    events = sim.world.machine(app, machine).events
    start = next((i for i, e in enumerate(events) if e.type == mark and e.t >= t - 5e-4), None)
    assert start is not None, f"no {mark} event of {machine} at or after {t} s"
    return [e for e in events[start + 1:] if kind is None or e.type == kind]


async def wait_until(predicate: Callable[[], bool], sim: SimServer, *, within_s: float = 600.0,
                     what: str = "the condition") -> float:
    """Step the simulated world and look every ``LOOK_S`` clock seconds until ``predicate()``
    holds; returns the scenario second it held at. Fails after ``within_s`` clock seconds.
    Virtual time only: the looks cost no real time and do not depend on the machine's speed."""
    clock = sim.clock
    if not isinstance(clock, VirtualClock):
        raise TypeError("wait_until looks on the simulator's VirtualClock, not in real time")
    deadline = clock.monotonic() + within_s
    while True:
        sim.world.step_to()
        if predicate():
            return sim.world.now
        assert clock.monotonic() < deadline, f"{what} did not happen within {within_s:g} s"
        await clock.sleep(LOOK_S)


# --- the simulated Fly on one virtual clock -------------------------------------------------------


@dataclass(frozen=True)
class SimulatedFly:
    """The simulator, the proxy in front of it, and the HTTP session clients share, on one
    ``VirtualClock``."""

    clock: VirtualClock
    sim: SimServer
    proxy: FaultProxy
    session: aiohttp.ClientSession
    token: SecretStr

    def client(self, *, via_proxy: bool = False, **kw: Any) -> FlyClient:
        """A ``FlyClient`` on the shared clock, to the simulator or through the proxy."""
        url = self.proxy.url if via_proxy else self.sim.machines_url
        kw.setdefault("timeout_s", 10.0)
        return FlyClient(self.session, self.clock, token=self.token, machines_url=url,
                         api_url=url, **kw)


@asynccontextmanager
async def simulated_fly(scenario: Scenario, *, token: SecretStr,
                        start: datetime) -> AsyncIterator[SimulatedFly]:
    """Start the simulator and the proxy on the running ``VirtualTimeLoop`` (scenario second 0
    is ``start``); stop them, the session first, when the body ends."""
    clock = VirtualClock.running(start)
    sim = SimServer(scenario, clock, token=token.get_secret_value())
    await sim.start()
    try:
        proxy = FaultProxy(sim)
        await proxy.start()
        try:
            async with aiohttp.ClientSession() as session:
                yield SimulatedFly(clock, sim, proxy, session, token)
        finally:
            await proxy.stop()
    finally:
        await sim.stop()
