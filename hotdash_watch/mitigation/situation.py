"""What the policy reads about one app at one instant, built from what the pipeline keeps.

``AppFacts`` is that input: the latest machines poll, each machine's exit counts (as the
machines probe counted them over its windows), the releases, and the dependencies the logs
name. ``situation`` turns it, with the assessment, the incident and what was already tried,
into the policy's ``Situation``. Nothing here reads a clock, the store or Fly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hotdash_watch import release_health
from hotdash_watch.classify import Assessment
from hotdash_watch.config.sections import MitigationSettings
from hotdash_watch.model.action import ActionKind, ActionRecord
from hotdash_watch.model.incident import Incident
from hotdash_watch.policy import MachineView, ReleaseView, Situation
from hotdash_watch.probes.machines import MachinesReport
from hotdash_watch.probes.releases import ReleasesReport

__all__ = ["AppFacts", "MachineExits", "current_release", "exits_by_machine", "images_left",
           "machine_views", "situation"]


@dataclass(frozen=True, slots=True)
class MachineExits:
    """One machine's exits: restarts Fly's supervisor made in the restart budget's window, and
    OOM kills in the OOM window with the newest one's time."""

    fly_restarts: int = 0
    oom_kills: int = 0
    last_oom_at: float | None = None


NO_EXITS = MachineExits()


@dataclass(frozen=True, slots=True)
class AppFacts:
    """What the mitigation stage reads of one app: the latest machines poll, exits per machine
    id, the releases, and the dependencies the logs name."""

    app: str
    machines: MachinesReport | None = None
    releases: ReleasesReport | None = None
    exits: Mapping[str, MachineExits] = field(default_factory=dict)
    dependency_hints: tuple[str, ...] = ()


def exits_by_machine(budget_window: Mapping[str, tuple[int, int, float]],
                     oom_window: Mapping[str, tuple[int, int, float]]
                     ) -> dict[str, MachineExits]:
    """Exit counts per machine from the probe's two tallies, each machine id -> (OOM kills,
    Fly restarts, last OOM kill's time or 0): restarts from the budget window's, OOM kills
    from the OOM window's."""
    out = {}
    for mid in {*budget_window, *oom_window}:
        restarts = budget_window.get(mid, (0, 0, 0.0))[1]
        ooms, _, last = oom_window.get(mid, (0, 0, 0.0))
        out[mid] = MachineExits(restarts, ooms, last or None)
    return out


def machine_views(report: MachinesReport | None, exits: Mapping[str, MachineExits],
                  now: float, budget_window_s: float) -> tuple[MachineView, ...]:
    """The app's own machines as the policy and the guards see them.

    Fly's restarts are the probe's count, or the restart count the machine's latest exit
    carries when that exit is in the budget window, was not requested and says more.
    """
    if report is None or report.facts is None:
        return ()
    facts = report.facts
    views = []
    for m in report.machines:
        if not m.is_app_machine:
            continue
        counted = exits.get(m.id, NO_EXITS)
        fly = counted.fly_restarts
        latest = m.latest_exit
        if (latest is not None and latest.exit is not None and latest.restart_count
                and not latest.exit.requested_stop
                and latest.timestamp >= now - budget_window_s):
            fly = max(fly, int(latest.restart_count))
        down = m.id in facts.down_ids
        views.append(MachineView(
            id=m.id, state=m.state, healthy=m.state == "started" and not down,
            down=down, idle=m.autostopped and not down, standby=m.is_standby,
            image=m.image, memory_mb=m.memory_mb or 0, cpu_kind=m.cpu_kind or "shared",
            cpus=m.cpus or 1, oom_kills=counted.oom_kills, last_oom_at=counted.last_oom_at,
            fly_restarts=fly))
    return tuple(views)


def current_release(releases: ReleasesReport | None) -> ReleaseView | None:
    """Fly's current release, or None when the releases are not known."""
    if releases is None or releases.current is None:
        return None
    cur = releases.current
    return ReleaseView(cur.version, cur.image_ref or "", cur.created_at)


def images_left(history: Iterable[ActionRecord]) -> frozenset[str]:
    """The images earlier rollbacks in ``history`` went away from."""
    return frozenset(str(a.detail["from_image"]) for a in history
                     if a.kind is ActionKind.ROLLBACK and a.detail.get("from_image"))


def situation(facts: AppFacts, assessment: Assessment, incident: Incident,
              history: Sequence[ActionRecord], now: float, *, cfg: MitigationSettings,
              health: Mapping[str, release_health.ImageHealth], busy: bool) -> Situation:
    """The policy's view of ``incident`` at ``now``; ``history`` is what was already done in
    it, ``health`` the release health record, ``busy`` whether an action runs on the app."""
    current = current_release(facts.releases)
    rollback_to = None if current is None else release_health.rollback_target(
        health, current, left=images_left(history),
        healthy_after_s=cfg.release_healthy_after_s)
    return Situation(
        app=facts.app, now=now, severity=incident.severity,
        reasons=frozenset(f.reason for f in assessment.findings),
        opened_at=incident.opened_at,
        machines=machine_views(facts.machines, facts.exits, now, cfg.budget_window_s),
        current=current, rollback_to=rollback_to, dependency_hints=facts.dependency_hints,
        history=tuple(history), watcher_side=assessment.watcher_side, busy=busy)
