"""Support for the action executors' contract tests: a fault-injecting HTTP proxy in front of the
Fly simulator, and small readers of the simulator's truth.

``FaultProxy`` is a real aiohttp server on a loopback port. It forwards every request to the
simulator unchanged (method, path, query, body, the auth and lease-nonce headers) and returns the
simulator's answer, except for the calls a test scripted: those get the scripted replies (a 500,
a 429 with Retry-After, ...) before the proxy goes back to forwarding. A test may also run a hook
before a call is forwarded (to hold it, or change the world first) and after it was answered (to
start an outage right after a call went through). Nothing is mocked: the client talks HTTP to the
proxy, the proxy talks HTTP to the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from hotdash_watch.sim import SimServer
from hotdash_watch.sim.world import Event

__all__ = ["FaultProxy", "Forwarded", "Reply", "call_name", "events_after", "mutation_log",
           "wait_until"]

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
    """One request the proxy saw: the call's name, the machine, and the status it answered."""

    call: str
    machine: str
    status: int
    scripted: bool


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

    # --- serving ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call, machine = call_name(request.method, request.path)
        key = (call, machine)
        script = self._scripts.get(key)
        if script:
            reply = script[0] if key in self._repeat and len(script) == 1 else script.pop(0)
            self.seen.append(Forwarded(call, machine, reply.status, scripted=True))
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
        self.seen.append(Forwarded(call, machine, status, scripted=False))
        done = self._after.get(key)
        if done is not None:
            done(status)
        return web.Response(status=status, body=data, headers=out)

    async def start(self) -> None:
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


async def wait_until(predicate: Callable[[], bool], sim: SimServer, *, real_s: float = 10.0,
                     what: str = "the condition") -> None:
    """Step the simulated world until ``predicate()`` holds (real seconds bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + real_s
    while True:
        sim.world.step_to()
        if predicate():
            return
        assert loop.time() < deadline, f"{what} did not happen within {real_s} real seconds"
        await asyncio.sleep(0.005)
