"""The one place where the order of a pass is written.

``build()`` wires the stages for the configured apps: probes feed a window per app; each
evaluation pass reads ``now`` once and runs, per app,
window snapshot -> classify -> debounce -> incident state machine -> store (before anything is
acted on) -> metrics and logs -> responder (pages, journal) -> mitigation (policy -> guards ->
actions, ``mitigate.Mitigator``), in that order, after the app's transitions are persisted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import structlog

from hotdash_watch.classify import Assessment, Hold, Signal, classify, debounce
from hotdash_watch.clock import Clock
from hotdash_watch.config import AppSettings, Settings
from hotdash_watch.fly import FlyClient
from hotdash_watch.incidents import Step, advance
from hotdash_watch.metrics import Metrics
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.probes.base import Observation, Probe
from hotdash_watch.probes.http import HttpProbe
from hotdash_watch.probes.logs import LogsProbe, LogsReport, LogTally
from hotdash_watch.probes.machines import MachinesProbe, MachinesReport
from hotdash_watch.probes.prometheus import (
    QueryTraffic,
    ScrapeTraffic,
    TrafficReport,
    TrafficWindow,
)
from hotdash_watch.probes.releases import ReleasesProbe, ReleasesReport
from hotdash_watch.records.store import Store
from hotdash_watch.window import Window

__all__ = ["AppState", "Job", "Pipeline", "build"]

log = structlog.get_logger("hotdash_watch.pipeline")


@dataclass(frozen=True)
class Job:
    """One scheduled piece of work: a probe of one kind for one app (or for all apps)."""

    id: str
    interval_s: float
    run: Callable[[], Awaitable[None]]


@dataclass
class AppState:
    """What the pipeline keeps per app between passes (the incident mirrors the store)."""

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


class Pipeline:
    """Observations in, persisted incidents out. Driven by the scheduler or by tests directly."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: Store,
        metrics: Metrics,
        probes: Sequence[Probe] = (),
        fly_probes: Sequence[Any] = (),
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
        self.last_tick: float | None = None
        self.responder: Any = None  # set by the daemon: pages, journal, diagnostics, report
        self.fly_client: FlyClient | None = None
        self.mitigator: Any = None  # mitigate.Mitigator when Fly is configured
        metrics.init_apps(self.apps, sorted({p.name for p in self.probes}) or ("health",))

    def jobs(self) -> list[Job]:
        """What the scheduler runs: every probe at its interval (seconds of the clock)."""
        s, fly = self.settings, self.settings.fly
        out = [Job(f"probe:{p.app}:{p.name}", s.interval_for(s.app(p.app)),
                   partial(self.run_probe, p)) for p in self.probes]
        intervals = {"machines": fly.machines_interval_s, "logs": fly.logs_interval_s,
                     "metrics": fly.metrics_interval_s, "releases": fly.releases_interval_s}
        out += [Job(f"fly:{p.app}:{p.kind}", intervals[p.kind], partial(self.run_fly_probe, p))
                for p in self.fly_probes]
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

    # -- probes --------------------------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        """Record one probe result in its app's window and in the metrics."""
        state = self.apps.get(obs.app)
        if state is None:
            log.warning("observation_for_unknown_app", app=obs.app, probe=obs.probe)
            return
        state.window.add(obs)
        result = "ok" if obs.ok else str(obs.failure)
        self.metrics.probe_results.labels(obs.app, obs.probe, result).inc()
        if obs.latency_ms is not None:
            self.metrics.probe_duration.labels(obs.app, obs.probe).observe(obs.latency_ms / 1000)
        if obs.ok:
            self.metrics.probe_last_success.labels(obs.app, obs.probe).set(obs.at)
        previous = state.last_probe.get(obs.probe)
        state.last_probe[obs.probe] = result
        if result != previous:
            ctx = {"app": obs.app, "probe": obs.probe, "status": obs.status,
                   "latency_ms": None if obs.latency_ms is None else round(obs.latency_ms, 1)}
            if obs.ok and previous is None:
                log.info("probe_ok", **ctx)  # first result since start: the target is reached
            elif obs.ok:
                log.info("probe_recovered", **ctx, was=previous)
            elif not obs.ok:
                log.warning("probe_failed", **ctx, failure=result, detail=obs.detail,
                            watcher_side=obs.watcher_side)

    async def run_probe(self, probe: Probe) -> None:
        """Run one probe; a service-side failure is re-probed at once rather than next interval."""
        obs = await probe.run()
        self.observe(obs)
        if not obs.ok and not obs.watcher_side and self.settings.probes.reprobe_on_failure:
            again = await probe.run()
            self.observe(again)
            state = self.apps.get(probe.app)
            if not again.ok and state is not None and state.machines_probe is not None:
                # A failure confirmed by the re-probe: ask the Machines API now, not in 10 s.
                last = state.machines.at if state.machines else None
                if last is None or again.at - last >= self.settings.fly.machines_interval_s / 4:
                    await self.run_fly_probe(state.machines_probe)

    async def run_fly_probe(self, probe: Any) -> None:
        """Run one Fly probe (machines, logs, metrics, releases) and keep its report."""
        result = await probe.run()
        reports = result if isinstance(result, list) else [result]
        for report in reports:
            state = self.apps.get(report.app)
            if state is None:
                continue
            error = getattr(report, "error", None)
            self.metrics.fly_calls.labels(report.app, probe.kind,
                                          "ok" if error is None else "error").inc()
            if isinstance(report, MachinesReport):
                self._keep_machines(state, report)
            elif isinstance(report, LogsReport):
                state.logs.add(report)
            elif isinstance(report, TrafficReport):
                state.traffic.add(report)
            elif isinstance(report, ReleasesReport) and report.error is None:
                state.releases = report
            if error is not None and error != state.fly_error:
                log.warning("fly_api_unreachable", app=report.app, probe=probe.kind,
                            error=error)
            elif error is None and state.fly_error is not None and probe.kind == "machines":
                log.info("fly_api_reachable_again", app=report.app)
            if probe.kind == "machines" or error is not None:
                state.fly_error = error

    def _keep_machines(self, state: AppState, report: MachinesReport) -> None:
        previous = state.machines.facts if state.machines else None
        if report.facts is not None:
            state.machines = report
            f = report.facts
            self.metrics.machines.labels(state.name, "started_healthy").set(f.started_healthy)
            self.metrics.machines.labels(state.name, "down").set(f.down)
            self.metrics.machines.labels(state.name, "idle_stopped").set(f.idle_stopped)
            if previous is None or (previous.down, previous.started_healthy) != (
                    f.down, f.started_healthy):
                log.info("machines_changed", app=state.name, started_healthy=f.started_healthy,
                         down=f.down, idle=f.idle_stopped, total=f.total,
                         down_ids=list(f.down_ids))
        for machine_id, at, oom in report.new_exits:
            log.warning("machine_exited", app=state.name, machine=machine_id, oom_killed=oom,
                        exited_s_ago=round(report.at - at, 1))
            if oom:
                self.metrics.oom_kills.labels(state.name).inc()

    # -- inbound signals -----------------------------------------------------------------------

    def put_signal(self, app: str, key: str, signal: Signal, until: float) -> bool:
        """An inbound alert (Alertmanager, operator) about ``app``, in force until ``until``
        (epoch seconds) or until cleared. ``key`` identifies it (an alert's fingerprint): the
        same key replaces, never adds. False when ``app`` is not watched."""
        state = self.apps.get(app)
        if state is None:
            return False
        if key not in state.signals:
            log.warning("signal_received", app=app, severity=signal.severity.value,
                        source=signal.source, summary=signal.summary)
        state.signals[key] = (signal, until)
        return True

    def clear_signal(self, app: str, key: str) -> bool:
        """The alert behind ``key`` resolved. False when it was not in force."""
        state = self.apps.get(app)
        if state is None or state.signals.pop(key, None) is None:
            return False
        log.info("signal_cleared", app=app)
        return True

    # -- evaluation ----------------------------------------------------------------------------

    async def evaluate(self) -> list[Step]:
        """One pass over every app at one instant. Returns the steps that changed something."""
        now = self.clock.timestamp()
        self.metrics.evaluations.inc()
        steps = []
        for state in self.apps.values():
            with structlog.contextvars.bound_contextvars(app=state.name):
                async with state.lock:
                    step = await self._evaluate_app(state, now)
                if self.mitigator is not None and state.last is not None:
                    try:
                        await self.mitigator.observe(state, state.last, now)
                        await self.mitigator.consider(state, state.last, now)
                    except Exception:  # mitigation must never stop the watching
                        log.exception("mitigation_failed")
            if step is not None and step.changed:
                steps.append(step)
        if self.responder is not None:
            try:
                await self.responder.tick(
                    [s.incident for s in self.apps.values() if s.incident is not None], now)
            except Exception:
                log.exception("respond_failed")
        self.last_tick = now
        self.metrics.last_tick.set(now)
        open_now = [s.incident.id for s in self.apps.values() if s.incident]
        log.debug("evaluation_pass", apps=len(self.apps), open_incidents=open_now,
                  transitions=sum(len(s.entries) for s in steps))
        return steps

    async def _evaluate_app(self, state: AppState, now: float) -> Step | None:
        cfg = self.settings
        snap = state.window.snapshot(now, cfg.window.eval_s)
        verify_snap = state.window.snapshot(now, min(cfg.timers.stabilization_s,
                                                     cfg.window.span_s) or cfg.window.eval_s)
        assessment = classify(snap, cfg.thresholds, now, signals=state.live_signals(now),
                              **self._fly_inputs(state, now))
        self._report_assessment(state, assessment)
        if self.responder is not None:
            try:
                await self.responder.watcher(state.name, assessment.watcher_side,
                                             assessment.evidence.get("watcher_side") or (),
                                             now)
            except Exception:
                log.exception("respond_failed")
        hold = debounce(state.hold, assessment, cfg.hysteresis)
        level = hold.level
        if level is not None and state.floor is not None and state.incident is not None:
            level = Severity.worst(level, state.floor)  # an escalation holds while signals do
        step = advance(state.incident, level, assessment, verify_snap, cfg, now,
                       taken_ids=self._ids_in_memory())
        if step.entries and step.entries[0].event is Event.OPENED and step.incident:
            state.floor = None
            step = await self._unique_open(state, hold, assessment, verify_snap, now, step)
        if step.changed and step.incident is not None:
            try:
                await self.store.save_incident(step.incident, step.entries)
            except Exception as e:  # the store is down: act on nothing, retry next pass
                self.metrics.store_errors.inc()
                log.error("store_write_failed", error=type(e).__name__, detail=str(e),
                          incident_id=step.incident.id)
                await self._reload_open(state)
                return None
        state.hold = hold
        self._report_step(state, step)

        if state.incident is not None or step.changed:
            try:
                await self.store.add_samples([(
                    state.name, now, assessment.evidence.get("error_ratio"),
                    assessment.evidence.get("p95_ms"),
                    assessment.severity.value if assessment.severity else None)])
            except Exception as e:  # a lost sample only thins the report's chart
                self.metrics.store_errors.inc()
                log.warning("sample_write_failed", error=type(e).__name__)
        if step.incident is not None:
            persisted = dataclasses.replace(
                step.incident, timeline=(*step.incident.timeline, *step.entries))
            state.incident = persisted if persisted.is_open else None
            if state.incident is None:
                state.floor = None
            if step.changed and self.responder is not None:
                with structlog.contextvars.bound_contextvars(incident_id=persisted.id):
                    try:
                        await self.responder.on_step(persisted, step.entries)
                    except Exception:  # people-facing records never stop the pipeline
                        log.exception("respond_failed", app=state.name)
        return step

    async def _reload_open(self, state: AppState) -> None:
        """After a refused write, believe the store: it may hold an open incident we lost."""
        try:
            stored = await self.store.open_incident_for(state.name)
        except Exception:
            return
        if stored is not None and (state.incident is None or state.incident.id != stored.id):
            log.warning("incident_reloaded_from_store", incident_id=stored.id)
            state.incident = stored
            state.hold = Hold.at_level(stored.severity, self.settings.hysteresis.clear_evals)

    def _fly_inputs(self, state: AppState, now: float) -> dict[str, Any]:
        """Machine facts (when fresh), traffic, Fly reachability and log/release context."""
        fly = self.settings.fly
        if not fly.enabled and not state.traffic.facts(now, self.settings.window.eval_s):
            return {}
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
        return {
            "machines": facts,
            "traffic": state.traffic.facts(now, self.settings.window.eval_s),
            "fly_reachable": None if not fly.enabled else state.fly_error is None,
            "context": context,
        }

    async def _unique_open(self, state: AppState, hold: Hold, assessment: Assessment,
                           verify_snap: Any, now: float, step: Step) -> Step:
        """Make the new incident's ID unique against the store too (IDs have 1 s resolution)."""
        taken = set(self._ids_in_memory())
        while step.incident is not None and await self.store.incident_id_taken(step.incident.id):
            taken.add(step.incident.id)
            step = advance(state.incident, hold.level, assessment, verify_snap, self.settings,
                           now, taken_ids=taken)
        return step

    def _ids_in_memory(self) -> set[str]:
        return {s.incident.id for s in self.apps.values() if s.incident is not None}

    # -- mitigation records (called by the mitigation stage and its action tasks) ---------------

    async def _append(self, app: str, incident_id: str,
                      make: Callable[[Incident], tuple[Incident, list[TimelineEntry]]]
                      ) -> Incident | None:
        """Append entries to an incident's timeline under the app's lock, persisted first.
        ``make`` gets the incident as it stands and returns it changed plus the entries."""
        state = self.apps.get(app)
        if state is None:
            return None
        async with state.lock:
            inc = state.incident if state.incident is not None \
                and state.incident.id == incident_id else None
            in_memory = inc is not None
            if inc is None:
                try:
                    inc = await self.store.get_incident(incident_id)
                except Exception:
                    inc = None
            if inc is None:
                return None
            changed, entries = make(inc)
            try:
                await self.store.save_incident(changed, entries)
            except Exception as e:
                self.metrics.store_errors.inc()
                log.error("store_write_failed", error=type(e).__name__, detail=str(e),
                          incident_id=incident_id)
                return None
            persisted = dataclasses.replace(changed, timeline=(*changed.timeline, *entries))
            if in_memory:
                state.incident = persisted
            for e in entries:
                self.metrics.transitions.labels(app, e.event.value).inc()
            return persisted

    async def record_action(self, app: str, incident_id: str, rec: ActionRecord, now: float,
                            *, page: str | None) -> None:
        """A mitigation step in the incident's timeline (the report reads it), then its page."""

        def make(inc: Incident) -> tuple[Incident, list[TimelineEntry]]:
            detail: dict[str, Any] = {"target": rec.target, "outcome": rec.outcome.value,
                                      "why": rec.reason}
            if rec.guard:
                detail["guard"] = rec.guard
            if rec.kind is ActionKind.PAGE:
                detail["person_needed"] = True
            elif rec.outcome is Outcome.STARTED:
                detail["starting"] = rec.kind.value
            else:
                detail["action"] = rec.kind.value
                detail["started_at"] = rec.at
            event = Event.NOTE
            if rec.outcome is Outcome.STARTED and inc.state is State.INVESTIGATING:
                inc = dataclasses.replace(inc, state=State.MITIGATING, updated_at=now)
                event = Event.MITIGATING
            text = rec.detail.get("result") or rec.text
            if rec.outcome is Outcome.STARTED:
                text = f"started: {rec.text}"
            elif rec.kind.touches_fly and rec.outcome in (Outcome.OK, Outcome.FAILED,
                                                          Outcome.DEFERRED):
                head = f"{rec.kind.value} of {rec.target}"
                text = f"{head} {rec.outcome.value}: {str(text).removeprefix(head + ': ')}"
            entry = TimelineEntry(at=now, event=event, state=inc.state, severity=inc.severity,
                                  notes=(str(text),), detail=detail)
            return inc, [entry]

        persisted = await self._append(app, incident_id, make)
        if persisted is None or self.responder is None:
            return
        entry = persisted.timeline[-1]
        try:
            await self.responder.on_action(persisted, entry, page=page)
        except Exception:
            log.exception("respond_failed", app=app)

    async def escalate(self, app: str, incident_id: str, to: Severity, reason: str,
                       now: float) -> None:
        """Raise the incident to ``to`` for a reason the signals alone do not carry (a
        mitigation that did not resolve it); the level holds until the signals clear."""
        escalated: list[TimelineEntry] = []

        def make(inc: Incident) -> tuple[Incident, list[TimelineEntry]]:
            if not to.worse_than(inc.severity) or not inc.is_open:
                return inc, []
            new = dataclasses.replace(inc, severity=to, severity_since=now, updated_at=now,
                                      max_severity=Severity.worst(inc.max_severity, to))
            escalated.append(TimelineEntry(at=now, event=Event.ESCALATED, state=new.state,
                                           severity=to, notes=(reason,),
                                           detail={"from": inc.severity.value}))
            return new, escalated

        state = self.apps.get(app)
        persisted = await self._append(app, incident_id, make)
        if persisted is None or not escalated:
            return  # not written, or nothing to raise (already at that severity, or closed)
        if state is not None:
            state.floor = to
        self.metrics.set_severity(app, to)
        log.error("incident_escalated", app=app, incident_id=incident_id, severity=to.value,
                  reasons=[reason])
        if self.responder is not None:
            try:
                await self.responder.on_step(persisted, escalated)
            except Exception:
                log.exception("respond_failed", app=app)

    async def refresh_machines(self, app: str) -> None:
        """Read the Machines API for ``app`` now (after an action), not at the next poll."""
        state = self.apps.get(app)
        if state is not None and state.machines_probe is not None:
            try:
                await self.run_fly_probe(state.machines_probe)
            except Exception:
                log.exception("machines_refresh_failed", app=app)

    async def acknowledge(self, incident_id: str, author: str) -> Incident | None:
        """Record that a person has the incident (a timeline note), persisted first."""
        state = next((s for s in self.apps.values()
                      if s.incident is not None and s.incident.id == incident_id), None)
        if state is None or state.incident is None:
            return None
        inc = state.incident
        now = self.clock.timestamp()
        entry = TimelineEntry(at=now, event=Event.NOTE, state=inc.state, severity=inc.severity,
                              notes=(f"acknowledged by {author}",),
                              detail={"acknowledged_by": author})
        inc = dataclasses.replace(inc, updated_at=now)
        await self.store.save_incident(inc, [entry])
        state.incident = dataclasses.replace(inc, timeline=(*inc.timeline, entry))
        log.info("incident_acknowledged", app=inc.app, incident_id=inc.id, author=author)
        return state.incident

    # -- reporting -----------------------------------------------------------------------------

    def _report_assessment(self, state: AppState, a: Assessment) -> None:
        m, app = self.metrics, state.name
        ratio = a.evidence.get("error_ratio")
        p95 = a.evidence.get("p95_ms")
        m.error_ratio.labels(app).set(float("nan") if ratio is None else ratio)
        m.p95.labels(app).set(float("nan") if p95 is None else p95 / 1000)
        m.raw_severity.labels(app).set(a.severity.rank if a.severity else 0)
        m.watcher_side.labels(app).set(1 if a.watcher_side else 0)
        before = state.last
        state.last = a
        if before is None or before.severity != a.severity:
            if a.severity is not None and before is not None and before.severity is not None \
                    and before.severity.worse_than(a.severity):
                log.info("condition_easing", severity=a.severity.value,
                         was=before.severity.value, reasons=list(a.reasons))
            elif a.severity is not None:
                log.warning("condition_detected", severity=a.severity.value,
                            reasons=list(a.reasons), confirm_after_evals=(
                                self.settings.hysteresis.raise_evals(a.severity)))
            elif before is not None and before.severity is not None:
                log.info("condition_cleared", was=before.severity.value,
                         error_ratio=ratio, p95_ms=p95)
        if a.watcher_side and not (before and before.watcher_side):
            log.warning("watcher_side_blind", evidence=a.evidence,
                        hint="probes fail for the watcher's own reasons (DNS, route); "
                             "the service is not judged")

    def _report_step(self, state: AppState, step: Step) -> None:
        inc = step.incident
        if inc is None:
            return
        m = self.metrics
        with structlog.contextvars.bound_contextvars(incident_id=inc.id):
            for e in step.entries:
                m.transitions.labels(inc.app, e.event.value).inc()
                fields = {"severity": e.severity.value, "state": e.state.value,
                          "reasons": list(e.reasons)}
                if e.event is Event.OPENED:
                    m.incidents_opened.labels(inc.app, inc.severity.value).inc()
                    log.error("incident_opened", **fields, **_headline(inc.evidence))
                    log.debug("incident_evidence", evidence=inc.evidence)
                elif e.event is Event.RESOLVED:
                    log.info("incident_resolved", **fields,
                             duration_s=round(e.at - inc.opened_at, 1), checks=e.detail)
                else:
                    log.warning(f"incident_{e.event.value}", **fields, **e.detail)
            m.set_severity(inc.app, inc.severity if inc.is_open else None)
            v = step.verification
            if v is not None and inc.is_open:
                pending = tuple(c.value for c in v.failed)
                if pending != state.pending_checks:
                    log.info("verification_pending", waiting_for=list(pending), **v.evidence)
                state.pending_checks = pending
            elif not inc.is_open:
                state.pending_checks = ()


