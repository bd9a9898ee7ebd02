"""The simulated Fly as one world: its registry of apps and machines, the queue of scheduled
changes, and the stepping that runs them, driven by a clock.

No HTTP here (``app.py`` serves it). Everything happens at exact *scenario seconds* (``t`` = clock
seconds since ``begin()``): a state change is a scheduled callback in a time-ordered queue, and
``step_to(t)`` runs every callback due by ``t`` in order, with the world's "now" set to each
callback's own time. A background task (``run()``) steps the world every few seconds of clock
time and every HTTP request steps it first, so the outcome never depends on when the event loop
got round to it: a test on a ``ManualClock`` may advance ten minutes at once and see exactly what
a run on virtual or scaled time shows.

``World`` builds each app's machines with their release history (before t=0) and holds the
parts that change them, each in its own module: ``flyd.py`` (machine lifecycles, the restart
policy, health checks), ``proxy.py`` (routing, answers, edge counters, traffic, autostop),
``machines_api.py`` (the Machines API's verbs), ``logs.py``, ``metrics.py`` and ``faults/``
(each fault kind, and the engine that fires them). After every change it checks whether the
world has recovered: no fault active or pending and every app healthy (``recovered_at_s``).
Its methods are the world's public surface; each delegates to the part that holds it.

Choices where Fly's documentation is silent are listed in ``hotdash_watch/sim/__init__.py``;
the scenario format is in config/scenarios/README.md.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

from hotdash_watch.clock import Clock
from hotdash_watch.sim.faults.base import ActiveFault, FaultContext
from hotdash_watch.sim.faults.engine import FaultEffects, FaultEngine
from hotdash_watch.sim.flyd import (
    CHECK_SCHEDULE,
    CRASH_AFTER_S,
    REPLACE_S,
    SERVICE_CHECK,
    START_S,
    Flyd,
)
from hotdash_watch.sim.ids import IdSource, machine_identities
from hotdash_watch.sim.logs import Logs
from hotdash_watch.sim.machines_api import SIM_OWNER, MachinesApi
from hotdash_watch.sim.metrics import metrics_text
from hotdash_watch.sim.model import (
    ApiError,
    Check,
    Event,
    Lease,
    Release,
    SimApp,
    SimMachine,
    app_named,
)
from hotdash_watch.sim.proxy import AUTOSTOP_PERIOD_S, TICK_S, Proxy
from hotdash_watch.sim.spec import AppSpec, Fault, Scenario

__all__ = [
    # Defined in flyd.py, machines_api.py and model.py; still imported from here by tests
    # outside tests/sim.
    "SERVICE_CHECK",
    "SIM_OWNER",
    "START_S",
    "ApiError",
    "Event",
    "Release",
    "SimApp",
    "SimMachine",
    "World",
]

DAY_S = 86400.0
#: How often the background loop steps the world when no request does. Every request steps it
#: first and each change runs at its own scenario time, so this only bounds how late a change
#: nobody asked about is applied (and narrated); it changes nothing the world does.
BACKGROUND_STEP_S = 5.0


def _cpus_for(memory_mb: int) -> int:
    for cpus in (1, 2, 4, 8):
        if memory_mb <= 2048 * cpus:
            return cpus
    return 8


class World:
    """The simulator's truth: state, faults and their consequences, in scenario seconds."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.t0 = clock.timestamp()
        self.fault_log: list[dict[str, Any]] = []
        self.recovered_at_s: float | None = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.apps: dict[str, SimApp] = {}
        self.faults: list[ActiveFault] = []  # every fault fired, in firing order
        self._now = 0.0
        self._begun = False
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._faults_pending = 0
        self._last_fault_s: float | None = None
        self._stopping = asyncio.Event()
        seed = scenario.seed
        self._ids = IdSource(seed, "ids")
        self.effects = FaultEffects(self.faults)
        self.logs = Logs(self, self.apps, IdSource(seed, "logs"))
        self.flyd = Flyd(self, self.apps, self._ids, self.logs, self.effects)
        self.proxy = Proxy(self, self.apps, self.flyd, self.logs, self.effects, seed)
        self.api = MachinesApi(self, self.apps, self._ids, self.flyd, self.effects)
        self.mutations = self.api.mutations
        self.engine = FaultEngine(FaultContext(
            self, self.apps, self.flyd, self.logs, self._ids, seed, self.faults,
            self.fault_log, self.listeners))
        for spec in scenario.apps:
            self._build_app(spec)

    # ------------------------------------------------------------------ time

    def t(self) -> float:
        """Scenario seconds since the start (clock time minus the start)."""
        return self.clock.timestamp() - self.t0

    @property
    def now(self) -> float:
        """The scenario time the world has been stepped to."""
        return self._now

    def ts(self, t: float) -> float:
        """Scenario seconds ``t`` as epoch seconds."""
        return self.t0 + t

    def schedule(self, at: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at scenario time ``at`` (after what is already due then)."""
        heapq.heappush(self._queue, (at, next(self._seq), fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` ``delay`` scenario seconds from now."""
        self.schedule(self._now + delay, fn, *args)

    def begin(self) -> None:
        """Start the scenario now: world time 0 is the clock's present; schedule everything."""
        if self._begun:
            return
        self._begun = True
        self.t0 = self.clock.timestamp()
        self.schedule(TICK_S, self.proxy.tick)
        for i, app in enumerate(self.apps.values()):
            self.schedule(AUTOSTOP_PERIOD_S + 7.0 * i, self.proxy.autostop_check, app)
            for m in app.machines:
                for name, (_, interval) in CHECK_SCHEDULE.items():
                    phase = (1.0 + 3.0 * m.index + 5.0 * i) % interval
                    self.schedule(phase or interval, self.flyd.check_run, m, name)
        for fault in sorted(self.scenario.faults, key=lambda f: f.at_s):
            self._faults_pending += 1
            self.schedule(fault.at_s, self._fire_scheduled, fault)

    def step_to(self, t: float | None = None) -> None:
        """Run every scheduled change due by ``t`` (default: the clock's now), in time order."""
        target = self.t() if t is None else t
        if target < self._now:
            return
        while self._queue and self._queue[0][0] <= target:
            at, _, fn, args = heapq.heappop(self._queue)
            self._now = max(self._now, at)
            fn(*args)
            self._evaluate_recovery()
        self._now = target
        self._evaluate_recovery()

    async def run(self) -> None:
        """Step the world every ``BACKGROUND_STEP_S`` of clock time until ``shutdown()``."""
        while not self._stopping.is_set():
            self.step_to()
            await self.pause(BACKGROUND_STEP_S)

    def shutdown(self) -> None:
        """Wake every waiting request and the background loop; the world stops moving."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time, or less if the world shuts down meanwhile."""
        if self._stopping.is_set():
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, stopper):
                if not fut.done():
                    fut.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    # ----------------------------------------------------------------- build

    def _build_app(self, spec: AppSpec) -> SimApp:
        app = self.apps[spec.name] = SimApp(spec=spec)
        n = len(spec.releases)
        for k, kind in enumerate(spec.releases):
            created = -(n - k) * DAY_S
            app.releases.append(Release(
                version=k + 1, id=self._ids.alnum(25),
                image=f"registry.fly.io/{spec.name}:deployment-{self._ids.ulid(self.ts(created))}",
                created_s=created, status="complete" if kind == "good" else "failed",
                stable=kind == "good", fail_rate=0.0 if kind == "good" else 1.0,
                updated_s=created + 60.0))
        ips = IdSource(self.scenario.seed, f"ip:{spec.name}")
        net = f"fdaa:{ips.rng.randint(0, 99)}:{ips.hex(4)}:a7b"
        identities = machine_identities(self.scenario.seed, spec.name, spec.machines)
        for index, (mid, name) in enumerate(identities):
            first = app.releases[0]
            created = first.created_s - 120.0 + index
            m = SimMachine(
                id=mid, name=name, app=spec.name, index=index, region=spec.region,
                private_ip=f"{net}:{ips.hex(3)}:{ips.hex(4)}:{ips.hex(4)}:2",
                config=self._config(spec, first), instance_id="", created_s=created)
            self._now = created
            self.flyd.event(m, "launch", "created", "user")
            self._history_boot(m, created + 2.0, first)
            for k, rel in enumerate(app.releases[1:], start=1):
                at = rel.created_s + 10.0 + 6.0 * index
                self._now = at
                m.config = self._config(spec, rel)
                m.versions.append(m.instance_id)
                m.instance_id = self._ids.ulid(self.ts(at))
                self.flyd.event(m, "update", "replacing", "user")
                self._history_boot(m, at + REPLACE_S, rel, last=k == n - 1)
            app.machines.append(m)
        self._now = 0.0
        return app

    def _history_boot(self, m: SimMachine, at: float, rel: Release, last: bool = True) -> None:
        """A boot in the machine's history (before t=0): started, or a failed deploy."""
        if not m.instance_id:
            m.instance_id = self._ids.ulid(self.ts(at - 2.0))
        self._now = at
        self.flyd.event(m, "start", "started", "flyd")
        m.state, m.updated_s = "started", at
        if rel.fail_rate >= 1.0:
            self._now = at + CRASH_AFTER_S
            self.flyd.exit_event(m, 1, oom=False, requested=False, restarting=False,
                                 restart_count=int(self.flyd.max_retries(m)))
            m.state, m.updated_s = "stopped", self._now
            m.app_up = False
            return
        m.app_up = True
        m.boot_s = at
        m.checks = {name: Check("passing", self.flyd.passing_output(m, name), at + grace)
                    for name, (grace, _) in CHECK_SCHEDULE.items()}
        if last:
            self.logs.log(self.apps.get(m.app), m, "Listening on 0.0.0.0:8080", t=at + 1.0)

    def _config(self, spec: AppSpec, rel: Release, memory_mb: int | None = None) -> dict[str, Any]:
        mem = memory_mb or spec.memory_mb
        return {
            "image": rel.image,
            "env": {"PORT": "8080", "PRIMARY_REGION": spec.region, "LOG_LEVEL": "info"},
            "init": {},
            "guest": {"cpu_kind": "shared", "cpus": _cpus_for(mem), "memory_mb": mem},
            "metadata": {
                "fly_platform_version": "v2",
                "fly_process_group": "app",
                "fly_release_id": rel.id,
                "fly_release_version": str(rel.version),
                "fly_flyctl_version": "0.3.190",
            },
            "services": [{
                "protocol": "tcp",
                "internal_port": 8080,
                "autostop": spec.autostop,
                "autostart": spec.autostart,
                "min_machines_running": spec.min_machines_running,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": True},
                    {"port": 443, "handlers": ["tls", "http"]},
                ],
                "concurrency": {"type": "requests", "soft_limit": 200, "hard_limit": 250},
                "checks": [{
                    "type": "http", "interval": "15s", "timeout": "5s", "grace_period": "10s",
                    "method": "GET", "path": "/health", "protocol": "http",
                }],
                "force_instance_key": None,
            }],
            "checks": {
                "db": {"type": "http", "port": 8080, "interval": "30s", "timeout": "5s",
                       "grace_period": "20s", "method": "GET", "path": "/health/db"},
            },
            "restart": {"policy": "on-failure", "max_retries": 10},
            "stop_config": {"signal": "SIGTERM", "timeout": "30s"},
            "metrics": {"port": 9091, "path": "/metrics"},
        }

    # -------------------------------------------------------------- registry

    def app(self, name: str) -> SimApp:
        """The app called ``name``; ``ApiError(404)`` when there is none."""
        return app_named(self.apps, name)

    def machine(self, app: str, machine_id: str) -> SimMachine:
        """The machine ``machine_id`` of ``app``; ``ApiError(404)`` when there is none."""
        for m in self.app(app).machines:
            if m.id == machine_id:
                return m
        raise ApiError(404, f"machine not found: {machine_id}")

    def machine_ids(self, app: str) -> list[str]:
        return [m.id for m in self.app(app).machines]

    def releases(self, app: str) -> list[Release]:
        """The app's releases, newest first."""
        return sorted(self.app(app).releases, key=lambda r: r.version, reverse=True)

    # ------------------------------------------------------ health, recovery

    def healthy(self, app: str) -> bool:
        """The simulator's own truth: every machine that should serve is started and passing,
        and no active fault degrades the app's requests."""
        self.step_to()
        return self._healthy(self.app(app))

    def _healthy(self, app: SimApp) -> bool:
        if self.effects.degrades(app.name):
            return False
        started = 0
        for m in app.machines:
            idle = m.state == "stopping" or (m.last_exit_requested
                                             and m.state in ("stopped", "suspended"))
            if idle:
                continue
            if m.state != "started" or not m.app_up:
                return False
            if any(c.status != "passing" for c in m.checks.values()):
                return False
            started += 1
        return started > 0 or any(m.service().get("autostart") for m in app.machines)

    def _evaluate_recovery(self) -> None:
        if (self.recovered_at_s is not None or self._last_fault_s is None
                or self._faults_pending > 0):
            return
        if self.effects.any_active():
            return
        if all(self._healthy(app) for app in self.apps.values()):
            self.recovered_at_s = round(self._now, 3)

    # ---------------------------------------------------------------- faults

    def inject(self, fault: Fault) -> None:
        """Fire ``fault`` now (its ``at_s`` is ignored; ``until_s`` is a scenario time)."""
        fault = self.engine.with_app(fault)
        self.step_to()
        self._fire(fault)
        self._evaluate_recovery()

    def _fire_scheduled(self, fault: Fault) -> None:
        self._faults_pending -= 1
        self._fire(fault)

    def _fire(self, fault: Fault) -> None:
        self._last_fault_s = self._now
        self.recovered_at_s = None
        self.engine.fire(fault)

    def api_down(self) -> bool:
        """Whether the Machines, GraphQL and logs APIs are down (fly_api_down)."""
        return self.effects.api_outage() is not None

    def api_outage_hangs(self) -> bool:
        """For one request while the API is down: hang (True) or answer 503 (False)."""
        outage = self.effects.api_outage()
        return outage is not None and outage.hangs()

    def partitioned(self, app: str) -> bool:
        """Whether the watcher cannot reach ``app``'s public URL (watcher_partition)."""
        return self.effects.url_outage(app) is not None

    def partition_hangs(self, app: str) -> bool:
        """For one request to ``app``'s cut-off public URL: hang (True) or drop the
        connection (False)."""
        outage = self.effects.url_outage(app)
        return outage is not None and outage.hangs()

    # -------------------------------------------- the Machines API (machines_api.py)

    def record_mutation(self, app: str, machine: str, call: str, status: int) -> None:
        self.api.record_mutation(app, machine, call, status)

    def rate_limit(self, m: SimMachine, action: str, *, read: bool = False) -> None:
        self.api.rate_limit(m, action, read=read)

    def check_lease(self, m: SimMachine, nonce: str | None) -> None:
        self.api.check_lease(m, nonce)

    def list_machines(self, app: str, *, states: set[str] | None = None,
                      region: str | None = None, summary: bool = False,
                      include_leases: bool = False,
                      metadata: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return self.api.list_machines(app, states=states, region=region, summary=summary,
                                      include_leases=include_leases, metadata=metadata)

    def start(self, m: SimMachine) -> dict[str, Any]:
        return self.api.start(m)

    def stop(self, m: SimMachine, body: dict[str, Any] | None) -> dict[str, Any]:
        return self.api.stop(m, body)

    def restart(self, m: SimMachine, signal: str | None) -> dict[str, Any]:
        return self.api.restart(m, signal)

    def update(self, m: SimMachine, body: Any) -> dict[str, Any]:
        return self.api.update(m, body)

    def wait_result(self, m: SimMachine, states: set[str], version: str | None
                    ) -> dict[str, Any] | None:
        return self.api.wait_result(m, states, version)

    def check_wait_version(self, m: SimMachine, version: str | None) -> None:
        self.api.check_wait_version(m, version)

    def events(self, m: SimMachine, limit: int) -> list[dict[str, Any]]:
        return self.api.events(m, limit)

    def machine_json(self, m: SimMachine, *, summary: bool = False,
                     include_lease: bool = False) -> dict[str, Any]:
        return self.api.machine_json(m, summary=summary, include_lease=include_lease)

    def event_json(self, e: Event, *, with_id: bool = True) -> dict[str, Any]:
        return self.api.event_json(e, with_id=with_id)

    def lease_json(self, lease: Lease) -> dict[str, Any]:
        return self.api.lease_json(lease)

    def lease_get(self, m: SimMachine) -> dict[str, Any]:
        return self.api.lease_get(m)

    def lease_acquire(self, m: SimMachine, nonce: str | None, ttl: float,
                      description: str, owner: str = SIM_OWNER) -> dict[str, Any]:
        return self.api.lease_acquire(m, nonce, ttl, description, owner=owner)

    def lease_release(self, m: SimMachine, nonce: str | None) -> dict[str, Any]:
        return self.api.lease_release(m, nonce)

    def hold_lease(self, app: str, machine_id: str, owner: str = "deploy@ci",
                   ttl_s: float = 60.0, description: str = "fly deploy") -> str:
        """Lease a machine as someone else would (a running deploy); returns the nonce."""
        self.step_to()
        return self.api.hold_lease(self.machine(app, machine_id), owner, ttl_s, description)

    # ------------------------------------------- the proxy, logs and metrics

    def route(self, app: SimApp) -> SimMachine | None:
        return self.proxy.route(app)

    def can_wait(self, app: SimApp) -> bool:
        return self.proxy.can_wait(app)

    def serve(self, app: SimApp, m: SimMachine, path: str, *, log_all: bool,
              method: str = "GET", at: float | None = None) -> tuple[int, float, str]:
        return self.proxy.serve(app, m, path, log_all=log_all, method=method, at=at)

    def no_machine(self, app: SimApp, waited: float) -> None:
        self.proxy.no_machine(app, waited)

    def record_edge(self, app: SimApp, status: int, latency: float) -> None:
        self.proxy.record_edge(app, status, latency)

    def logs_page(self, app_name: str, next_token: str | None, instance: str | None,
                  region: str | None) -> dict[str, Any]:
        return self.logs.page(self.app(app_name), next_token, instance, region)

    def metrics_text(self) -> str:
        return metrics_text(self.apps.values())
