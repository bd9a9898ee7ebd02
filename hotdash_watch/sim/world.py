"""The simulated Fly: apps, machines, flyd, the proxy, traffic and faults, driven by a clock.

No HTTP here (``app.py`` serves it). Everything happens at exact *scenario seconds* (``t`` = clock
seconds since ``begin()``): a state change is a scheduled callback in a time-ordered queue, and
``step_to(t)`` runs every callback due by ``t`` in order, with the world's "now" set to each
callback's own time. A background task (``run()``) steps the world every few seconds of clock
time and every HTTP request steps it first, so the outcome never depends on when the event loop
got round to it: a test on a ``ManualClock`` may advance ten minutes at once and see exactly what
a run on virtual or scaled time shows.

The model (Fly's Machines API as its documentation and its Go client describe it; the scenario
format is in config/scenarios/README.md):

* Machines move through Fly's states with fixed delays: start (stopped → starting → started, 2 s),
  stop (→ stopping → stopped, 2 s), restart (started → restarting → started, 3 s, with an exit event
  ``requested_stop=true, restarting=true``), update (→ replacing → started, 5 s, new
  ``instance_id``; a stopped machine stays stopped with ``skip_launch``). Events are the four types
  the Machines API reports (launch, update, start, exit), newest first.
* flyd's ``on-failure`` policy: a machine that exits non-zero on its own is restarted 1 s later
  (exit event ``restarting=true``, ``restart_count`` growing; the machine's ``state`` stays
  ``started`` meanwhile, as the Machines API shows it) up to ``max_retries`` within 5 minutes, then
  left ``stopped`` (``restarting=false``). A start, restart or update resets the count.
* Health checks run on Fly's schedule (service check every 15 s after a 10 s grace period, the
  ``db`` check every 30 s after 20 s); ``updated_at`` is when a status last changed. Stopped
  machines carry no ``checks`` key (as the Machines API answers).
* The proxy sends each request to the next started machine (round robin) whose service check is
  not critical (or that is still in its grace period); with none it autostarts a stopped machine
  (the request waits, up to 10 s) or answers 503 at the edge. A machine whose process is down
  answers 502 (``connection refused``). Autostop follows Fly's docs: every 300 s, when the app has
  spare capacity and more started machines than ``min_machines_running``, the proxy stops one (the
  one that served the fewest requests in that period).
* Background traffic: ``traffic_rps`` requests per scenario second, served in one-second batches
  through the same code as proxied requests; both count in the edge metrics.
* Faults (config/scenarios/README.md lists them) change the world, which then stays consistent:
  a bad image crashes again after a restart and only a rollback cures it, an OOM-ing machine
  keeps being killed until its memory is raised, a dependency outage ignores restarts.
  ``fault_log`` records each fault firing, ending (until_s, recover) or being cured (by what).

Choices where Fly's documentation is silent are listed in ``hotdash_watch/sim/__init__.py``.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import dataclasses
import hashlib
import heapq
import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hotdash_watch.clock import Clock
from hotdash_watch.sim.ids import IdSource, epoch_ms, epoch_ns, machine_identities, rfc3339
from hotdash_watch.sim.spec import AppSpec, Fault, Scenario

__all__ = [
    "ApiError",
    "Release",
    "SimApp",
    "SimMachine",
    "World",
]

DAY_S = 86400.0
TICK_S = 1.0
#: How often the background loop steps the world when no request does. Every request steps it
#: first and each change runs at its own scenario time, so this only bounds how late a change
#: nobody asked about is applied (and narrated); it changes nothing the world does.
BACKGROUND_STEP_S = 5.0
START_S = 2.0
STOP_S = 2.0
RESTART_S = 3.0
REPLACE_S = 5.0
FLYD_RESTART_S = 1.0
CRASH_AFTER_S = 2.0
OOM_AFTER_S = (5.0, 10.0)
RESTART_WINDOW_S = 300.0
AUTOSTOP_PERIOD_S = 300.0
PROXY_WAIT_S = 10.0
PARTITION_WINDOW_S = 30.0
DEPENDENCY_FAIL_RATE = 0.6
CHECK_TIMEOUT_MS = 5000.0
EMBEDDED_EVENTS = 5
MAX_EVENTS = 100
MAX_LOG_LINES = 200_000
LOG_SAMPLE_OK = 0.1

SERVICE_CHECK = "servicecheck-00-http-8080"
DB_CHECK = "db"
CHECK_SCHEDULE = {SERVICE_CHECK: (10.0, 15.0), DB_CHECK: (20.0, 30.0)}  # (grace, interval)

BASE_MEDIAN_S = 0.035
BASE_SIGMA = 0.45
SLOW_SIGMA = 0.35
Z95 = 1.6448536269514722
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0,
                   4.0, 5.0, 7.5, 10.0, 30.0, 60.0)

SIM_OWNER = "sim-user@hotdash.example"
MUTATION_RATE = (1.0, 3.0)  # tokens per scenario second, burst
GET_RATE = (5.0, 10.0)
HIDDEN_CHECK_STATES = frozenset({"stopped", "suspended", "created", "destroyed"})
SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM")
SETTLED = ("started", "stopped", "suspended", "failed", "destroyed")
WAIT_STATES = frozenset(SETTLED) | {"settled"}
DEGRADING = frozenset({"crash", "oom", "errors", "latency", "bad_release", "dependency_down",
                       "flap"})
MACHINE_KINDS = frozenset({"crash", "oom", "errors", "latency", "flap"})
BACKGROUND_PATHS = ("/api/chat", "/api/query", "/api/tools/search", "/api/sessions")
RELEASE_USER = {"id": "Kx81q", "email": "ci-bot@hotdash.example", "name": "CI Bot"}


class ApiError(Exception):
    """A Machines API refusal: HTTP ``status`` with Fly's ``{"error": …}`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Release:
    """One release of an app (GraphQL ``releasesUnprocessed`` node)."""

    version: int
    id: str
    image: str
    created_s: float
    status: str
    stable: bool
    fail_rate: float  # fraction of requests its image fails; 1.0 = crashes on start
    strategy: str = "ROLLING"
    updated_s: float = 0.0


@dataclass
class Check:
    status: str
    output: str
    changed_s: float


@dataclass
class Event:
    id: str
    type: str
    status: str
    source: str
    t: float
    request: dict[str, Any] | None = None


@dataclass
class Lease:
    nonce: str
    owner: str
    description: str
    expires_s: float
    version: str


@dataclass
class _Bucket:
    """Token bucket in scenario seconds (rate per second, burst)."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> float | None:
        """Take a token; ``None`` when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


@dataclass
class SimMachine:
    """One simulated Fly Machine."""

    id: str
    name: str
    app: str
    index: int
    region: str
    private_ip: str
    config: dict[str, Any]
    instance_id: str
    created_s: float
    state: str = "created"
    updated_s: float = 0.0
    events: list[Event] = field(default_factory=list)  # oldest first
    checks: dict[str, Check] = field(default_factory=dict)
    app_up: bool = False
    boot_s: float | None = None
    gen: int = 0
    restart_count: int = 0  # flyd's restarts since the last user/proxy boot
    restart_times: list[float] = field(default_factory=list)
    last_exit_requested: bool = False
    last_exit_oom: bool = False
    flyd_pending: bool = False
    lease: Lease | None = None
    versions: list[str] = field(default_factory=list)  # earlier instance ids
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    period_requests: int = 0
    last_request_s: float = 0.0

    @property
    def memory_mb(self) -> int:
        return int((self.config.get("guest") or {}).get("memory_mb") or 0)

    @property
    def image(self) -> str:
        return str(self.config.get("image") or "")

    def service(self) -> dict[str, Any]:
        services = self.config.get("services") or []
        return services[0] if services and isinstance(services[0], dict) else {}


