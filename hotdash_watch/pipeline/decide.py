"""One app at one instant, decided without I/O: snapshot -> classify -> debounce -> incident.

``view_of`` reads what a pass needs from the app's state into an ``AppView``: a snapshot of the
windows, the fresh machine facts, edge traffic, Fly's reachability, log and release context,
inbound signals, the steady level and the open incident. ``decide`` turns a view into a
``Decision``: the assessment, the new steady level and the incident's transition. Replaying
recorded history is calling ``decide`` on views built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hotdash_watch.classify import Assessment, Hold, classify, debounce
from hotdash_watch.incidents import Transition, advance
from hotdash_watch.model.findings import Signal
from hotdash_watch.model.incident import Event, Incident
from hotdash_watch.model.severity import Severity
from hotdash_watch.probes.machines import MachineFacts
from hotdash_watch.probes.prometheus import TrafficFacts
from hotdash_watch.window import Snapshot

if TYPE_CHECKING:
    from hotdash_watch.config import Settings
    from hotdash_watch.pipeline.state import AppState

__all__ = ["AppView", "Decision", "decide", "view_of"]


@dataclass(frozen=True)
class AppView:
    """Everything ``decide`` reads about one app at ``now``."""

    app: str
    now: float
    snapshot: Snapshot
    verify_snapshot: Snapshot
    hold: Hold
    incident: Incident | None
    floor: Severity | None = None
    signals: tuple[Signal, ...] = ()
    machines: MachineFacts | None = None
    traffic: TrafficFacts | None = None
    fly_reachable: bool | None = None
    context: dict[str, Any] | None = None
    taken_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    """What one evaluation concluded: the assessment, the steady level, the transition."""

    view: AppView
    assessment: Assessment
    hold: Hold
    step: Transition

    @property
    def opens(self) -> Incident | None:
        """The incident this decision opens, if it opens one."""
        s = self.step
        if s.incident is not None and s.entries and s.entries[0].event is Event.OPENED:
            return s.incident
        return None

    @property
    def floor(self) -> Severity | None:
        """The escalation floor after this decision: gone with a new or a closed incident."""
        inc = self.step.incident
        if self.opens is not None or (inc is not None and not inc.is_open):
            return None
        return self.view.floor


def decide(view: AppView, settings: Settings) -> Decision:
    """Classify, debounce and advance the incident of one app at ``view.now``. Pure."""
    now = view.now
    assessment = classify(view.snapshot, settings.thresholds, now, signals=view.signals,
                          machines=view.machines, traffic=view.traffic,
                          fly_reachable=view.fly_reachable, context=view.context)
    hold = debounce(view.hold, assessment, settings.hysteresis)
    level = hold.level
    if level is not None and view.floor is not None and view.incident is not None:
        level = Severity.worst(level, view.floor)  # an escalation holds while signals do
    step = advance(view.incident, level, assessment, view.verify_snapshot, settings, now,
                   taken_ids=view.taken_ids)
    return Decision(view, assessment, hold, step)


def taken(view: AppView, incident_id: str) -> AppView:
    """The same view with one more incident ID known to be in use (the store has it)."""
    return replace(view, taken_ids=view.taken_ids | {incident_id})


def view_of(state: AppState, settings: Settings, now: float,
            taken_ids: frozenset[str] = frozenset()) -> AppView:
    """Read one app's state into a view at ``now`` (expired inbound signals are dropped)."""
    w, fly = settings.window, settings.fly
    snap = state.window.snapshot(now, w.eval_s)
    verify = state.window.snapshot(now, min(settings.timers.stabilization_s, w.span_s)
                                   or w.eval_s)
    view = AppView(app=state.name, now=now, snapshot=snap, verify_snapshot=verify,
                   hold=state.hold, incident=state.incident, floor=state.floor,
                   signals=state.live_signals(now), taken_ids=taken_ids)
    traffic = state.traffic.facts(now, w.eval_s)
    if not fly.enabled and not traffic:
        return view
    facts = None
    if state.machines is not None and state.machines.facts is not None:
        age = now - state.machines.facts.at
        if age <= fly.machines_interval_s * fly.stale_after_polls:
            facts = state.machines.facts
    context: dict[str, Any] = {}
    logs = state.logs.summary(now)
    if logs["lines"]:
        context["logs"] = logs
    if state.releases is not None:
        context["release"] = state.releases.as_evidence(now)
    return replace(view, machines=facts, traffic=traffic,
                   fly_reachable=None if not fly.enabled else state.fly_error is None,
                   context=context)