def _headline(evidence: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a person reads first; the full evidence is in the store and the API."""
    out: dict[str, Any] = {k: evidence.get(k) for k in ("error_ratio", "p95_ms")}
    machines = evidence.get("machines")
    if isinstance(machines, dict):
        out["machines"] = f"{machines.get('started_healthy')}/{machines.get('total')} healthy"
    logs = evidence.get("logs")
    if isinstance(logs, dict) and logs.get("dependency_hints"):
        out["dependency_hints"] = logs["dependency_hints"]
    release = evidence.get("release")
    if isinstance(release, dict) and release.get("deployed_s_ago") is not None:
        out["deployed_s_ago"] = release["deployed_s_ago"]
    return out


def build(
    settings: Settings,
    clock: Clock,
    store: Store,
    metrics: Metrics,
    session: aiohttp.ClientSession,
    rng: random.Random | None = None,
) -> Pipeline:
    """Wire probes and stages for every configured app. ``rng`` draws the Fly client's retry
    jitter (simulation passes a seeded one, so that a run can be repeated exactly)."""
    fly = settings.fly
    fly_probes: list[Any] = []
    if fly.enabled:
        assert fly.api_token is not None
        client = FlyClient(session, clock, token=fly.api_token, machines_url=fly.machines_url,
                           api_url=fly.api_url,
                           prometheus_url=fly.metrics_url if fly.metrics == "prometheus"
                           else None, timeout_s=fly.timeout_s, rng=rng)
        for app in settings.apps:
            fly_probes += [
                MachinesProbe(app.name, client, clock, span_s=settings.thresholds.oom_window_s,
                              check_grace_s=fly.check_grace_s,
                              keep_s=settings.mitigation.budget_window_s),
                LogsProbe(app.name, client, clock),
                ReleasesProbe(app.name, client, clock),
            ]
            if fly.metrics == "prometheus":
                fly_probes.append(QueryTraffic(app.name, client, clock,
                                               over_s=settings.window.eval_s))
    if fly.metrics == "scrape" and fly.metrics_url:
        fly_probes.append(ScrapeTraffic(fly.metrics_url, [a.name for a in settings.apps],
                                        session, clock, timeout_s=fly.timeout_s))
    probes: list[Probe] = []
    for app in settings.apps:
        budget = settings.budget_for(app)
        common: dict[str, Any] = {"session": session, "clock": clock,
                                  "timeout_s": settings.timeout_for(app)}
        probes.append(HttpProbe(app.name, "health", app.health_url,
                                expect_status=tuple(app.expect_status),
                                expect_body=app.expect_body, latency_budget_ms=budget, **common))
        if app.synthetic_url:
            probes.append(HttpProbe(app.name, "synthetic", app.synthetic_url,
                                    latency_budget_ms=budget, **common))
    pipeline = Pipeline(settings, clock, store, metrics, probes, fly_probes)
    if fly.enabled:
        from hotdash_watch.mitigate import Mitigator

        pipeline.fly_client = client
        pipeline.mitigator = Mitigator(settings, clock, store, metrics, client, pipeline)
    return pipeline
