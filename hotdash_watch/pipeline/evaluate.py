"""The evaluation pass: for each app, decide, then apply the decision in a fixed order.

``decide`` (pure, ``pipeline/decide.py``) grades the app and advances its incident. ``apply``
then carries the decision out, always in this order:

1. persist: the incident's transition (a refused write stops here: nothing is acted on or
   paged that the store does not hold) and the sample for the report's chart;
2. page and journal: the responder pages the transitions, writes the journal, starts the
   diagnostics capture or the report, and pages the watcher-side notice;
3. act: the mitigation stage plans, guards and starts at most one action; its records are
   persisted, then paged, as it makes them;
4. metrics and logs.

Paging the transition before acting keeps the order a person reads: "opened" comes before the
first "started" or "vetoed" of the same instant.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import structlog

from hotdash_watch.classify import Hold
from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient
from hotdash_watch.incidents import Transition
from hotdash_watch.metrics import Metrics
from hotdash_watch.model.errors import StoreError
from hotdash_watch.model.incident import Event, Incident, TimelineEntry
from hotdash_watch.pipeline.decide import Decision, decide, taken, view_of
from hotdash_watch.pipeline.intake import FlyProbe, Intake
from hotdash_watch.pipeline.ports import IncidentStore, Mitigation, Responses
from hotdash_watch.pipeline.state import AppState, Job
from hotdash_watch.pipeline.telemetry import report_assessment, report_step
from hotdash_watch.pipeline.timeline import Timeline
from hotdash_watch.probes.base import Probe
from hotdash_watch.probes.machines import MachinesProbe
from hotdash_watch.window import LogTally, TrafficWindow, Window

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = ["Pipeline"]

log = structlog.get_logger("hotdash_watch.pipeline")

T = TypeVar("T")


class Pipeline:
    """Observations in, persisted incidents out. Driven by the scheduler or by tests directly.

    The daemon sets ``responder`` and ``mitigator`` (both optional: a pipeline without them
    only records incidents).
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: IncidentStore,
        metrics: Metrics,
        probes: Sequence[Probe] = (),
        fly_probes: Sequence[FlyProbe] = (),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.metrics = metrics
        self.probes = tuple(probes)
        self.fly_probes = tuple(fly_probes)
        w = settings.window
        self.apps: dict[str, AppState] = {
            a.name: AppState(a, Window(a.name, bucket_s=w.bucket_s, span_s=w.span_s),
                             TrafficWindow(w.span_s), LogTally(w.span_s))
            for a in settings.apps
        }
        for p in self.fly_probes:
            if isinstance(p, MachinesProbe) and p.app in self.apps:
                self.apps[p.app].machines_probe = p
        self.intake = Intake(self.apps, metrics, settings)
        self.timeline = Timeline(self.apps, store, metrics, clock, self.intake)
        self.last_tick: float | None = None
        self.fly_client: FlyClient | None = None  # set by build() when Fly is configured
        self.mitigator: Mitigation | None = None
        metrics.init_apps(self.apps, sorted({p.name for p in self.probes}) or ("health",))

    @property
    def responder(self) -> Responses | None:
        return self.timeline.responder

    @responder.setter
    def responder(self, value: Responses | None) -> None:
        self.timeline.responder = value

    def jobs(self) -> list[Job]:
        """What the scheduler runs: every probe at its interval (seconds of the clock)."""
        s, fly = self.settings, self.settings.fly
        intake = self.intake
        out = [Job(f"probe:{p.app}:{p.name}", s.interval_for(s.app(p.app)),
                   _bound(intake.run_probe, p)) for p in self.probes]
        intervals = {"machines": fly.machines_interval_s, "logs": fly.logs_interval_s,
                     "metrics": fly.metrics_interval_s, "releases": fly.releases_interval_s}
        out += [Job(f"fly:{getattr(p, 'app', 'all')}:{p.kind}", intervals[p.kind],
                    _bound(intake.run_fly_probe, p)) for p in self.fly_probes]
        return out

    # -- start ---------------------------------------------------------------------------------

    async def resume(self) -> list[Incident]:
        """Pick up the incidents left open by a previous run instead of opening new ones."""
        now = self.clock.timestamp()
        resumed = []
        for inc in await self.store.open_incidents():
            state = self.apps.get(inc.app)
            if state is None:
                log.warning("open_incident_of_unwatched_app", app=inc.app, incident_id=inc.id)
                continue
            entry = TimelineEntry(at=now, event=Event.RESUMED, state=inc.state,
                                  severity=inc.severity,
                                  notes=("watcher restarted; incident resumed",))
            inc = dataclasses.replace(inc, updated_at=now)
            await self.store.save_incident(inc, [entry])
            state.incident = dataclasses.replace(inc, timeline=(*inc.timeline, entry))
            state.hold = Hold.at_level(
                None if inc.state.value == "monitoring" else inc.severity,
                self.settings.hysteresis.clear_evals,
            )
            self.metrics.set_severity(inc.app, inc.severity)
            self.metrics.transitions.labels(inc.app, Event.RESUMED.value).inc()
            log.info("incident_resumed", app=inc.app, incident_id=inc.id,
                     severity=inc.severity.value, state=inc.state.value)
            resumed.append(inc)
        return resumed

    # -- the pass ------------------------------------------------------------------------------

    async def evaluate(self) -> list[Transition]:
        """One pass over every app at one instant. Returns the steps that changed something."""
        now = self.clock.timestamp()
        self.metrics.evaluations.inc()
        steps = []
        for state in self.apps.values():
            with structlog.contextvars.bound_contextvars(app=state.name):
                try:
                    step = await self._pass_app(state, now)
                except Exception:  # a bug in one app's pass must not blind the watcher
                    log.exception("evaluation_failed")
                    continue
            if step is not None and step.changed:
                steps.append(step)
        if self.responder is not None:
            await self.responder.tick(
                [s.incident for s in self.apps.values() if s.incident is not None], now)
        self.last_tick = now
        self.metrics.last_tick.set(now)
        open_now = [s.incident.id for s in self.apps.values() if s.incident]
        log.debug("evaluation_pass", apps=len(self.apps), open_incidents=open_now,
                  transitions=sum(len(s.entries) for s in steps))
        return steps

    async def _pass_app(self, state: AppState, now: float) -> Transition | None:
        async with state.lock:
            decision = await self._decide(state, now)
            persisted = await self._persist(state, decision)
        assessment = decision.assessment
        if self.responder is not None:  # 2. page and journal
            await self.responder.watcher(state.name, assessment.watcher_side,
                                         assessment.evidence.get("watcher_side") or (), now)
            if persisted is not None and decision.step.changed:
                with structlog.contextvars.bound_contextvars(incident_id=persisted.id):
                    await self.responder.on_step(persisted, decision.step.entries)
        if self.mitigator is not None:  # 3. act
            await self.mitigator.observe(state, assessment, now)
            await self.mitigator.consider(state, assessment, now)
        report_assessment(state, assessment, self.metrics, self.settings)  # 4. metrics, logs
        if persisted is None and decision.step.changed:
            return None  # not written: nothing changed as far as anyone can tell
        report_step(state, decision.step, self.metrics)
        return decision.step

    async def _decide(self, state: AppState, now: float) -> Decision:
        """``decide``, with a new incident's ID made unique against the store too (IDs have
        1 s resolution and a previous run may have used this second)."""
        ids = frozenset(s.incident.id for s in self.apps.values() if s.incident is not None)
        view = view_of(state, self.settings, now, ids)
        decision = decide(view, self.settings)
        while (new := decision.opens) is not None:
            try:
                if not await self.store.incident_id_taken(new.id):
                    break
            except StoreError:
                break  # the save below fails the same way and is handled there
            view = taken(view, new.id)
            decision = decide(view, self.settings)
        return decision

    async def _persist(self, state: AppState, decision: Decision) -> Incident | None:
        """1. persist. Returns the incident as stored after the step (None when there is none
        or the store refused it); updates the app's state only once the store holds it."""
        step, now = decision.step, decision.view.now
        if step.changed and step.incident is not None:
            try:
                await self.store.save_incident(step.incident, step.entries)
            except StoreError as e:  # the store is down: act on nothing, retry next pass
                self.metrics.store_errors.inc()
                log.error("store_write_failed", error=type(e).__name__, detail=str(e),
                          incident_id=step.incident.id)
                if decision.opens is not None:
                    state.floor = None
                await self._reload_open(state)
                return None
        state.hold = decision.hold
        state.floor = decision.floor
        if state.incident is not None or step.changed:
            a = decision.assessment
            try:
                await self.store.add_samples([(
                    state.name, now, a.evidence.get("error_ratio"), a.evidence.get("p95_ms"),
                    a.severity.value if a.severity else None)])
            except StoreError as e:  # a lost sample only thins the report's chart
                self.metrics.store_errors.inc()
                log.warning("sample_write_failed", error=type(e).__name__)
        if step.incident is None:
            return None
        persisted = dataclasses.replace(step.incident,
                                        timeline=(*step.incident.timeline, *step.entries))
        state.incident = persisted if persisted.is_open else None
        return persisted

    async def _reload_open(self, state: AppState) -> None:
        """After a refused write, believe the store: it may hold an open incident we lost."""
        try:
            stored = await self.store.open_incident_for(state.name)
        except StoreError:
            return
        if stored is not None and (state.incident is None or state.incident.id != stored.id):
            log.warning("incident_reloaded_from_store", incident_id=stored.id)
            state.incident = stored
            state.hold = Hold.at_level(stored.severity, self.settings.hysteresis.clear_evals)


def _bound(fn: Callable[[T], Awaitable[None]], arg: T) -> Callable[[], Awaitable[None]]:
    return functools.partial(fn, arg)
