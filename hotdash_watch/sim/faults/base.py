"""What every fault kind shares: the ``FaultKind`` protocol, the ``ActiveFault`` base class each
kind's class extends, and the ``FaultContext`` a fired fault acts through.

A kind's class says what a scenario may write for it (``fields``, ``required``, ``app_rule``) and
what a fired fault of the kind does to the world: ``fire`` when its time comes, then the hooks
the world's parts call on every active fault (a boot, a check, a request, an update, autostop, the
Fly API and the public URLs). ``ActiveFault`` answers each hook with "no effect", so a kind
overrides only what it changes. Every fired fault ends (``until_s``, a ``recover``) or is cured
(by what the daemon did); ``fault_log`` records each firing, end and cure.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from hotdash_watch.sim.flyd import Flyd, Health
from hotdash_watch.sim.ids import IdSource
from hotdash_watch.sim.logs import Logs
from hotdash_watch.sim.model import SimApp, SimMachine, Timeline
from hotdash_watch.sim.proxy import Answer, Stage
from hotdash_watch.sim.spec import Fault

__all__ = ["ActiveFault", "AppRule", "FaultContext", "FaultKind", "Outage", "cure_when_booted"]

#: Whether a fault of the kind names an app: required (may be left out when the scenario has
#: one app), optional (left out: every app) or forbidden (platform-wide).
AppRule = Literal["required", "optional", "forbidden"]


@dataclass
class FaultContext:
    """The world as a fired fault sees it: its parts, and a log of what faults did."""

    timeline: Timeline
    apps: Mapping[str, SimApp]
    flyd: Flyd
    logs: Logs
    ids: IdSource
    seed: int
    faults: list[ActiveFault]  # every fault fired so far, in firing order
    fault_log: list[dict[str, Any]]
    listeners: list[Callable[[dict[str, Any]], None]]
    _randoms: dict[str, random.Random] = field(default_factory=dict, repr=False)
    _counters: dict[str, Iterator[int]] = field(default_factory=dict, repr=False)

    def random(self, stream: str) -> random.Random:
        """The world's random stream ``stream`` (seeded by the scenario's seed and the name)."""
        rng = self._randoms.get(stream)
        if rng is None:
            rng = self._randoms[stream] = random.Random(f"{self.seed}:{stream}")
        return rng

    def count(self, name: str) -> int:
        """The next number (0, 1, 2, …) of the world's counter ``name``."""
        counter = self._counters.setdefault(name, itertools.count())
        return next(counter)


class Outage(Protocol):
    """How a fault makes requests fail: per request, hang or fail at once."""

    def hangs(self) -> bool: ...


@runtime_checkable
class FaultKind(Protocol):
    """One fault kind: what a scenario may write for it, and what a fired one does."""

    kind: ClassVar[str]
    fields: ClassVar[frozenset[str]]  # scenario keys it takes besides at_s, kind and app
    required: ClassVar[str | None]  # the one key it cannot do without
    app_rule: ClassVar[AppRule]
    per_machine: ClassVar[bool]  # it affects machines (targets), not the app as a whole
    degrades: ClassVar[bool]  # the app is not healthy while it is active

    fault: Fault
    started_s: float
    state: str  # active | ended | cured
    targets: set[str]  # the machine ids it still affects

    @property
    def active(self) -> bool: ...

    def fire(self, targets: list[SimMachine]) -> None:
        """It fires now on ``targets`` (the machines its ``machines`` names)."""
        ...

    def end(self, how: str) -> None: ...

    def recovered(self, by: Fault, machines: set[str] | None) -> None:
        """A ``recover`` fault ``by`` fired (on ``machines``; ``None``: all of them)."""
        ...

    # flyd
    def booted(self, m: SimMachine, cause: str) -> None: ...
    def listening(self, m: SimMachine) -> None: ...
    def health(self, m: SimMachine, check: str) -> Health | None: ...

    # the proxy
    def slow_p95_ms(self, m: SimMachine) -> float | None: ...
    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None: ...
    def holds_autostop(self, app: str) -> bool: ...

    # the Machines API
    def updated(self, m: SimMachine, cause: str) -> None: ...

    # the Fly API and the watcher's view of the apps' public URLs
    def api_outage(self) -> Outage | None: ...
    def url_outage(self, app: str) -> Outage | None: ...


