"""The simulated Fly's records, and the view of time every part of the world shares.

Records: an app (``SimApp``: its machines, releases, proxy and edge counters, logs), a machine
(``SimMachine``), a release, a machine event, a check status, a lease, a log line, and
``ApiError``, a Machines API refusal. ``Timeline`` is the world's scenario time and queue of
scheduled changes as its parts use them (``World`` in ``world.py`` holds the one queue).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotdash_watch.sim.spec import AppSpec

__all__ = [
    "LATENCY_BUCKETS",
    "ApiError",
    "Bucket",
    "Check",
    "Event",
    "Lease",
    "LogLine",
    "Release",
    "SimApp",
    "SimMachine",
    "Timeline",
    "app_named",
]

#: Upper bounds of the edge's response-time histogram (seconds); one more bucket is +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0,
                   4.0, 5.0, 7.5, 10.0, 30.0, 60.0)


class Timeline(Protocol):
    """Scenario time and the queue of scheduled changes, as a part of the world uses them.

    A change is a callback run at its own scenario time; ``now`` is the time of the change
    being run (or the time the world was last stepped to).
    """

    @property
    def now(self) -> float: ...

    def ts(self, t: float) -> float:
        """Scenario seconds ``t`` as epoch seconds."""
        ...

    def schedule(self, at: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at scenario time ``at``."""
        ...

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` ``delay`` scenario seconds from now."""
        ...


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
class Bucket:
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
    buckets: dict[str, Bucket] = field(default_factory=dict)
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

    def image_fail_rate(self, image: str) -> float:
        """The fraction of requests ``image`` fails (1.0: it crashes on start)."""
        for rel in self.releases:
            if rel.image == image:
                return rel.fail_rate
        return 0.0  # an image the simulator does not know runs normally


def app_named(apps: Mapping[str, SimApp], name: str) -> SimApp:
    """The app called ``name``; ``ApiError(404)`` when there is none."""
    app = apps.get(name)
    if app is None:
        raise ApiError(404, f"app not found: {name}")
    return app
