"""What the pipeline keeps per app between passes, and the jobs the scheduler runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hotdash_watch.classify import Assessment, Hold
from hotdash_watch.config.sections import AppSettings
from hotdash_watch.model.findings import Signal
from hotdash_watch.model.incident import Incident
from hotdash_watch.model.severity import Severity
from hotdash_watch.probes.machines import MachinesProbe, MachinesReport
from hotdash_watch.probes.releases import ReleasesReport
from hotdash_watch.window import LogTally, TrafficWindow, Window

__all__ = ["AppState", "Job"]


@dataclass(frozen=True)
class Job:
    """One scheduled piece of work: a probe of one kind for one app (or for all apps)."""

    id: str
    interval_s: float
    run: Callable[[], Awaitable[None]]


@dataclass
class AppState:
    """One app's windows, latest Fly reports and steady level between passes.

    ``incident`` is the open incident as last persisted (the store has the same value; after a
    refused write the pass reloads it from there). ``lock`` orders every write to it.
    """

    settings: AppSettings
    window: Window
    traffic: TrafficWindow
    logs: LogTally
    machines: MachinesReport | None = None
    machines_probe: MachinesProbe | None = None
    releases: ReleasesReport | None = None
    fly_error: str | None = None
    hold: Hold = field(default_factory=Hold)
    incident: Incident | None = None
    last: Assessment | None = None
    last_probe: dict[str, str] = field(default_factory=dict)
    pending_checks: tuple[str, ...] = ()
    signals: dict[str, tuple[Signal, float]] = field(default_factory=dict)  # key -> (s, until)
    floor: Severity | None = None  # set by an escalation the signals alone would not make
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer of the incident

    def live_signals(self, now: float) -> tuple[Signal, ...]:
        """Inbound signals still in force at ``now``; expired ones are forgotten."""
        for key in [k for k, (_, until) in self.signals.items() if until <= now]:
            del self.signals[key]
        return tuple(s for s, _ in self.signals.values())

    @property
    def name(self) -> str:
        return self.settings.name
