"""The machines probe: the Machines API's view of an app, turned into facts the classifier reads.

One poll lists the app's machines (an empty list is read twice before it is believed, inside the
client). ``machine_facts`` is pure: it counts machines that should serve but do not (a machine
Fly's autostop stopped on purpose is idle, not down; a standby is neither), and remembers every
exit event it has seen, so OOM kills and Fly's own restarts are counted over the window even
though each machine only carries its few newest events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient, FlyError, Machine

__all__ = ["ExitLedger", "MachineFacts", "MachinesProbe", "MachinesReport", "machine_facts"]

log = structlog.get_logger("hotdash_watch.probes.machines")

SERVING = "started"
TRANSIENT = frozenset({"starting", "restarting", "replacing", "updating", "stopping",
                       "creating", "suspending"})


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What the Machines API says about one app at one instant.

    ``down`` counts machines that should serve but are not started with passing checks; machines
    Fly's autostop stopped (idle) are in ``idle_stopped`` and not down. ``oom_kills`` and
    ``fly_restarts`` count exit events inside the window.
    """

    at: float
    total: int
    started_healthy: int
    down: int
    idle_stopped: int = 0
    oom_kills: int = 0
    fly_restarts: int = 0
    autostop: bool = False
    autostart: bool = True
    min_running: int = 0
    started_since: float | None = None  # since when every started machine has been up
    down_ids: tuple[str, ...] = ()
    unhealthy_ids: tuple[str, ...] = ()  # started, but their own checks are critical
    states: tuple[tuple[str, str], ...] = ()
    images: tuple[str, ...] = ()
    autoscaling_problem: str | None = None

    def as_evidence(self) -> dict[str, object]:
        return {
            "total": self.total, "started_healthy": self.started_healthy, "down": self.down,
            "idle_stopped": self.idle_stopped, "oom_kills": self.oom_kills,
            "fly_restarts": self.fly_restarts, "down_ids": list(self.down_ids),
            "unhealthy_ids": list(self.unhealthy_ids),
            "states": {m: s for m, s in self.states},
        }


@dataclass
class ExitLedger:
    """Exit events seen per app, kept for ``span_s`` (dedup by machine and event)."""

    span_s: float
    keep_s: float = 0.0  # kept this long (>= span_s) for the restart budget's window
    _seen: dict[tuple[str, str], tuple[float, bool, bool]] = field(default_factory=dict)

    @property
    def _keep(self) -> float:
        return max(self.span_s, self.keep_s)

    def record(self, machines: Iterable[Machine], now: float) -> list[tuple[str, float, bool]]:
        """Remember the exits carried by ``machines``; return the new ones (id, at, oom)."""
        new = []
        for m in machines:
            for e in m.events:
                if e.type != "exit" or e.exit is None:
                    continue
                key = (m.id, e.id or f"{e.timestamp:.3f}")
                if key in self._seen or e.timestamp < now - self._keep:
                    continue
                oom = e.exit.oom_killed or e.exit.exit_code == 137
                fly_restart = e.exit.restarting and not e.exit.requested_stop
                self._seen[key] = (e.timestamp, oom, fly_restart)
                new.append((m.id, e.timestamp, oom))
        for key in [k for k, (at, _, _) in self._seen.items() if at < now - self._keep]:
            del self._seen[key]
        return new

    def per_machine(self, now: float, over_s: float) -> dict[str, tuple[int, int, float]]:
        """Machine id -> (OOM kills, Fly supervisor restarts, last OOM kill's time or 0) over
        the last ``over_s``."""
        out: dict[str, tuple[int, int, float]] = {}
        for (mid, _), (at, oom, restart) in self._seen.items():
            if at >= now - over_s:
                o, r, last = out.get(mid, (0, 0, 0.0))
                out[mid] = (o + int(oom), r + int(restart), max(last, at) if oom else last)
        return out

    def counts(self, now: float) -> tuple[int, int]:
        """(OOM kills, Fly supervisor restarts) inside the span."""
        live = [v for v in self._seen.values() if v[0] >= now - self.span_s]
        return sum(1 for v in live if v[1]), sum(1 for v in live if v[2])


def _service(m: Machine) -> dict[str, object]:
    services = m.config.get("services") if m.config else None
    return dict(services[0]) if services else {}


