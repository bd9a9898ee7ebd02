"""What a scenario specifies, as values: its apps (``AppSpec``) and its fault timeline
(``Fault``), together a ``Scenario``. ``scenario.py`` reads and validates them from TOML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AppSpec", "Fault", "Machines", "Scenario"]

Machines = Literal["all"] | int | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One simulated Fly app: its machines, their memory, its release history and traffic."""

    name: str
    machines: int = 2
    memory_mb: int = 512
    releases: tuple[str, ...] = ("good", "good")
    region: str = "iad"
    autostop: bool = False
    autostart: bool = True
    min_machines_running: int = 1
    traffic_rps: float = 5.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the timeline (``scenario.py`` lists the fields each kind takes).

    ``app`` is ``None`` only for platform-wide faults (fly_api_down) and for watcher_partition
    and recover meaning every app. ``machines`` is ``"all"``, a count (the first N machines) or
    machine names or ids.
    """

    at_s: float
    kind: str
    app: str | None = None
    machines: Machines = "all"
    until_s: float | None = None
    need_mb: int | None = None
    rate: float | None = None
    p95_ms: float | None = None
    period_s: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A simulated Fly: apps and a fault timeline, in scenario seconds from t=0."""

    name: str
    duration_s: float
    apps: tuple[AppSpec, ...]
    faults: tuple[Fault, ...] = field(default=())
    seed: int = 0

    def app(self, name: str) -> AppSpec:
        for a in self.apps:
            if a.name == name:
                return a
        raise KeyError(name)
