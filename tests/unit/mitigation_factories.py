"""Builders for the mitigation stage's pure values: machines, releases, records, situations.

Every builder names one runbook fact ("a crashed machine", "a spare"), so a test's table reads
as the situation it describes. Times are epoch seconds around ``NOW``; the incident opened five
minutes before it.
"""

from __future__ import annotations

from typing import Any

from hotdash_watch.config import MitigationSettings, Settings
from hotdash_watch.guards import GuardContext
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.findings import Reason
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import MachineView, ReleaseView, Situation, Step, Why

APP = "svc"
INCIDENT = "inc-1"
NOW = 100_000.0
OPENED = NOW - 300.0
#: The default "a release younger than this is a suspect" (``[fly] recent_release_s``).
RECENT_S = Settings().fly.recent_release_s
#: Every action kind that changes something on Fly.
FLY_KINDS = tuple(k for k in ActionKind if k.touches_fly)


def settings(**overrides: Any) -> MitigationSettings:
    """The default ``[mitigation]`` section with ``overrides``."""
    return MitigationSettings(**overrides)


# -- machines ----------------------------------------------------------------------------------


def healthy(mid: str, **kw: Any) -> MachineView:
    """Started, its checks pass: serving."""
    return MachineView(mid, "started", **{"memory_mb": 512, **kw})


def failing(mid: str, **kw: Any) -> MachineView:
    """Started, but its own checks fail."""
    return MachineView(mid, "started", **{"healthy": False, "down": True, "memory_mb": 512,
                                          **kw})


def crashed(mid: str, state: str = "stopped", **kw: Any) -> MachineView:
    """Stopped after a crash: should be serving, is not."""
    return MachineView(mid, state, **{"healthy": False, "down": True, "memory_mb": 512, **kw})


def idle(mid: str, **kw: Any) -> MachineView:
    """Stopped on purpose by Fly's autostop."""
    return MachineView(mid, "stopped", **{"healthy": False, "idle": True, "memory_mb": 512,
                                          **kw})


def spare(mid: str, **kw: Any) -> MachineView:
    """Stopped, not down and not autostopped: capacity that can be started."""
    return MachineView(mid, "stopped", **{"healthy": False, "memory_mb": 512, **kw})


def standby(mid: str, **kw: Any) -> MachineView:
    """A standby machine: it takes over only when its primary fails."""
    return MachineView(mid, "stopped", **{"healthy": False, "standby": True, "down": True,
                                          "memory_mb": 512, **kw})


# -- releases and records ----------------------------------------------------------------------


def release(version: int, age_at_open_s: float = 600.0, image: str | None = None
            ) -> ReleaseView:
    """Release ``version``, deployed ``age_at_open_s`` before the incident opened."""
    return ReleaseView(version, image or f"registry.fly.io/{APP}:v{version}",
                       OPENED - age_at_open_s)


#: A bad release deployed 10 min before the incident, and the healthy one before it.
BAD = release(7)
GOOD = release(6, age_at_open_s=86_400.0)
#: A release a day old: no suspect.
OLD = release(7, age_at_open_s=86_400.0)


def record(kind: ActionKind, target: str, outcome: Outcome = Outcome.OK, *,
           ago_s: float = 600.0, took_s: float | None = 30.0,
           detail: dict[str, Any] | None = None, incident_id: str | None = INCIDENT
           ) -> ActionRecord:
    """An action started ``ago_s`` before ``NOW`` that took ``took_s`` (None: not ended)."""
    at = NOW - ago_s
    return ActionRecord(id=None, app=APP, incident_id=incident_id, kind=kind, target=target,
                        reason="test", text=f"{kind.value} {target}", outcome=outcome, at=at,
                        ended_at=None if took_s is None else at + took_s,
                        detail=dict(detail or {}))


def crashed_again(mid: str, ago_s: float = 200.0) -> ActionRecord:
    """The watcher started ``mid``; it came back and crashed again."""
    return record(ActionKind.START, mid, Outcome.FAILED, ago_s=ago_s,
                  detail={"crashed_again": True})


def situation(*reasons: Reason, machines: tuple[MachineView, ...] = (),
              severity: Severity = Severity.SEV2, **kw: Any) -> Situation:
    """The open incident of ``APP`` at ``NOW`` with ``reasons``."""
    return Situation(app=APP, now=NOW, severity=severity, reasons=frozenset(reasons),
                     opened_at=OPENED, machines=machines, **kw)


def summary(steps: tuple[Step, ...]) -> list[tuple[ActionKind, str, Why]]:
    """Each step as (kind, target, why): what a table row expects."""
    return [(s.kind, s.target, s.why) for s in steps]


# -- guards ------------------------------------------------------------------------------------


def step(kind: ActionKind, target: str = "m1", **params: Any) -> Step:
    """A planned step of ``kind`` on ``target``."""
    return Step(kind, target, Why.MACHINE_DOWN, f"{kind.value} {target}", params)


def rollback_step(version: int | None = 6, image: str | None = GOOD.image,
                  from_version: int = 7) -> Step:
    """A rollback of the app to ``version``/``image``."""
    params: dict[str, Any] = {"from_version": from_version}
    if version is not None:
        params["version"] = version
    if image is not None:
        params["image"] = image
    return Step(ActionKind.ROLLBACK, APP, Why.ERRORS_AFTER_RELEASE, "roll back", params)


def context(machines: tuple[MachineView, ...] = (), **kw: Any) -> GuardContext:
    """The guards' view at ``NOW``; ``settings`` may be a dict of overrides."""
    cfg = kw.pop("settings", None)
    cfg = settings(**cfg) if isinstance(cfg, dict) else (cfg or settings())
    return GuardContext(now=NOW, settings=cfg, machines=machines, **kw)
