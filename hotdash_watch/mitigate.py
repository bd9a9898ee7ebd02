"""The mitigation stage: policy -> guards -> actions for one app's open incident, per pass.

``Mitigator.consider`` runs after the incident's transition is persisted, once per app and
pass, with the pass's ``now``. It reads the action history from the store, builds the policy's
``Situation`` (``mitigation.situation``), asks ``policy.plan`` for steps and ``guards.check``
for a verdict on each, and then:

* the first allowed step is recorded as ``started`` in the store (before any Fly call) and run
  by the ``ActionRunner``: one action at a time per app, never blocking the pass;
* a vetoed step, a "would have done" (dry-run) and a page-only step are recorded and paged
  once per incident (``mitigation.step_records``);
* a deferred step ("not now") is simply planned again on a later pass.

When an action ends, its outcome goes to the store, the metrics, the incident timeline (which
the report reads) and a page, through the ``IncidentRecorder``. A SEV-2 still present
``recovery_check_s`` after a mitigation becomes SEV-1 (``mitigation.escalation``).

After a restart of the watcher, ``resume`` checks every action left ``started``: a machine
action is confirmed or marked failed from the machine's state (never repeated blindly,
``actions.resume``), and an interrupted rollback is carried on from where it stopped.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

import structlog

from hotdash_watch import release_health
from hotdash_watch.actions import resume as resumed
from hotdash_watch.actions.runner import ActionEnded, ActionRunner
from hotdash_watch.classify import Assessment
from hotdash_watch.clock import Clock
from hotdash_watch.config import Settings
from hotdash_watch.fly import FlyClient
from hotdash_watch.guards import Decision, GuardContext, GuardName, Verdict, check
from hotdash_watch.metrics import Metrics
from hotdash_watch.mitigation.escalation import recovery_check, recovery_due_at
from hotdash_watch.mitigation.situation import (
    AppFacts,
    MachineExits,
    exits_by_machine,
    machine_views,
    situation,
)
from hotdash_watch.mitigation.step_records import (
    OnceKeys,
    end_page,
    ended_record,
    once_event,
    once_key,
    once_page,
    once_record,
    started_record,
)
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.errors import StoreError
from hotdash_watch.model.incident import Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.pipeline.state import AppState
from hotdash_watch.policy import Step, plan
from hotdash_watch.records.store import Store

__all__ = ["IncidentRecorder", "Mitigator"]

log = structlog.get_logger("hotdash_watch.mitigate")

#: Verdicts that stop the walk down the plan: nothing else may start on this app now.
_APP_WIDE_WAIT = frozenset({GuardName.ONE_AT_A_TIME, GuardName.LEASE})


class IncidentRecorder(Protocol):
    """Where the mitigation stage's results go: the incident's timeline and its page, an
    escalation, and a fresh read of the app's machines after an action
    (``pipeline.timeline.Timeline``)."""

    async def record_action(self, app: str, incident_id: str, rec: ActionRecord, now: float,
                            *, page: str | None) -> None: ...

    async def escalate(self, app: str, incident_id: str, to: Severity, reason: str,
                       now: float) -> None: ...

    async def refresh_machines(self, app: str) -> None: ...


class Mitigator:
    """Plans, guards and runs mitigations; the pipeline gives it each pass."""

    def __init__(self, settings: Settings, clock: Clock, store: Store, metrics: Metrics,
                 client: FlyClient | None, recorder: IncidentRecorder) -> None:
        self.settings = settings
        self.cfg = settings.mitigation
        self.clock = clock
        self.store = store
        self.metrics = metrics
        self.client = client
        self.recorder = recorder
        self.runner = ActionRunner(client, clock, self.cfg, store, self._finish)
        self._backoff: dict[str, float] = {}
        self._health: dict[str, release_health.Record] = {}
        self._health_saved: dict[str, float] = {}
        self._recovery_due: dict[str, float] = {}  # incident id -> when to re-check
        self._once = OnceKeys()

    @property
    def tasks(self) -> dict[str, asyncio.Task[None]]:
        """The action task per app (running, or the last one)."""
        return self.runner.tasks

    def busy(self, app: str) -> bool:
        return self.runner.busy(app)

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: let running actions finish within ``timeout_s``, then cancel them (their
        records stay ``started`` and are checked on the next start)."""
        await self.runner.drain(timeout_s)

    # -- start ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read each app's release health record from the store."""
        for app in (a.name for a in self.settings.apps):
            try:
                data = await self.store.get_state(f"release_health:{app}")
            except StoreError as e:
                log.warning("release_health_unreadable", app=app, error=type(e).__name__)
                continue
            self._health[app] = release_health.from_json(data)

    async def resume(self) -> None:
        """Check the actions a previous run left ``started``: confirm, fail or finish them."""
        try:
            unfinished = await self.store.unfinished_actions()
        except StoreError as e:
            log.error("unfinished_actions_unreadable", error=type(e).__name__, detail=str(e))
            return
        for rec in unfinished:
            if await self._carries_on(rec):
                log.warning("rollback_resumed", app=rec.app, incident_id=rec.incident_id,
                            done=rec.detail.get("done"), version=rec.detail.get("version"))
                await self._start(resumed.rollback_step(rec), rec)
                continue
            result = await resumed.check(rec, self.client)
            await self._finish(ActionEnded(rec, result, self.clock.timestamp()))

    async def _carries_on(self, rec: ActionRecord) -> bool:
        """An interrupted rollback whose incident is still open is carried on, not judged."""
        if rec.kind is not ActionKind.ROLLBACK or rec.incident_id is None \
                or self.client is None or self.settings.dry_run \
                or rec.app not in {a.name for a in self.settings.apps}:
            return False
        try:
            inc = await self.store.get_incident(rec.incident_id)
        except StoreError as e:
            log.warning("incident_unreadable", app=rec.app, incident_id=rec.incident_id,
                        error=type(e).__name__)
            return False
        return inc is not None and inc.is_open and inc.app == rec.app

    # -- every pass ----------------------------------------------------------------------------

    async def observe(self, state: AppState, assessment: Assessment, now: float) -> None:
        """Keep the release health record: was the app healthy while its image ran?"""
        images, version = release_health.running_image(state.machines, state.releases)
        healthy = (assessment.conclusive and assessment.severity is None
                   and state.incident is None and not assessment.watcher_side)
        app = state.name
        before = self._health.get(app, {})
        record = release_health.observe(before, images, version, healthy, now)
        self._health[app] = record
        after_s = self.cfg.release_healthy_after_s
        crossed = any(h.healthy_s >= after_s and (before.get(k) is None
                                                  or before[k].healthy_s < after_s)
                      for k, h in record.items())
        if crossed or now - self._health_saved.get(app, 0.0) >= 60.0:
            self._health_saved[app] = now
            try:
                await self.store.put_state(f"release_health:{app}",
                                           release_health.to_json(record), now)
            except StoreError as e:
                log.warning("release_health_not_saved", app=app, error=type(e).__name__)
            if crossed:
                log.info("release_known_healthy", app=app, version=version, image=images)

    async def consider(self, state: AppState, assessment: Assessment | None,
                       now: float) -> None:
        """Plan, guard and act for the app's open incident at ``now``."""
        inc: Incident | None = state.incident
        if inc is None or assessment is None or not inc.is_open:
            return
        if inc.state is State.MONITORING or assessment.severity is None:
            return
        if assessment.watcher_side or self.client is None:
            return
        app = state.name
        due = self._recovery_due.get(inc.id)
        if self.busy(app) and (due is None or now < due):
            return  # one action at a time: the next plan waits for this one's effect
        try:
            app_history = tuple(await self.store.actions_since(
                now - self.cfg.budget_window_s, app=app))
            incident_history = tuple(await self.store.actions_since(0.0, incident_id=inc.id))
        except StoreError as e:
            log.warning("action_history_unreadable", app=app, error=type(e).__name__)
            return
        await self._recovery_check(state, inc, assessment, incident_history, now)
        if self.busy(app):
            return
        seen = situation(self.facts(state, now), assessment, inc, incident_history, now,
                         cfg=self.cfg, health=self._health.get(app, {}), busy=self.busy(app))
        steps = plan(seen, self.cfg, self.settings.fly.recent_release_s).steps
        if not steps:
            return
        ctx = GuardContext(now=now, settings=self.cfg, dry_run=self.settings.dry_run,
                           machines=seen.machines, app_history=app_history,
                           incident_history=incident_history, busy=self.busy(app),
                           suspended=await self._suspended(app, now),
                           lease_backoff_until=self._backoff.get(app),
                           current_version=seen.current.version if seen.current else None)
        recorded = self._once.of(inc.id, incident_history)
        for step in steps:
            verdict = check(step, ctx)
            if step.kind is ActionKind.PAGE:
                await self._record_once(inc, step, Outcome.OK, verdict, recorded, now)
                continue
            if verdict.decision is Decision.ALLOW:
                await self._launch(inc, step, now)
                break
            if verdict.decision is Decision.DRY_RUN:
                await self._record_once(inc, step, Outcome.DRY_RUN, verdict, recorded, now)
                continue
            if verdict.decision is Decision.VETO:
                await self._record_once(inc, step, Outcome.VETOED, verdict, recorded, now)
                continue
            log.debug("step_deferred", app=app, step=step.text, guard=verdict.guard,
                      why=verdict.text)
            if verdict.guard in _APP_WIDE_WAIT:
                break

    # -- what the pure stage reads -------------------------------------------------------------

    def facts(self, state: AppState, now: float) -> AppFacts:
        """What the situation is built from: the app's latest Fly reports at ``now``."""
        hints = state.logs.summary(now).get("dependency_hints")
        return AppFacts(state.name, state.machines, state.releases, self._exits(state, now),
                        tuple(hints) if isinstance(hints, (list, tuple)) else ())

    def _exits(self, state: AppState, now: float) -> dict[str, MachineExits]:
        """Each machine's exits as the machines probe counted them over its windows."""
        probe = state.machines_probe
        if probe is None:
            return {}
        return exits_by_machine(probe.ledger.per_machine(now, self.cfg.budget_window_s),
                                probe.ledger.per_machine(now,
                                                         self.settings.thresholds.oom_window_s))

    async def _suspended(self, app: str, now: float) -> str | None:
        try:
            silences = await self.store.active_silences(now)
        except StoreError:
            return None
        for s in silences:
            if s.suspend_mitigation and s.matches(app):
                return (f"silence #{s.id} by {s.author} ({s.reason}) until "
                        f"{_iso(s.ends_at)}")
        return None

    # -- records -------------------------------------------------------------------------------

    async def _record_once(self, inc: Incident, step: Step, outcome: Outcome,
                           verdict: Verdict, recorded: set[str], now: float) -> None:
        """Record (and page) a veto, a dry-run or a page-only step once per incident."""
        key = once_key(step, outcome, verdict)
        if key in recorded:
            return
        recorded.add(key)
        rec = once_record(inc, step, outcome, verdict, now)
        try:
            rec = await self.store.add_action(rec)
        except StoreError as e:
            log.error("action_not_recorded", app=inc.app, error=type(e).__name__,
                      detail=str(e))
            return
        if step.kind.touches_fly:
            self.metrics.actions.labels(inc.app, step.kind.value, outcome.value).inc()
        log.warning(once_event(outcome), app=inc.app, incident_id=inc.id,
                    action=step.kind.value, target=step.target, why=step.why.value,
                    text=rec.text, guard=verdict.guard.value if verdict.guard else None)
        await self.recorder.record_action(inc.app, inc.id, rec, now, page=once_page(outcome))

    async def _launch(self, inc: Incident, step: Step, now: float) -> None:
        try:
            rec = await self.store.add_action(started_record(inc, step, now))  # before Fly
        except StoreError as e:
            log.error("action_not_recorded", app=inc.app, error=type(e).__name__,
                      detail=str(e))
            return
        log.warning("action_started", app=inc.app, incident_id=inc.id, action=step.kind.value,
                    target=step.target, why=step.why.value, text=step.text)
        await self.recorder.record_action(inc.app, inc.id, rec, now, page=None)
        await self._start(step, rec)

    async def _start(self, step: Step, rec: ActionRecord) -> None:
        if self.runner.start(step, rec):
            self.metrics.action_in_progress.labels(rec.app).set(1)
            return
        text = f"{step.kind.value} of {step.target} not started: another action runs on the app"
        log.error("action_not_started", app=rec.app, action=step.kind.value, text=text)
        try:
            assert rec.id is not None
            await self.store.end_action(rec.id, Outcome.FAILED, self.clock.timestamp(),
                                        {**rec.detail, "result": text})
        except StoreError as e:
            log.error("action_end_not_recorded", app=rec.app, error=type(e).__name__,
                      detail=str(e))

    async def _finish(self, ended: ActionEnded) -> None:
        """An action ended: store, metrics, the next recovery check, timeline and page."""
        rec, result, now = ended.record, ended.result, ended.ended_at
        done = ended_record(rec, result, now)
        try:
            assert rec.id is not None
            await self.store.end_action(rec.id, result.outcome, now, done.detail)
        except StoreError as e:
            log.error("action_end_not_recorded", app=rec.app, error=type(e).__name__,
                      detail=str(e))
        self.metrics.action_in_progress.labels(rec.app).set(0)
        self.metrics.actions.labels(rec.app, rec.kind.value, result.outcome.value).inc()
        if result.outcome is Outcome.DEFERRED:
            self._backoff[rec.app] = now + self.cfg.lease_backoff_s
        elif rec.incident_id is not None:
            self._recovery_due[rec.incident_id] = recovery_due_at(
                rec.kind, result.outcome, now, self.cfg.recovery_check_s)
        level = "info" if result.outcome is Outcome.OK else "error"
        getattr(log, level)("action_ended", app=rec.app, incident_id=rec.incident_id,
                            action=rec.kind.value, target=rec.target,
                            outcome=result.outcome.value, text=result.text,
                            took_s=round(now - rec.at, 1))
        if rec.incident_id is not None:
            await self.recorder.record_action(rec.app, rec.incident_id, done, now,
                                              page=end_page(result.outcome))
        await self.recorder.refresh_machines(rec.app)

    # -- escalation ----------------------------------------------------------------------------

    async def _recovery_check(self, state: AppState, inc: Incident, a: Assessment,
                              history: tuple[ActionRecord, ...], now: float) -> None:
        """Runbook SEV-2 step 5: not resolved after the mitigation -> SEV-1."""
        due = self._recovery_due.get(inc.id)
        if due is None or now < due:
            return
        self._recovery_due.pop(inc.id, None)
        machines = machine_views(state.machines, self._exits(state, now), now,
                                 self.cfg.budget_window_s)
        escalation = recovery_check(inc, a, history, due, now, machines=machines,
                                    recovery_check_s=self.cfg.recovery_check_s)
        if escalation is not None:
            await self.recorder.escalate(inc.app, inc.id, escalation.to, escalation.reason,
                                         now)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")

