"""A machine's event history and health checks: ``MachineEvent``, ``ExitInfo``, ``CheckStatus``.

Events come from ``GET /machines/{id}/events`` and inside each Machine object; an exit event
carries how the process ended (exit code, OOM kill, requested stop). Checks come inside each
Machine object only. Types and statuses are kept as Fly sends them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hotdash_watch.fly.models.payload import (
    PayloadError,
    Time,
    WireModel,
    opt_time,
    parse_time,
    validate,
)

__all__ = [
    "CheckStatus",
    "ExitInfo",
    "MachineEvent",
    "checks_from_wire",
    "event_from_wire",
    "newest_first",
    "parse_events",
]

# Checks Fly adds to machines for its own deployments, not the app's.
_COMPAT_CHECK_PREFIX = "bg_deployments_compat"


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a machine's process ended, from an exit event's ``request.exit_event``."""

    exit_code: int | None
    oom_killed: bool
    requested_stop: bool
    restarting: bool
    exited_at: float | None


@dataclass(frozen=True, slots=True)
class MachineEvent:
    """One entry of a machine's event history; ``timestamp`` in epoch seconds."""

    id: str | None
    type: str
    status: str
    source: str
    timestamp: float
    exit: ExitInfo | None = None
    restart_count: int | None = None


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """A health check's current status; ``updated_at`` is when the status last changed."""

    name: str
    status: str
    output: str
    updated_at: float | None


# --- wire models (private; their class names appear in PayloadError messages) -------------------
# ``_Event`` and ``_Check`` are also fields of the Machine object (``models.machines``).


class _ExitEvent(WireModel):
    exit_code: int | None = None
    oom_killed: bool | None = None
    requested_stop: bool | None = None
    restarting: bool | None = None
    exited_at: Time | None = None


class _MonitorEvent(WireModel):
    exit_event: _ExitEvent | None = None
    restart_count: int | None = None


class _EventRequest(WireModel):
    exit_event: _ExitEvent | None = None
    MonitorEvent: _MonitorEvent | None = None
    restart_count: int | None = None


class _Event(WireModel):
    id: str | None = None
    type: str = ""
    status: str = ""
    source: str = ""
    timestamp: Time
    # Typed as an opaque object in the spec: only the exit fields are read from it.
    request: dict[str, Any] | None = None


class _Check(WireModel):
    name: str = ""
    status: str = ""
    output: str | None = ""
    updated_at: Time | None = None


# --- parsing --------------------------------------------------------------------------------------


def _exit_info(ev: _ExitEvent) -> ExitInfo:
    return ExitInfo(
        exit_code=ev.exit_code,
        oom_killed=bool(ev.oom_killed),
        requested_stop=bool(ev.requested_stop),
        restarting=bool(ev.restarting),
        exited_at=opt_time(ev.exited_at),
    )


def event_from_wire(w: _Event) -> MachineEvent:
    """A ``MachineEvent`` from one event object, reading the exit details Fly nests in it."""
    exit_info: ExitInfo | None = None
    restart_count: int | None = None
    if w.request:
        req = validate(_EventRequest, w.request, "event request")
        monitor = req.MonitorEvent
        # fly-go looks at request.MonitorEvent.exit_event first, then request.exit_event.
        exit_event = (monitor.exit_event if monitor else None) or req.exit_event
        if exit_event is not None:
            exit_info = _exit_info(exit_event)
        restart_count = req.restart_count
        if restart_count is None and monitor is not None:
            restart_count = monitor.restart_count
    try:
        timestamp = parse_time(w.timestamp)
    except ValueError as exc:
        raise PayloadError(f"invalid event timestamp {str(w.timestamp)[:40]!r}") from exc
    return MachineEvent(
        id=w.id or None,
        type=w.type,
        status=w.status,
        source=w.source,
        timestamp=timestamp,
        exit=exit_info,
        restart_count=restart_count,
    )


def newest_first(events: Iterable[MachineEvent]) -> tuple[MachineEvent, ...]:
    """``events`` sorted newest first."""
    # The API sends them newest first already; sort (stably) in case it does not.
    return tuple(sorted(events, key=lambda e: e.timestamp, reverse=True))


def checks_from_wire(checks: Iterable[_Check]) -> tuple[CheckStatus, ...]:
    """The statuses of a machine's ``checks``, without the checks Fly adds for its own use."""
    return tuple(
        CheckStatus(
            name=c.name,
            status=c.status,
            output=c.output or "",
            updated_at=opt_time(c.updated_at),
        )
        for c in checks
        if not c.name.startswith(_COMPAT_CHECK_PREFIX)
    )


def parse_events(data: Any) -> list[MachineEvent]:
    """The events of a ``GET /machines/{id}/events`` array, newest first."""
    if not isinstance(data, list):
        raise PayloadError("unexpected event list JSON: not an array")
    return list(newest_first(event_from_wire(validate(_Event, item, "event")) for item in data))