@dataclass(eq=False)
class ActiveFault:
    """A fault that has fired, of no effect until a kind's class says otherwise."""

    kind: ClassVar[str] = ""
    fields: ClassVar[frozenset[str]] = frozenset()
    required: ClassVar[str | None] = None
    app_rule: ClassVar[AppRule] = "required"
    per_machine: ClassVar[bool] = False
    degrades: ClassVar[bool] = False

    ctx: FaultContext = field(repr=False)
    uid: int
    fault: Fault
    started_s: float
    state: str = "active"
    targets: set[str] = field(default_factory=set)

    @property
    def active(self) -> bool:
        return self.state == "active"

    # ------------------------------------------------------- its course

    def fire(self, targets: list[SimMachine]) -> None:
        self.record("fired", self.describe(targets))

    def describe(self, targets: list[SimMachine]) -> str:
        """The fault in words for the fault log, e.g. "oom on a, b of app (need 1024 MB)"."""
        return f"{self.kind} on {self.where(targets)}{self.detail()}{self.duration()}"

    def where(self, targets: list[SimMachine]) -> str:
        if self.per_machine:
            return f"{', '.join(m.name for m in targets)} of {self.fault.app}"
        return self.fault.app or "every app"

    def detail(self) -> str:
        return ""

    def duration(self) -> str:
        until = self.fault.until_s
        return f" until {until:g} s" if until is not None else ""

    def record(self, event: str, how: str) -> None:
        entry = {"at_s": round(self.ctx.timeline.now, 3), "kind": self.kind,
                 "app": self.fault.app, "event": event, "how": how}
        self.ctx.fault_log.append(entry)
        for listener in self.ctx.listeners:
            listener(entry)

    def end(self, how: str) -> None:
        """It stops (``until_s`` reached, or a ``recover``)."""
        if not self.active:
            return
        self.state = "ended"
        self.record("ended", how)

    def cure(self, how: str) -> None:
        """What was done about it cured it."""
        if not self.active:
            return
        self.state = "cured"
        self.record("cured", how)

    def first_of_kind(self, holds: Callable[[Self], bool]) -> bool:
        """Whether this is the earliest-fired active fault of its kind for which ``holds`` is
        true (so that overlapping faults of one kind act once)."""
        for af in self.ctx.faults:
            if type(af) is type(self) and af.active and holds(af):
                return af is self
        return False

    def recovered(self, by: Fault, machines: set[str] | None) -> None:
        if by.app is not None and self.fault.app != by.app:
            return
        if machines is not None:
            if not self.per_machine:
                return
            self.targets -= machines
            if self.targets:
                return
        self.end("recover")

    # ------------------------------------------- hooks: no effect by default

    def booted(self, m: SimMachine, cause: str) -> None:
        return None

    def listening(self, m: SimMachine) -> None:
        return None

    def health(self, m: SimMachine, check: str) -> Health | None:
        return None

    def slow_p95_ms(self, m: SimMachine) -> float | None:
        return None

    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None:
        return None

    def holds_autostop(self, app: str) -> bool:
        return False

    def updated(self, m: SimMachine, cause: str) -> None:
        return None

    def api_outage(self) -> Outage | None:
        return None

    def url_outage(self, app: str) -> Outage | None:
        return None


def cure_when_booted(af: ActiveFault, m: SimMachine, cause: str) -> None:
    """For a fault without ``until_s`` that a new boot cures: ``m`` booted again, so the
    fault lets go of it; cured once every affected machine has been booted."""
    if af.fault.until_s is not None or m.id not in af.targets:
        return
    af.targets.discard(m.id)
    if not af.targets:
        af.cure(f"every affected machine was booted again ({cause} of {m.name} last)")