def _failing_for(m: Machine, now: float) -> float:
    """How long the machine's failing checks have been failing (0 when unknown)."""
    since = [c.updated_at for c in m.checks if c.status != "passing" and c.updated_at]
    return now - max(since) if since else 0.0


def machine_facts(machines: Sequence[Machine], ledger: ExitLedger, now: float,
                  up_since: dict[str, float], *, check_grace_s: float = 0.0,
                  changing_since: dict[str, tuple[str, float]] | None = None) -> MachineFacts:
    """Facts of one poll. ``up_since`` (machine -> first seen started) is updated in place.

    A started machine whose checks turned critical less than ``check_grace_s`` ago still counts
    as healthy: one flapping check is not an outage (a stopped or failed machine counts at once).
    A machine in a transient state (starting, stopping, replacing...) is changing, not down,
    for ``check_grace_s`` after it was first seen in that state (``changing_since``, updated in
    place); stuck there longer, it is down.
    """
    serving = [m for m in machines if not m.is_standby]
    changing_since = {} if changing_since is None else changing_since
    for mid in [k for k, (state, _) in changing_since.items()
                if not any(m.id == k and m.state == state for m in serving)]:
        del changing_since[mid]
    healthy, down, idle, unhealthy = [], [], [], []
    for m in serving:
        if m.state in TRANSIENT:
            _, since = changing_since.setdefault(m.id, (m.state, now))
            if now - since < check_grace_s:
                continue  # in flux: neither serving nor down yet
            down.append(m.id)
        elif m.state == SERVING and (m.checks_passing is not False
                                     or _failing_for(m, now) < check_grace_s):
            healthy.append(m.id)
        elif m.state == SERVING:
            unhealthy.append(m.id)
            down.append(m.id)
        elif m.autostopped:
            idle.append(m.id)
        else:
            down.append(m.id)  # stopped after a crash, failed, or in a transient state
    for mid in list(up_since):
        if mid not in healthy and mid not in unhealthy:
            del up_since[mid]
    for mid in healthy + unhealthy:
        up_since.setdefault(mid, now)
    oom, restarts = ledger.counts(now)
    svc = _service(serving[0]) if serving else {}
    autostop = bool(serving[0].autostop) if serving else False
    return MachineFacts(
        at=now, total=len(serving), started_healthy=len(healthy), down=len(down),
        idle_stopped=len(idle), oom_kills=oom, fly_restarts=restarts, autostop=autostop,
        autostart=bool(serving[0].autostart) if serving and serving[0].autostart is not None
        else True,
        min_running=int(svc.get("min_machines_running") or 0),  # type: ignore[call-overload]
        started_since=max(up_since.values()) if up_since else None,
        down_ids=tuple(down), unhealthy_ids=tuple(unhealthy),
        states=tuple((m.id, m.state) for m in serving),
        images=tuple(sorted({m.image for m in serving if m.image})),
    )


@dataclass(frozen=True, slots=True)
class MachinesReport:
    """One poll: the machines and their facts, or why Fly could not be read."""

    app: str
    at: float
    facts: MachineFacts | None
    machines: tuple[Machine, ...] = ()
    new_exits: tuple[tuple[str, float, bool], ...] = ()
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


class MachinesProbe:
    """Polls the Machines API for one app."""

    kind = "machines"

    def __init__(self, app: str, client: FlyClient, clock: Clock, *, span_s: float,
                 check_grace_s: float = 0.0, keep_s: float = 0.0) -> None:
        self.app = app
        self.name = "machines"
        self.client = client
        self.clock = clock
        self.ledger = ExitLedger(span_s, keep_s)
        self.check_grace_s = check_grace_s
        self._up_since: dict[str, float] = {}
        self._changing: dict[str, tuple[str, float]] = {}

    async def run(self) -> MachinesReport:
        try:
            machines = await self.client.list_machines(self.app)
        except FlyError as e:
            return MachinesReport(self.app, self.clock.timestamp(), None,
                                  error=f"{type(e).__name__}: {e}")
        now = self.clock.timestamp()
        new = self.ledger.record(machines, now)
        facts = machine_facts(machines, self.ledger, now, self._up_since,
                              check_grace_s=self.check_grace_s, changing_since=self._changing)
        return MachinesReport(self.app, now, facts, tuple(machines), tuple(new))