@dataclass
class LogLine:
    t: float
    ns: int
    id: str
    message: str
    level: str
    instance: str
    region: str
    provider: str


@dataclass
class SimApp:
    """One simulated app: its machines, releases, proxy state, edge counters and logs."""

    spec: AppSpec
    machines: list[SimMachine] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)  # oldest first
    rr: int = 0
    carry: float = 0.0
    pending: list[float] = field(default_factory=list)
    responses: Counter[str] = field(default_factory=Counter)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    logs: list[LogLine] = field(default_factory=list)
    log_ns: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class ActiveFault:
    """A fault that has fired; ``targets`` are the machine ids it still affects."""

    uid: int
    fault: Fault
    started_s: float
    state: str = "active"  # active | ended | cured
    targets: set[str] = field(default_factory=set)
    apps: set[str] = field(default_factory=set)  # watcher_partition
    baseline_mb: dict[str, int] = field(default_factory=dict)  # latency
    image: str | None = None  # bad_release

    @property
    def kind(self) -> str:
        return self.fault.kind

    @property
    def active(self) -> bool:
        return self.state == "active"


def _cpus_for(memory_mb: int) -> int:
    for cpus in (1, 2, 4, 8):
        if memory_mb <= 2048 * cpus:
            return cpus
    return 8


def _autostop_json(value: Any) -> bool | str:
    """Autostop as responses show it: false (off), true (stop) or "suspend"."""
    if value in ("suspend",):
        return "suspend"
    if isinstance(value, bool):
        return value
    return value == "stop"


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (a response must never share the world's own dicts)."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    return [_json_copy(v) for v in value] if isinstance(value, list) else value


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


class World:
    """The simulator's truth: state, faults and their consequences, in scenario seconds."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.t0 = clock.timestamp()
        self.fault_log: list[dict[str, Any]] = []
        self.mutations: list[dict[str, Any]] = []
        self.recovered_at_s: float | None = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.apps: dict[str, SimApp] = {}
        self.faults: list[ActiveFault] = []
        self._now = 0.0
        self._begun = False
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._fault_uid = itertools.count(1)
        self._faults_pending = 0
        self._last_fault_s: float | None = None
        self._stopping = asyncio.Event()
        seed = scenario.seed
        self._ids = IdSource(seed, "ids")
        self._log_ids = IdSource(seed, "logs")
        self._rng_traffic = random.Random(f"{seed}:traffic")
        self._rng_faults = random.Random(f"{seed}:faults")
        self._rng_proxy = random.Random(f"{seed}:proxy")
        self._rng_api = random.Random(f"{seed}:api")
        self._dep_lines = itertools.count()
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

    def begin(self) -> None:
        """Start the scenario now: world time 0 is the clock's present; schedule everything."""
        if self._begun:
            return
        self._begun = True
        self.t0 = self.clock.timestamp()
        self._schedule(TICK_S, self._tick)
        for i, app in enumerate(self.apps.values()):
            self._schedule(AUTOSTOP_PERIOD_S + 7.0 * i, self._autostop_check, app)
            for m in app.machines:
                for name, (_, interval) in CHECK_SCHEDULE.items():
                    phase = (1.0 + 3.0 * m.index + 5.0 * i) % interval
                    self._schedule(phase or interval, self._check_run, m, name)
        for fault in sorted(self.scenario.faults, key=lambda f: f.at_s):
            self._faults_pending += 1
            self._schedule(fault.at_s, self._fire_scheduled, fault)

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

    def _schedule(self, at: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), fn, args))

    def _after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self._schedule(self._now + delay, fn, *args)

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
            self._event(m, "launch", "created", "user")
            self._history_boot(m, created + 2.0, first)
            for k, rel in enumerate(app.releases[1:], start=1):
                at = rel.created_s + 10.0 + 6.0 * index
                self._now = at
                m.config = self._config(spec, rel)
                m.versions.append(m.instance_id)
                m.instance_id = self._ids.ulid(self.ts(at))
                self._event(m, "update", "replacing", "user")
                self._history_boot(m, at + REPLACE_S, rel, last=k == n - 1)
            app.machines.append(m)
        self._now = 0.0
        return app

    def _history_boot(self, m: SimMachine, at: float, rel: Release, last: bool = True) -> None:
        """A boot in the machine's history (before t=0): started, or a failed deploy."""
        if not m.instance_id:
            m.instance_id = self._ids.ulid(self.ts(at - 2.0))
        self._now = at
        self._event(m, "start", "started", "flyd")
        m.state, m.updated_s = "started", at
        if rel.fail_rate >= 1.0:
            self._now = at + CRASH_AFTER_S
            self._exit_event(m, 1, oom=False, requested=False, restarting=False,
                             restart_count=int(self._max_retries(m)))
            m.state, m.updated_s = "stopped", self._now
            m.app_up = False
            return
        m.app_up = True
        m.boot_s = at
        m.checks = {name: Check("passing", self._passing_output(m, name), at + grace)
                    for name, (grace, _) in CHECK_SCHEDULE.items()}
        if last:
            self._log(self.apps.get(m.app), m, "Listening on 0.0.0.0:8080", t=at + 1.0)

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

    # ------------------------------------------------------------- queries

    def app(self, name: str) -> SimApp:
        """The app called ``name``; ``ApiError(404)`` when there is none."""
        app = self.apps.get(name)
        if app is None:
            raise ApiError(404, f"app not found: {name}")
        return app

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

    def healthy(self, app: str) -> bool:
        """The simulator's own truth: every machine that should serve is started and passing,
        and no active fault degrades the app's requests."""
        self.step_to()
        return self._healthy(self.app(app))

    def _healthy(self, app: SimApp) -> bool:
        if any(af.active and af.kind in DEGRADING and af.fault.app == app.name
               for af in self.faults):
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
        if any(af.active for af in self.faults):
            return
        if all(self._healthy(app) for app in self.apps.values()):
            self.recovered_at_s = round(self._now, 3)

    # ---------------------------------------------------------- rendering

    def machine_json(self, m: SimMachine, *, summary: bool = False,
                     include_lease: bool = False) -> dict[str, Any]:
        """The Machines API object for ``m`` (tests/fixtures/machines-list.json has the shape)."""
        out: dict[str, Any] = {
            "id": m.id,
            "name": m.name,
            "state": m.state,
            "region": m.region,
            "instance_id": m.instance_id,
            "private_ip": m.private_ip,
            "image_ref": self._image_ref(m.image),
        }
        if not summary:
            out["config"] = _json_copy(m.config)
        out["cordoned"] = False
        if not summary:
            out["host_status"] = "ok"
        out["created_at"] = rfc3339(self.ts(m.created_s))
        out["updated_at"] = rfc3339(self.ts(m.updated_s))
        if not summary:
            if m.state not in HIDDEN_CHECK_STATES:
                out["checks"] = [
                    {"name": name, "status": c.status, "output": c.output,
                     "updated_at": rfc3339(self.ts(c.changed_s), 3)}
                    for name, c in m.checks.items()
                ]
            out["events"] = [self.event_json(e, with_id=False)
                             for e in reversed(m.events[-EMBEDDED_EVENTS:])]
        if include_lease:
            lease = self._live_lease(m)
            if lease is not None:
                out["lease"] = {"owner": lease.owner, "description": lease.description,
                                "expires_at": int(self.ts(lease.expires_s)),
                                "nonce": lease.nonce, "version": lease.version}
        return out

    def event_json(self, e: Event, *, with_id: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": e.id} if with_id else {}
        out.update(type=e.type, status=e.status, source=e.source,
                   timestamp=epoch_ms(self.ts(e.t)))
        if e.request is not None:
            out["request"] = copy.deepcopy(e.request)
        return out

    def _image_ref(self, image: str) -> dict[str, Any]:
        registry, _, rest = image.partition("/")
        if not rest or ("." not in registry and ":" not in registry):
            registry, rest = "docker-hub-mirror.fly.io", image
        repository, _, tag = rest.partition(":")
        digest = hashlib.sha256(image.encode()).hexdigest()
        return {"registry": registry, "repository": repository, "tag": tag or "latest",
                "digest": f"sha256:{digest}", "labels": {}}

    # ------------------------------------------------------ machine events

    def _event(self, m: SimMachine, typ: str, status: str, source: str,
               request: dict[str, Any] | None = None) -> Event:
        e = Event(self._ids.ulid(self.ts(self._now)), typ, status, source, self._now, request)
        m.events.append(e)
        del m.events[:-MAX_EVENTS]
        return e

    def _exit_event(self, m: SimMachine, code: int, *, oom: bool, requested: bool,
                    restarting: bool, restart_count: int) -> None:
        self._event(m, "exit", "stopped", "flyd", {
            "exit_event": {
                "exit_code": code, "guest_exit_code": 0, "guest_signal": -1, "signal": -1,
                "oom_killed": oom, "requested_stop": requested, "restarting": restarting,
                "exited_at": rfc3339(self.ts(self._now), 3),
            },
            "restart_count": restart_count,
        })
        m.last_exit_requested = requested
        m.last_exit_oom = oom

    def _set_state(self, m: SimMachine, state: str) -> None:
        if m.state != state:
            m.state = state
        m.updated_s = self._now

    def _max_retries(self, m: SimMachine) -> int:
        restart = m.config.get("restart") or {}
        try:
            return int(restart.get("max_retries", 10))
        except (TypeError, ValueError):
            return 10

    def _flyd_restarts(self, m: SimMachine, code: int) -> bool:
        """Whether flyd's restart policy brings ``m`` back after a non-requested exit."""
        policy = (m.config.get("restart") or {}).get("policy", "on-failure")
        if policy == "no" or (policy == "on-failure" and code == 0):
            return False
        recent = [t for t in m.restart_times if t > self._now - RESTART_WINDOW_S]
        m.restart_times = recent
        return len(recent) < self._max_retries(m)

    # ------------------------------------------------------- lifecycles

    def _begin_start(self, m: SimMachine, cause: str) -> None:
        m.gen += 1
        m.app_up = False
        m.restart_count = 0
        m.restart_times.clear()
        self._set_state(m, "starting")
        self._log_runner(m, f"Starting machine ({cause})" if cause == "proxy"
                         else "Starting machine")
        self._after(START_S, self._boot, m, m.gen, cause)

    def _begin_stop(self, m: SimMachine, cause: str) -> None:
        m.gen += 1
        self._set_state(m, "stopping")
        self._log(self.apps[m.app], m, " INFO Sending signal SIGINT to main child process "
                  "w/ PID 313")
        self._after(STOP_S, self._finish_stop, m, m.gen)

    def _finish_stop(self, m: SimMachine, gen: int) -> None:
        if m.gen != gen:
            return
        m.gen += 1
        m.app_up = False
        m.boot_s = None
        self._log(self.apps[m.app], m, " INFO Main child exited normally with code: 0")
        self._log(self.apps[m.app], m, " INFO Starting clean up.")
        self._exit_event(m, 0, oom=False, requested=True, restarting=False,
                         restart_count=m.restart_count)
        self._set_state(m, "stopped")

    def _begin_restart(self, m: SimMachine) -> None:
        m.gen += 1
        m.app_up = False
        m.boot_s = None
        self._log(self.apps[m.app], m, " INFO Sending signal SIGINT to main child process "
                  "w/ PID 313")
        self._exit_event(m, 0, oom=False, requested=True, restarting=True,
                         restart_count=m.restart_count)
        m.restart_count = 0
        m.restart_times.clear()
        self._set_state(m, "restarting")
        self._after(RESTART_S, self._boot, m, m.gen, "api")

    def _begin_replace(self, m: SimMachine, launch: bool, cause: str) -> None:
        m.versions.append(m.instance_id)
        m.instance_id = self._ids.ulid(self.ts(self._now))
        m.gen += 1
        self._event(m, "update", "replacing", "user")
        m.restart_count = 0
        m.restart_times.clear()
        if launch:
            m.app_up = False
            m.boot_s = None
            self._set_state(m, "replacing")
            self._after(REPLACE_S, self._boot, m, m.gen, cause)
        else:
            self._set_state(m, m.state)

    def _boot(self, m: SimMachine, gen: int, cause: str) -> None:
        """The machine's process starts (after a start, restart, update or flyd's restart)."""
        if m.gen != gen:
            return
        m.gen += 1
        m.flyd_pending = False
        app = self.apps[m.app]
        self._event(m, "start", "started", "flyd")
        self._set_state(m, "started")
        m.boot_s = self._now
        m.last_exit_requested = False
        self._log_runner(m, "Machine started in 1.204s")
        fail = self._image_fail_rate(app, m.image)
        for af in self.faults:
            if (af.active and af.kind in ("crash", "errors") and af.fault.until_s is None
                    and m.id in af.targets):
                af.targets.discard(m.id)
                if not af.targets:
                    self._cure(af, f"every affected machine was booted again "
                                   f"({cause} of {m.name} last)")
        if fail >= 1.0:
            m.app_up = False
            self._log(app, m, "Traceback (most recent call last):", level="error")
            self._log(app, m, "ModuleNotFoundError: No module named 'hotdash_agents.runtime'",
                      level="error")
            self._after(CRASH_AFTER_S, self._crash, m, m.gen, 1)
            return
        m.app_up = True
        self._log(app, m, "Listening on 0.0.0.0:8080")
        if any(af.active and af.kind == "crash" and m.id in af.targets for af in self.faults):
            self._after(CRASH_AFTER_S, self._crash, m, m.gen, 1)
        for af in self.faults:
            if (af.active and af.kind == "oom" and m.id in af.targets
                    and m.memory_mb < int(af.fault.need_mb or 0)):
                self._after(self._rng_faults.uniform(*OOM_AFTER_S), self._oom_kill, m, m.gen)
                break

    def _crash(self, m: SimMachine, gen: int, code: int, final: bool = False) -> None:
        if m.gen != gen or m.state != "started":
            return
        app = self.apps[m.app]
        if self._image_fail_rate(app, m.image) < 1.0:
            self._log(app, m, "ERROR fatal: unrecoverable error in worker, exiting",
                      level="error")
        self._log(app, m, f" INFO Main child exited normally with code: {code}")
        self._exit(m, code, oom=False, final=final)

    def _oom_kill(self, m: SimMachine, gen: int) -> None:
        if m.gen != gen or m.state != "started" or not m.app_up:
            return
        need = [int(af.fault.need_mb or 0) for af in self.faults
                if af.active and af.kind == "oom" and m.id in af.targets]
        if not need or m.memory_mb >= max(need):
            return
        app = self.apps[m.app]
        up = self._now - (m.boot_s or self._now)
        self._log(app, m, f"[ {3400.0 + up:.6f}] Out of memory: Killed process 322 (python) "
                  f"total-vm:1503340kB, anon-rss:{m.memory_mb * 973}kB, file-rss:0kB, "
                  "shmem-rss:0kB, UID:0 pgtables:1148kB oom_score_adj:0")
        self._log(app, m, " INFO Main child exited normally with code: 137")
        self._log(app, m, " INFO Process appears to have been OOM killed!")
        self._exit(m, 137, oom=True)

    def _exit(self, m: SimMachine, code: int, *, oom: bool, final: bool = False) -> None:
        """The process exits on its own; flyd's restart policy decides what happens next."""
        m.gen += 1
        m.app_up = False
        m.boot_s = None
        restarting = not final and self._flyd_restarts(m, code)
        self._exit_event(m, code, oom=oom, requested=False, restarting=restarting,
                         restart_count=m.restart_count)
        if restarting:
            m.flyd_pending = True
            m.updated_s = self._now
            self._log_runner(m, f"machine exited with exit code {code}, restarting")
            self._after(FLYD_RESTART_S, self._flyd_restart, m, m.gen)
        else:
            self._log_runner(m, f"machine exited with exit code {code}, not restarting")
            self._set_state(m, "stopped")

    def _flyd_restart(self, m: SimMachine, gen: int) -> None:
        if m.gen != gen:
            return
        m.restart_count += 1
        m.restart_times.append(self._now)
        self._boot(m, gen, "flyd")

    # ------------------------------------------------------------- checks

    def _passing_output(self, m: SimMachine, name: str) -> str:
        if name == SERVICE_CHECK:
            return "Success"
        return f"HTTP GET http://[{m.private_ip}]:8080/health/db: 200 OK"

    def _check_result(self, m: SimMachine, name: str) -> tuple[str, str]:
        if m.state != "started" or not m.app_up:
            return "critical", f"dial tcp [{m.private_ip}]:8080: connect: connection refused"
        app = self.apps[m.app]
        dependency = self._app_faults(app.name, "dependency_down")
        if name == DB_CHECK:
            if dependency:
                return "critical", "context deadline exceeded"
            return "passing", self._passing_output(m, name)
        url = f"HTTP GET http://[{m.private_ip}]:8080/health"
        if dependency:
            return "critical", f"{url}: 503 Service Unavailable"
        if any(self._flap_bad(af) for af in self._machine_faults(m, "flap")):
            return "critical", f"{url}: 503 Service Unavailable"
        if any(float(af.fault.rate or 0) >= 0.5 for af in self._machine_faults(m, "errors")):
            return "critical", f"{url}: 500 Internal Server Error"
        if self._image_fail_rate(app, m.image) >= 0.5:
            return "critical", f"{url}: 500 Internal Server Error"
        if any(float(af.fault.p95_ms or 0) >= CHECK_TIMEOUT_MS
               for af in self._machine_faults(m, "latency")):
            return "critical", "context deadline exceeded"
        return "passing", self._passing_output(m, name)

    def _check_run(self, m: SimMachine, name: str) -> None:
        grace, interval = CHECK_SCHEDULE[name]
        self._after(interval, self._check_run, m, name)
        if m.state in HIDDEN_CHECK_STATES:
            return
        if m.state == "started" and m.boot_s is not None and self._now - m.boot_s < grace:
            return
        status, output = self._check_result(m, name)
        current = m.checks.get(name)
        if current is None or current.status != status:
            m.checks[name] = Check(status, output, self._now)
        else:
            current.output = output

    # ------------------------------------------------------------- faults

    def _app_faults(self, app: str, kind: str) -> list[ActiveFault]:
        return [af for af in self.faults if af.active and af.kind == kind and af.fault.app == app]

    def _machine_faults(self, m: SimMachine, kind: str) -> list[ActiveFault]:
        return [af for af in self.faults
                if af.active and af.kind == kind and m.id in af.targets]

    def _flap_bad(self, af: ActiveFault) -> bool:
        period = float(af.fault.period_s or 1.0)
        return int((self._now - af.started_s) // period) % 2 == 0

    def _image_fail_rate(self, app: SimApp, image: str) -> float:
        for rel in app.releases:
            if rel.image == image:
                return rel.fail_rate
        return 0.0  # an image the simulator does not know runs normally

    def api_down(self) -> bool:
        """Whether the Machines, GraphQL and logs APIs are down (fly_api_down)."""
        return any(af.active and af.kind == "fly_api_down" for af in self.faults)

    def api_outage_hangs(self) -> bool:
        """For one request during fly_api_down: hang (True) or answer 503 (False)."""
        return self._rng_api.random() < 0.3

    def partitioned(self, app: str) -> bool:
        """Whether the watcher cannot reach ``app``'s public URL (watcher_partition)."""
        return any(af.active and af.kind == "watcher_partition" and app in af.apps
                   for af in self.faults)

    def partition_hangs(self) -> bool:
        """For a request during watcher_partition: hang (True) or drop the connection.

        Decided per 30-second window (deterministic by seed), so a client's automatic retry of
        a dropped request meets the same fate as the request itself.
        """
        window = int(self._now // PARTITION_WINDOW_S)
        return random.Random(f"{self.scenario.seed}:partition:{window}").random() < 0.5

    def _resolve(self, fault: Fault) -> list[SimMachine]:
        if fault.app is None:
            return []
        machines = self.app(fault.app).machines
        sel = fault.machines
        if sel == "all":
            return list(machines)
        if isinstance(sel, int):
            return list(machines[:sel])
        wanted = set(sel)
        return [m for m in machines if m.name in wanted or m.id in wanted]

    def inject(self, fault: Fault) -> None:
        """Fire ``fault`` now (its ``at_s`` is ignored; ``until_s`` is a scenario time)."""
        if fault.app is None and fault.kind not in ("fly_api_down", "watcher_partition",
                                                    "recover"):
            if len(self.apps) != 1:
                raise ValueError(f"{fault.kind} needs an app")
            fault = dataclasses.replace(fault, app=next(iter(self.apps)))
        self.step_to()
        self._fire(fault)
        self._evaluate_recovery()

    def _fire_scheduled(self, fault: Fault) -> None:
        self._faults_pending -= 1
        self._fire(fault)

    def _fire(self, fault: Fault) -> None:
        af = ActiveFault(next(self._fault_uid), fault, self._now)
        self.faults.append(af)
        self._last_fault_s = self._now
        self.recovered_at_s = None
        targets = self._resolve(fault)
        kind = fault.kind
        if kind in MACHINE_KINDS:
            af.targets = {m.id for m in targets}
        how = _describe(fault, targets)
        if kind == "crash":
            running = [m for m in targets if m.state == "started"]
            if fault.until_s is None:
                af.targets = {m.id for m in running}
            self._record(af, "fired", how)
            for m in running:
                if m.flyd_pending and fault.until_s is None:
                    m.gen += 1  # flyd's pending restart is called off: it stays down
                    m.flyd_pending = False
                    self._set_state(m, "stopped")
                elif m.app_up:
                    self._crash(m, m.gen, 1, final=fault.until_s is None)
            if not af.targets:
                self._cure(af, "no affected machine was running")
        elif kind == "oom":
            af.targets = {m.id for m in targets if m.memory_mb < int(fault.need_mb or 0)}
            self._record(af, "fired", how)
            for m in targets:
                if m.id in af.targets and m.state == "started" and m.app_up:
                    self._after(self._rng_faults.uniform(*OOM_AFTER_S), self._oom_kill, m,
                                m.gen)
            if not af.targets:
                self._cure(af, "every machine already has enough memory")
        elif kind == "latency":
            af.baseline_mb = {m.id: m.memory_mb for m in targets}
            self._record(af, "fired", how)
        elif kind == "bad_release":
            self._record(af, "fired", how)
            self._deploy_bad_release(af)
        elif kind == "watcher_partition":
            af.apps = {fault.app} if fault.app else set(self.apps)
            self._record(af, "fired", how)
        elif kind == "recover":
            self._record(af, "fired", how)
            af.state = "ended"
            self._recover(fault, targets)
        else:
            self._record(af, "fired", how)
        if fault.until_s is not None and af.active:
            self._schedule(max(fault.until_s, self._now), self._end, af, "until_s reached")

    def _deploy_bad_release(self, af: ActiveFault) -> None:
        app = self.app(str(af.fault.app))
        rate = float(af.fault.rate or 1.0)
        prev = app.releases[-1]
        rel = Release(
            version=prev.version + 1, id=self._ids.alnum(25),
            image=f"registry.fly.io/{app.name}:deployment-{self._ids.ulid(self.ts(self._now))}",
            created_s=self._now, status="running", stable=False, fail_rate=rate,
            strategy="IMMEDIATE", updated_s=self._now)
        app.releases.append(rel)
        af.image = rel.image
        af.targets = {m.id for m in app.machines}
        for m in app.machines:
            cfg = copy.deepcopy(m.config)
            cfg["image"] = rel.image
            cfg.setdefault("metadata", {}).update(fly_release_id=rel.id,
                                                  fly_release_version=str(rel.version))
            m.config = cfg
            running = m.state not in ("stopped", "suspended")
            self._begin_replace(m, launch=running, cause="deploy")
        self._after(REPLACE_S + 1.0, self._finish_release, app, rel)

    def _finish_release(self, app: SimApp, rel: Release) -> None:
        rel.status = "failed" if rel.fail_rate >= 1.0 else "complete"
        rel.stable = rel.status == "complete"
        rel.updated_s = self._now

    def _recover(self, fault: Fault, machines: list[SimMachine]) -> None:
        ids = {m.id for m in machines} if fault.machines != "all" else None
        for af in self.faults:
            if not af.active or af.kind == "recover":
                continue
            if af.kind == "watcher_partition":
                if ids is not None:
                    continue
                af.apps -= {fault.app} if fault.app else set(af.apps)
                if not af.apps:
                    self._end(af, "recover")
                continue
            if fault.app is not None and af.fault.app != fault.app:
                continue
            if ids is not None:
                if af.kind not in MACHINE_KINDS:
                    continue
                af.targets -= ids
                if af.targets:
                    continue
            self._end(af, "recover")

    def _end(self, af: ActiveFault, how: str) -> None:
        if not af.active:
            return
        af.state = "ended"
        if af.kind == "bad_release" and how == "recover":
            app = self.apps[str(af.fault.app)]
            for rel in app.releases:
                if rel.image == af.image:
                    rel.fail_rate = 0.0
        self._record(af, "ended", how)

    def _cure(self, af: ActiveFault, how: str) -> None:
        if not af.active:
            return
        af.state = "cured"
        self._record(af, "cured", how)

    def _record(self, af: ActiveFault, event: str, how: str) -> None:
        entry = {"at_s": round(self._now, 3), "kind": af.kind, "app": af.fault.app,
                 "event": event, "how": how}
        self.fault_log.append(entry)
        for listener in self.listeners:
            listener(entry)

    def _check_cures(self, m: SimMachine, cause: str) -> None:
        """Config-driven cures after an update of ``m`` (memory raised, image rolled back)."""
        for af in self.faults:
            if not af.active or m.id not in af.targets:
                continue
            if af.kind == "oom" and m.memory_mb >= int(af.fault.need_mb or 0):
                af.targets.discard(m.id)
                if not af.targets:
                    self._cure(af, f"memory raised to >= {af.fault.need_mb} MB on every "
                                   f"affected machine ({m.name} last)")
            elif (af.kind == "latency" and af.fault.until_s is None
                  and m.memory_mb > af.baseline_mb.get(m.id, m.memory_mb)):
                af.targets.discard(m.id)
                if not af.targets:
                    self._cure(af, f"memory raised on every affected machine ({m.name} last)")
            elif af.kind == "bad_release" and m.image != af.image:
                af.targets.discard(m.id)
                if not af.targets:
                    self._cure(af, f"no machine runs the bad image any more ({cause} of "
                                   f"{m.name} last)")

    # ------------------------------------------------------- proxy, traffic

    def _routable(self, m: SimMachine) -> bool:
        if m.state != "started" or not m.config.get("services"):
            return False
        grace = CHECK_SCHEDULE[SERVICE_CHECK][0]
        if m.boot_s is not None and self._now - m.boot_s < grace:
            return True
        check = m.checks.get(SERVICE_CHECK)
        return check is None or check.status != "critical"

    def _booting(self, app: SimApp) -> bool:
        return any(m.state in ("starting", "restarting", "replacing") or m.flyd_pending
                   for m in app.machines)

    def route(self, app: SimApp) -> SimMachine | None:
        """The machine the proxy sends the next request to; autostarts one when none serves."""
        candidates = [m for m in app.machines if self._routable(m)]
        if candidates:
            m = candidates[app.rr % len(candidates)]
            app.rr += 1
            return m
        self._autostart(app)
        return None

    def can_wait(self, app: SimApp) -> bool:
        """Whether a request with no machine should wait (a machine is on its way up)."""
        return self._booting(app)

    def _autostart(self, app: SimApp) -> None:
        if self._booting(app):
            return
        for m in app.machines:
            if m.state in ("stopped", "suspended") and m.service().get("autostart"):
                self._log(app, m, f"Starting machine {m.id} for a request (autostart)",
                          provider="proxy")
                self._begin_start(m, "proxy")
                return

    def serve(self, app: SimApp, m: SimMachine, path: str, *, log_all: bool,
              method: str = "GET", at: float | None = None) -> tuple[int, float, str]:
        """One request served by ``m``: (status, latency in seconds, body).

        ``at`` is when it arrived (for its log lines), by default the world's now.
        """
        rng = self._rng_traffic
        m.period_requests += 1
        m.last_request_s = self._now
        if not m.app_up:
            self._log(app, m, "could not make HTTP request to instance: connection refused",
                      level="error", provider="proxy", t=at)
            return 502, 0.002 + 0.003 * rng.random(), "Bad Gateway"
        latency = _lognormal(rng, BASE_MEDIAN_S, BASE_SIGMA)
        slow = [float(af.fault.p95_ms or 0) for af in self._machine_faults(m, "latency")]
        if slow:
            p95_s = max(slow) / 1000.0
            latency = _lognormal(rng, p95_s / math.exp(Z95 * SLOW_SIGMA), SLOW_SIGMA)
        status, body, line = 200, "ok", ""
        if self._app_faults(app.name, "dependency_down") and (
                path.endswith("/health") or rng.random() < DEPENDENCY_FAIL_RATE):
            status, body = 503, "Service Unavailable: dependency unreachable"
            if next(self._dep_lines) % 2:
                line = "ERROR OpenAI API error 503: The server is overloaded or not ready yet."
            else:
                line = "ERROR Supabase connection timeout after 10000ms (database unreachable)"
        for af in self._machine_faults(m, "errors"):
            if rng.random() < float(af.fault.rate or 0):
                status, body = 500, "Internal Server Error"
                line = "ERROR request failed: worker pool exhausted, 500 Internal Server Error"
        fail = self._image_fail_rate(app, m.image)
        if 0 < fail < 1.0 and rng.random() < fail:
            status, body = 500, "Internal Server Error"
            line = "ERROR unhandled exception in request handler: KeyError: 'tenant_id'"
        if path.endswith("/health") and any(
                self._flap_bad(af) for af in self._machine_faults(m, "flap")):
            # A flapping machine's health endpoint (and so its Fly check) alternates; the
            # requests it serves meanwhile succeed. That is the flap fault's "health alternates".
            status, body = 503, "Service Unavailable"
            line = "ERROR health degraded: backend pool unhealthy, 503 Service Unavailable"
        ms = round(latency * 1000)
        if line:
            self._log(app, m, f"{line} ({method} {path})", level="error", t=at)
        if slow and ms >= 1000 and rng.random() < 0.5:
            self._log(app, m, f"WARN slow request {method} {path} took {ms} ms", level="warn",
                      t=at)
        if log_all or (not line and rng.random() < LOG_SAMPLE_OK):
            self._log(app, m, f"{method} {path} {status} {ms}ms",
                      level="info" if status < 500 else "error", t=at)
        return status, latency, body

    def no_machine(self, app: SimApp, waited: float) -> None:
        """A request no machine could take: the edge answers 503 (and the proxy logs why)."""
        self.record_edge(app, 503, waited + 0.002)
        if self._rng_proxy.random() < 0.2:
            self._log(app, None, "[PR04] could not find a good candidate within 20 attempts at "
                      "load balancing", level="error", provider="proxy")

    def record_edge(self, app: SimApp, status: int, latency: float) -> None:
        """Count one response at Fly's edge (status code and latency histogram)."""
        app.responses[str(status)] += 1
        app.buckets[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
        app.latency_sum += latency
        app.latency_count += 1

    def _tick(self) -> None:
        self._after(TICK_S, self._tick)
        for app in self.apps.values():
            self._drain_pending(app)
            app.carry += app.spec.traffic_rps * TICK_S
            n = int(app.carry)
            app.carry -= n
            for i in range(n):
                path = BACKGROUND_PATHS[self._rng_traffic.randrange(len(BACKGROUND_PATHS))]
                m = self.route(app)
                if m is not None:
                    arrived = self._now - TICK_S + (i + 1) * TICK_S / n
                    status, latency, _ = self.serve(app, m, path, log_all=False, at=arrived)
                    self.record_edge(app, status, latency)
                elif self._booting(app):
                    app.pending.append(self._now)
                else:
                    self.no_machine(app, 0.0)

    def _drain_pending(self, app: SimApp) -> None:
        if not app.pending:
            return
        keep: list[float] = []
        for arrived in app.pending:
            waited = self._now - arrived
            m = self.route(app)
            if m is not None:
                status, latency, _ = self.serve(app, m, BACKGROUND_PATHS[0], log_all=False)
                self.record_edge(app, status, waited + latency)
            elif waited >= PROXY_WAIT_S or not self._booting(app):
                self.no_machine(app, waited)
            else:
                keep.append(arrived)
        app.pending = keep

    def _autostop_check(self, app: SimApp) -> None:
        self._after(AUTOSTOP_PERIOD_S, self._autostop_check, app)
        started = [m for m in app.machines if m.state == "started"]
        counts = {m.id: m.period_requests for m in app.machines}
        for m in app.machines:
            m.period_requests = 0
        eligible = [m for m in started if m.service().get("autostop")]
        if not eligible or self._app_faults(app.name, "autostop_broken"):
            return
        min_running = int(eligible[0].service().get("min_machines_running") or 0)
        if len(started) <= min_running:
            return
        soft = int((eligible[0].service().get("concurrency") or {}).get("soft_limit") or 200)
        mean_latency = app.latency_sum / app.latency_count if app.latency_count else 0.05
        load = sum(counts.values()) * mean_latency / AUTOSTOP_PERIOD_S
        if load > (len(started) - 1) * soft:
            return
        pick = min(eligible, key=lambda m: (counts.get(m.id, 0), -m.index))
        self._log(app, pick, f"App {app.name} has excess capacity, autostopping machine "
                  f"{pick.id}. {len(started) - 1} out of {len(started)} machines left running "
                  f"(region={pick.region}, process group=app)", provider="proxy")
        self._begin_stop(pick, "autostop")

    # --------------------------------------------------------------- logs

    def _log(self, app: SimApp | None, m: SimMachine | None, message: str, *,
             level: str = "info", provider: str = "app", t: float | None = None) -> None:
        if app is None:
            return
        at = self._now if t is None else t
        if app.logs and at <= app.logs[-1].t:
            # Strictly increasing (by 1 µs, the cursor's resolution): a page of lines that all
            # shared one time would give a next_token that never moves past them.
            at = app.logs[-1].t + 1e-6
        ts = self.ts(at)
        line = LogLine(at, epoch_ns(ts), self._log_ids.ulid(ts), message, level,
                       m.id if m else "", m.region if m else app.spec.region, provider)
        app.logs.append(line)
        app.log_ns.append(line.ns)
        if len(app.logs) > MAX_LOG_LINES:
            drop = len(app.logs) - MAX_LOG_LINES // 2
            del app.logs[:drop]
            del app.log_ns[:drop]

    def _log_runner(self, m: SimMachine, message: str) -> None:
        self._log(self.apps.get(m.app), m, message, provider="runner")

    def logs_page(self, app_name: str, next_token: str | None, instance: str | None,
                  region: str | None) -> dict[str, Any]:
        """One page of the logs polling API (tests/fixtures/logs-page.json has the shape)."""
        app = self.app(app_name)
        if next_token:
            try:
                start_ns = int(next_token)
            except ValueError:
                raise ApiError(400, f"invalid next_token: {next_token!r}") from None
            i = bisect.bisect_left(app.log_ns, start_ns)
            lines = _filtered(app.logs[i:], instance, region, limit=100, from_end=False)
        else:
            cutoff = epoch_ns(self.ts(self._now - DAY_S))
            i = bisect.bisect_left(app.log_ns, cutoff)
            lines = _filtered(app.logs[i:], instance, region, limit=100, from_end=True)
        data = [{
            "id": line.id,
            "attributes": {
                "timestamp": rfc3339(line.ns / 1e9, 6),
                "message": line.message,
                "level": line.level,
                "instance": line.instance,
                "region": line.region,
                "meta": {"instance": line.instance, "region": line.region,
                         "event": {"provider": line.provider}},
            },
        } for line in lines]
        token = str(lines[-1].ns) if lines else (next_token or "")
        return {"data": data, "meta": {"next_token": token}}

    # ------------------------------------------------------------- metrics

    def metrics_text(self) -> str:
        """Fly's edge and instance series in the Prometheus text exposition format."""
        out = [
            "# HELP fly_edge_http_responses_count HTTP responses sent at Fly's edge, by status.",
            "# TYPE fly_edge_http_responses_count counter",
        ]
        for app in self.apps.values():
            counts = Counter({"200": 0, "500": 0, "502": 0, "503": 0})
            counts.update(app.responses)
            for status in sorted(counts):
                out.append(f'fly_edge_http_responses_count{{app="{app.name}",'
                           f'status="{status}"}} {counts[status]}')
        out += ["# HELP fly_edge_http_response_time_seconds Response time at Fly's edge.",
                "# TYPE fly_edge_http_response_time_seconds histogram"]
        for app in self.apps.values():
            cumulative = 0
            for le, n in zip((*LATENCY_BUCKETS, math.inf), app.buckets, strict=True):
                cumulative += n
                label = "+Inf" if le == math.inf else f"{le:g}"
                out.append(f'fly_edge_http_response_time_seconds_bucket{{app="{app.name}",'
                           f'le="{label}"}} {cumulative}')
            out.append(f'fly_edge_http_response_time_seconds_sum{{app="{app.name}"}} '
                       f"{app.latency_sum:.6f}")
            out.append(f'fly_edge_http_response_time_seconds_count{{app="{app.name}"}} '
                       f"{app.latency_count}")
        out += ["# HELP fly_instance_up Whether the instance is running (1) or not (0).",
                "# TYPE fly_instance_up gauge"]
        for app in self.apps.values():
            for m in app.machines:
                up = int(m.state == "started" and m.app_up)
                out.append(f'fly_instance_up{{app="{app.name}",instance="{m.id}"}} {up}')
        out += ["# HELP fly_instance_exit_oom Whether the instance's last exit was an OOM kill.",
                "# TYPE fly_instance_exit_oom gauge"]
        for app in self.apps.values():
            for m in app.machines:
                out.append(f'fly_instance_exit_oom{{app="{app.name}",instance="{m.id}"}} '
                           f"{int(m.last_exit_oom)}")
        return "\n".join(out) + "\n"

    # --------------------------------------------------------- Machines API

    def record_mutation(self, app: str, machine: str, call: str, status: int) -> None:
        """Remember one Machines API mutation the simulator received, and its answer."""
        self.mutations.append({"at_s": round(self._now, 3), "app": app, "machine": machine,
                               "call": call, "status": status})

    def rate_limit(self, m: SimMachine, action: str, *, read: bool = False) -> None:
        """Fly's per-machine, per-action rate limit; ``ApiError(429)`` with Retry-After."""
        rate, burst = GET_RATE if read else MUTATION_RATE
        bucket = m.buckets.get(action)
        if bucket is None:
            bucket = m.buckets[action] = _Bucket(rate, burst, burst, self._now)
        wait = bucket.take(self._now)
        if wait is not None:
            raise ApiError(429, f"rate limit exceeded for {action} on machine {m.id}, "
                           "try again later", {"Retry-After": str(max(1, math.ceil(wait)))})

    def _live_lease(self, m: SimMachine) -> Lease | None:
        if m.lease is not None and m.lease.expires_s <= self._now:
            m.lease = None
        return m.lease

    def check_lease(self, m: SimMachine, nonce: str | None) -> None:
        """A write to a leased machine needs the lease's nonce; ``ApiError(409)`` otherwise."""
        lease = self._live_lease(m)
        if lease is not None and nonce != lease.nonce:
            raise ApiError(409, f"aborted: machine ID {m.id} lease currently held by "
                           f"{lease.owner}, expires at {rfc3339(self.ts(lease.expires_s))}")

    def list_machines(self, app: str, *, states: set[str] | None = None,
                      region: str | None = None, summary: bool = False,
                      include_leases: bool = False,
                      metadata: dict[str, str] | None = None) -> list[dict[str, Any]]:
        out = []
        for m in self.app(app).machines:
            if states and m.state not in states:
                continue
            if region and m.region != region:
                continue
            meta = m.config.get("metadata") or {}
            if metadata and any(meta.get(k) != v for k, v in metadata.items()):
                continue
            out.append(self.machine_json(m, summary=summary, include_lease=include_leases))
        return out

    def start(self, m: SimMachine) -> dict[str, Any]:
        previous = m.state
        if m.state in ("stopped", "suspended", "created", "failed"):
            self._begin_start(m, "api")
        elif m.state not in ("started", "starting"):
            raise ApiError(412, f"unable to start machine from current state: {m.state}")
        return {"previous_state": previous, "migrated": False, "new_host": ""}

    def stop(self, m: SimMachine, body: dict[str, Any] | None) -> dict[str, Any]:
        body = body or {}
        signal = body.get("signal")
        if signal is not None and signal not in SIGNALS and signal not in (9, 15, 2):
            raise ApiError(400, f"invalid signal: {signal!r}")
        timeout = body.get("timeout")
        if timeout is not None and not _is_duration(timeout):
            raise ApiError(400, f"invalid timeout: {timeout!r} (a duration such as \"10s\")")
        if m.state in ("stopped", "suspended", "created"):
            raise ApiError(409, "unable to stop machine, not currently started")
        if m.state == "stopping":
            return {"ok": True}
        if m.state not in ("started", "starting", "failed"):
            raise ApiError(412, f"unable to stop machine from current state: {m.state}")
        self._begin_stop(m, "api")
        return {"ok": True}

    def restart(self, m: SimMachine, signal: str | None) -> dict[str, Any]:
        if signal and signal not in SIGNALS:
            raise ApiError(400, f"invalid signal: {signal!r}")
        if m.state != "started":
            raise ApiError(409, "unable to restart machine, not currently started")
        self._begin_restart(m)
        return {"ok": True}

    def update(self, m: SimMachine, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            raise ApiError(400, "invalid request: config is required (the full machine config; "
                           "partial updates are not supported)")
        cfg = copy.deepcopy(body["config"])
        image = cfg.get("image")
        if not isinstance(image, str) or not image:
            raise ApiError(400, "invalid config: image is required")
        for key, current in (("name", m.name), ("region", m.region)):
            if body.get(key) not in (None, current):
                raise ApiError(400, f"invalid request: {key} cannot be changed")
        version = body.get("current_version")
        if version not in (None, "") and version != m.instance_id:
            raise ApiError(409, f"machine {m.id} current_version mismatch: the machine is at "
                           f"version {m.instance_id}, not {version}")
        if m.state not in ("started", "stopped", "suspended", "created", "failed"):
            raise ApiError(412, f"unable to update machine from current state: {m.state}")
        _normalize_config(cfg)
        skip_launch = bool(body.get("skip_launch", False))
        m.config = cfg
        launch = not skip_launch or m.state in ("started", "failed")  # running ones reboot
        self._begin_replace(m, launch=launch, cause="update")
        self._check_cures(m, "update")
        return self.machine_json(m)

    def wait_result(self, m: SimMachine, states: set[str], version: str | None
                    ) -> dict[str, Any] | None:
        """The wait endpoint's answer once ``m`` is in one of ``states`` (at ``version``)."""
        if version and version != m.instance_id:
            return None
        wanted = states
        if "settled" in wanted:
            wanted = (wanted - {"settled"}) | set(SETTLED)
        if m.state not in wanted or m.flyd_pending:
            return None
        event = m.events[-1] if m.events else None
        return {"ok": True, "state": m.state, "event_id": event.id if event else "",
                "version": m.instance_id}

    def check_wait_version(self, m: SimMachine, version: str | None) -> None:
        if version and version != m.instance_id:
            if version in m.versions:
                raise ApiError(400, f"machine {m.id} version {version} is currently replaced "
                               f"(current version {m.instance_id})")
            raise ApiError(404, f"machine {m.id} has no version {version}")

    def events(self, m: SimMachine, limit: int) -> list[dict[str, Any]]:
        return [self.event_json(e) for e in reversed(m.events[-limit:])]

    def lease_json(self, lease: Lease) -> dict[str, Any]:
        return {"status": "success", "data": {
            "nonce": lease.nonce, "expires_at": int(self.ts(lease.expires_s)),
            "owner": lease.owner, "description": lease.description, "version": lease.version}}

    def lease_get(self, m: SimMachine) -> dict[str, Any]:
        lease = self._live_lease(m)
        if lease is None:
            raise ApiError(404, f"no lease on machine {m.id}")
        return self.lease_json(lease)

    def lease_acquire(self, m: SimMachine, nonce: str | None, ttl: float,
                      description: str, owner: str = SIM_OWNER) -> dict[str, Any]:
        lease = self._live_lease(m)
        if lease is not None:
            if nonce != lease.nonce:
                raise ApiError(409, f"aborted: machine ID {m.id} lease currently held by "
                               f"{lease.owner}, expires at {rfc3339(self.ts(lease.expires_s))}")
            lease.expires_s = self._now + ttl
            lease.description = description or lease.description
            lease.version = m.instance_id
            return self.lease_json(lease)
        m.lease = Lease(self._ids.hex(12), owner, description, self._now + ttl, m.instance_id)
        return self.lease_json(m.lease)

    def lease_release(self, m: SimMachine, nonce: str | None) -> dict[str, Any]:
        lease = self._live_lease(m)
        if lease is None:
            raise ApiError(404, f"no lease on machine {m.id}")
        if not nonce:
            raise ApiError(400, "fly-machine-lease-nonce header is required to release a lease")
        if nonce != lease.nonce:
            raise ApiError(409, f"aborted: machine ID {m.id} lease currently held by "
                           f"{lease.owner}, expires at {rfc3339(self.ts(lease.expires_s))}")
        m.lease = None
        return {"status": "success"}

    def hold_lease(self, app: str, machine_id: str, owner: str = "deploy@ci",
                   ttl_s: float = 60.0, description: str = "fly deploy") -> str:
        """Lease a machine as someone else would (a running deploy); returns the nonce."""
        self.step_to()
        m = self.machine(app, machine_id)
        m.lease = None
        data = self.lease_acquire(m, None, ttl_s, description, owner=owner)
        return str(data["data"]["nonce"])


def _describe(fault: Fault, targets: list[SimMachine]) -> str:
    """A fault in words for the fault log, e.g. "oom on a, b (need 1024 MB)"."""
    kind = fault.kind
    names = ", ".join(m.name for m in targets)
    if kind in MACHINE_KINDS or (kind == "recover" and fault.machines != "all"):
        where = f"{names} of {fault.app}"
    elif kind == "fly_api_down":
        where = "the Fly API (Machines, GraphQL, logs)"
    else:
        where = fault.app or "every app"
    detail = {
        "oom": f" (need {fault.need_mb} MB)",
        "latency": f" (p95 {fault.p95_ms or 0:g} ms)",
        "errors": f" (rate {fault.rate or 0:g})",
        "bad_release": f" (rate {fault.rate or 0:g})",
        "flap": f" (period {fault.period_s or 0:g} s)",
    }.get(kind, "")
    if fault.until_s is not None:
        detail += f" until {fault.until_s:g} s"
    elif kind == "crash":
        detail += " (a start or restart cures it)"
    return f"{kind} on {where}{detail}"


_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def _is_duration(value: Any) -> bool:
    """A Go duration string ("10s", "1m30s") or a number (fly-go accepts both)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value >= 0
    return isinstance(value, str) and bool(_DURATION.match(value))


def _filtered(lines: Iterable[LogLine], instance: str | None, region: str | None, *,
              limit: int, from_end: bool) -> list[LogLine]:
    sel = [ln for ln in lines
           if (not instance or ln.instance == instance) and (not region or ln.region == region)]
    return sel[-limit:] if from_end else sel[:limit]


def _normalize_config(cfg: dict[str, Any]) -> None:
    """Apply Fly's defaults and checks to an update's config; ``ApiError`` when invalid."""
    guest = cfg.get("guest")
    if guest is None:
        guest = cfg["guest"] = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    if not isinstance(guest, dict):
        raise ApiError(400, "invalid config: guest must be an object")
    kind = guest.setdefault("cpu_kind", "shared")
    cpus = guest.setdefault("cpus", 1)
    mem = guest.setdefault("memory_mb", 256)
    for key, value in (("cpus", cpus), ("memory_mb", mem)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ApiError(400, f"invalid config: guest.{key} must be a positive integer")
    if kind == "shared":
        if cpus not in (1, 2, 4, 6, 8) or mem % 256 or not 256 * cpus <= mem <= 2048 * cpus:
            raise ApiError(422, f"invalid guest: {cpus} shared CPU(s) take memory in multiples "
                           f"of 256 MB between {256 * cpus} and {2048 * cpus} MB (got {mem} MB)")
    elif kind == "performance":
        if cpus not in (1, 2, 4, 8, 16) or mem % 1024 or not 2048 * cpus <= mem <= 8192 * cpus:
            raise ApiError(422, f"invalid guest: {cpus} performance CPU(s) take memory in "
                           f"multiples of 1024 MB between {2048 * cpus} and {8192 * cpus} MB "
                           f"(got {mem} MB)")
    else:
        raise ApiError(400, f"invalid config: guest.cpu_kind {kind!r} is not shared or "
                       "performance")
    for svc in cfg.get("services") or []:
        if isinstance(svc, dict) and "autostop" in svc:
            svc["autostop"] = _autostop_json(svc["autostop"])
