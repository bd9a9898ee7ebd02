"""The mitigation stage: policy -> guards -> actions for one app's open incident, per pass.

``Mitigator.consider`` runs after the incident state machine, once per app and pass, with the
pass's ``now``. It builds the policy's ``Situation`` from what the pipeline keeps (machines,
releases, logs, the assessment) and the action history from the store, asks ``policy.plan``
for steps and ``guards.check`` for a verdict on each, and then:

* the first allowed step is recorded as ``started`` in the store (before any Fly call) and run
  in a task of its own: one action at a time per app, never blocking the pass;
* a vetoed step, a "would have done" (dry-run) and a page-only step are recorded and paged
  once per incident;
* a deferred step ("not now") is simply planned again on a later pass.

When an action ends, its outcome goes to the store, the metrics, the incident timeline (which
the report reads) and a page. A SEV-2 still present ``recovery_check_s`` after a mitigation
becomes SEV-1 (runbook: "If not resolved, escalate to SEV-1 procedures").

After a restart of the watcher, ``resume`` checks every action left ``started``: a machine
action is confirmed or marked failed from the machine's state (never repeated blindly), and an
interrupted rollback is carried on from where it stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from hotdash_watch import release_health
from hotdash_watch.actions import EXECUTORS, ActionContext, ActionResult
from hotdash_watch.classify import Assessment, Reason
from hotdash_watch.clock import Clock
from hotdash_watch.config import Settings
from hotdash_watch.fly import FlyClient, FlyError
from hotdash_watch.guards import Decision, GuardContext, GuardName, Verdict, check
from hotdash_watch.metrics import Metrics
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.policy import MachineView, ReleaseView, Situation, Step, Why, plan

__all__ = ["Mitigator"]

log = structlog.get_logger("hotdash_watch.mitigate")

#: Verdicts that stop the walk down the plan: nothing else may start on this app now.
_APP_WIDE_WAIT = frozenset({GuardName.ONE_AT_A_TIME, GuardName.LEASE})


class Mitigator:
    """Plans, guards and runs mitigations; the pipeline owns it and gives it each pass."""

    def __init__(self, settings: Settings, clock: Clock, store: Any, metrics: Metrics,
                 client: FlyClient | None, pipeline: Any) -> None:
        self.settings = settings
        self.cfg = settings.mitigation
        self.clock = clock
        self.store = store
        self.metrics = metrics
        self.client = client
        self.pipeline = pipeline  # timeline writes, escalation, machine refresh
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._backoff: dict[str, float] = {}
        self._health: dict[str, release_health.Record] = {}
        self._health_saved: dict[str, float] = {}
        self._recovery_due: dict[str, float] = {}  # incident id -> when to re-check
        self._recorded: dict[str, set[str]] = {}  # incident id -> step keys recorded once

    # -- start ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read each app's release health record from the store."""
        for app in self.pipeline.apps:
            try:
                data = await self.store.get_state(f"release_health:{app}")
            except Exception as e:
                log.warning("release_health_unreadable", app=app, error=type(e).__name__)
                continue
            self._health[app] = release_health.from_json(data)

    async def resume(self) -> None:
        """Check the actions a previous run left ``started``: confirm, fail or finish them."""
        try:
            unfinished = await self.store.unfinished_actions()
        except Exception as e:
            log.error("unfinished_actions_unreadable", error=type(e).__name__, detail=str(e))
            return
        for rec in unfinished:
            state = self.pipeline.apps.get(rec.app)
            if rec.kind is ActionKind.ROLLBACK and state is not None and state.incident \
                    is not None and state.incident.id == rec.incident_id \
                    and self.client is not None and not self.settings.dry_run:
                log.warning("rollback_resumed", app=rec.app, incident_id=rec.incident_id,
                            done=rec.detail.get("done"), version=rec.detail.get("version"))
                step = Step(rec.kind, rec.target, _why(rec), rec.text,
                            {"image": rec.detail.get("image"),
                             "version": rec.detail.get("version"),
                             "from_version": rec.detail.get("from_version")})
                self._start_task(rec.app, step, rec)
                continue
            outcome, text = await self._confirm(rec)
            await self._finish(rec, ActionResult(outcome, text, dict(rec.detail)))

    async def _confirm(self, rec: ActionRecord) -> tuple[Outcome, str]:
        """What became of a machine action the watcher did not see end."""
        if self.client is None or rec.kind is ActionKind.ROLLBACK:
            return Outcome.FAILED, "not confirmed: the watcher restarted during it"
        try:
            m = await self.client.get_machine(rec.app, rec.target)
        except FlyError as e:
            return Outcome.FAILED, (f"not confirmed after the watcher restarted ({type(e).__name__}"
                                    "); not repeated")
        if rec.kind is ActionKind.STOP:
            ok = m.state in ("stopped", "suspended")
        elif rec.kind is ActionKind.RAISE_MEMORY:
            ok = (m.memory_mb or 0) >= int(rec.detail.get("memory_mb") or 0) and \
                m.state == "started"
        else:
            ok = m.state == "started" and m.checks_passing is not False
        if ok:
            return Outcome.OK, (f"confirmed after the watcher restarted: {rec.target} is "
                                f"{m.state}; not repeated")
        return Outcome.FAILED, (f"not confirmed after the watcher restarted: {rec.target} is "
                                f"{m.state}; not repeated (the policy decides again)")

    def busy(self, app: str) -> bool:
        task = self.tasks.get(app)
        return task is not None and not task.done()

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: let running actions finish within ``timeout_s``, then cancel them (their
        records stay ``started`` and are checked on the next start)."""
        running = [t for t in self.tasks.values() if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- every pass ----------------------------------------------------------------------------

    async def observe(self, state: Any, assessment: Assessment, now: float) -> None:
        """Keep the release health record: was the app healthy while its image ran?"""
        images, version = _running_image(state)
        healthy = (assessment.conclusive and assessment.severity is None
                   and state.incident is None and not assessment.watcher_side)
        app = state.name
        record = release_health.observe(self._health.get(app, {}), images, version, healthy,
                                        now)
        before = self._health.get(app, {})
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
            except Exception as e:
                log.warning("release_health_not_saved", app=app, error=type(e).__name__)
            if crossed:
                log.info("release_known_healthy", app=app, version=version, image=images)

    async def consider(self, state: Any, assessment: Assessment | None, now: float) -> None:
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
        except Exception as e:
            log.warning("action_history_unreadable", app=app, error=type(e).__name__)
            return
        await self._recovery_check(state, inc, assessment, incident_history, now)
        if self.busy(app):
            return
        situation = self._situation(state, assessment, inc, incident_history, now)
        steps = plan(situation, self.cfg, self.settings.fly.recent_release_s).steps
        if not steps:
            return
        ctx = GuardContext(now=now, settings=self.cfg, dry_run=self.settings.dry_run,
                           machines=situation.machines, app_history=app_history,
                           incident_history=incident_history, busy=self.busy(app),
                           suspended=await self._suspended(app, now),
                           lease_backoff_until=self._backoff.get(app),
                           current_version=situation.current.version
                           if situation.current else None)
        recorded = self._recorded_keys(inc.id, incident_history)
        for step in steps:
            verdict = check(step, ctx)
            if step.kind is ActionKind.PAGE:
                await self._once(inc, step, Outcome.OK, verdict, recorded, now)
                continue
            if verdict.decision is Decision.ALLOW:
                await self._launch(state, inc, step, now)
                break
            if verdict.decision is Decision.DRY_RUN:
                await self._once(inc, step, Outcome.DRY_RUN, verdict, recorded, now)
                continue
            if verdict.decision is Decision.VETO:
                await self._once(inc, step, Outcome.VETOED, verdict, recorded, now)
                continue
            log.debug("step_deferred", app=app, step=step.text, guard=verdict.guard,
                      why=verdict.text)
            if verdict.guard in _APP_WIDE_WAIT:
                break

    # -- situation -----------------------------------------------------------------------------

    def _situation(self, state: Any, a: Assessment, inc: Incident,
                   history: Sequence[ActionRecord], now: float) -> Situation:
        current, rollback_to = self._releases(state, history)
        logs = state.logs.summary(now)
        return Situation(
            app=state.name, now=now, severity=inc.severity,
            reasons=frozenset(f.reason for f in a.findings), opened_at=inc.opened_at,
            machines=self._machines(state, now), current=current, rollback_to=rollback_to,
            dependency_hints=tuple(logs.get("dependency_hints") or ()),
            history=tuple(history), watcher_side=a.watcher_side, busy=self.busy(state.name))

    def _machines(self, state: Any, now: float) -> tuple[MachineView, ...]:
        report = state.machines
        if report is None or report.facts is None:
            return ()
        facts = report.facts
        probe = state.machines_probe
        per = (probe.ledger.per_machine(now, self.cfg.budget_window_s)
               if probe is not None else {})
        span = self.settings.thresholds.oom_window_s
        ooms = probe.ledger.per_machine(now, span) if probe is not None else {}
        views = []
        for m in report.machines:
            if not m.is_app_machine:
                continue
            fly = per.get(m.id, (0, 0))[1]
            latest = m.latest_exit
            if (latest is not None and latest.exit is not None and latest.restart_count
                    and not latest.exit.requested_stop
                    and latest.timestamp >= now - self.cfg.budget_window_s):
                fly = max(fly, int(latest.restart_count))
            down = m.id in facts.down_ids
            views.append(MachineView(
                id=m.id, state=m.state, healthy=m.state == "started" and not down,
                down=down, idle=m.autostopped and not down, standby=m.is_standby,
                image=m.image, memory_mb=m.memory_mb or 0, cpu_kind=m.cpu_kind or "shared",
                cpus=m.cpus or 1, oom_kills=ooms.get(m.id, (0, 0, 0.0))[0],
                last_oom_at=ooms.get(m.id, (0, 0, 0.0))[2] or None, fly_restarts=fly))
        return tuple(views)

    def _releases(self, state: Any, history: Sequence[ActionRecord]
                  ) -> tuple[ReleaseView | None, ReleaseView | None]:
        rel = state.releases
        if rel is None or rel.current is None:
            return None, None
        cur = rel.current
        current = ReleaseView(cur.version, cur.image_ref or "", cur.created_at)
        left = {a.detail.get("from_image") for a in history if a.kind is ActionKind.ROLLBACK}
        known = release_health.known_healthy(self._health.get(state.name, {}),
                                             self.cfg.release_healthy_after_s)
        for h in known:
            if h.image in (current.image, *left):
                continue
            if h.version is not None and h.version >= cur.version:
                continue
            version = h.version if h.version is not None else cur.version - 1
            return current, ReleaseView(version, h.image, h.first_seen)
        return current, None

    async def _suspended(self, app: str, now: float) -> str | None:
        try:
            silences = await self.store.active_silences(now)
        except Exception:
            return None
        for s in silences:
            if s.suspend_mitigation and s.matches(app):
                return (f"silence #{s.id} by {s.author} ({s.reason}) until "
                        f"{_iso(s.ends_at)}")
        return None

    # -- records -------------------------------------------------------------------------------

    def _recorded_keys(self, incident_id: str, history: Sequence[ActionRecord]) -> set[str]:
        if incident_id not in self._recorded and len(self._recorded) >= 64:
            del self._recorded[next(iter(self._recorded))]  # the oldest incident's; the store
            # still has its records, read back if it is ever considered again
        keys = self._recorded.setdefault(incident_id, set())
        for a in history:
            if a.outcome in (Outcome.VETOED, Outcome.DRY_RUN) or a.kind is ActionKind.PAGE:
                keys.add(str(a.detail.get("key")))
        return keys

    async def _once(self, inc: Incident, step: Step, outcome: Outcome, verdict: Verdict,
                    recorded: set[str], now: float) -> None:
        """Record (and page) a veto, a dry-run or a page-only step once per incident."""
        key = f"{step.key}:{outcome.value}:{verdict.guard or ''}"
        if key in recorded:
            return
        recorded.add(key)
        text = step.text if outcome is not Outcome.VETOED else (
            f"not done: {step.text}. Vetoed: {verdict.text}")
        if outcome is Outcome.DRY_RUN:
            text = f"dry-run, would have done: {step.text}"
        rec = ActionRecord(id=None, app=inc.app, incident_id=inc.id, kind=step.kind,
                           target=step.target, reason=step.why.value, text=text,
                           outcome=outcome, at=now, ended_at=now,
                           guard=verdict.guard.value if verdict.guard else None,
                           detail={"key": key, **step.params, **verdict.evidence})
        try:
            rec = await self.store.add_action(rec)
        except Exception as e:
            log.error("action_not_recorded", app=inc.app, error=type(e).__name__,
                      detail=str(e))
            return
        if step.kind.touches_fly:
            self.metrics.actions.labels(inc.app, step.kind.value, outcome.value).inc()
        event = {Outcome.VETOED: "step_vetoed", Outcome.DRY_RUN: "step_dry_run"}.get(
            outcome, "person_needed")
        log.warning(event, app=inc.app, incident_id=inc.id, action=step.kind.value,
                    target=step.target, why=step.why.value, text=text,
                    guard=verdict.guard.value if verdict.guard else None)
        page = "vetoed" if outcome is Outcome.VETOED else "action"
        await self.pipeline.record_action(inc.app, inc.id, rec, now, page=page)

    async def _launch(self, state: Any, inc: Incident, step: Step, now: float) -> None:
        rec = ActionRecord(id=None, app=inc.app, incident_id=inc.id, kind=step.kind,
                           target=step.target, reason=step.why.value, text=step.text,
                           outcome=Outcome.STARTED, at=now,
                           detail={"key": step.key, **step.params})
        try:
            rec = await self.store.add_action(rec)  # before anything is sent to Fly
        except Exception as e:
            log.error("action_not_recorded", app=inc.app, error=type(e).__name__,
                      detail=str(e))
            return
        log.warning("action_started", app=inc.app, incident_id=inc.id, action=step.kind.value,
                    target=step.target, why=step.why.value, text=step.text)
        await self.pipeline.record_action(inc.app, inc.id, rec, now, page=None)
        self._start_task(inc.app, step, rec)

    def _start_task(self, app: str, step: Step, rec: ActionRecord) -> None:
        self.metrics.action_in_progress.labels(app).set(1)
        self.tasks[app] = asyncio.create_task(self._run(step, rec),
                                              name=f"action:{app}:{step.kind.value}")

    async def _run(self, step: Step, rec: ActionRecord) -> None:
        assert self.client is not None and rec.id is not None
        action_id = rec.id

        async def progress(detail: dict[str, Any]) -> None:
            try:
                await self.store.end_action(action_id, Outcome.STARTED, self.clock.timestamp(),
                                            detail)
            except Exception as e:
                log.warning("action_progress_not_saved", app=rec.app, error=type(e).__name__)

        ctx = ActionContext(self.client, self.clock, self.cfg, rec.app, dict(rec.detail),
                            progress)
        try:
            result = await EXECUTORS[step.kind](step, ctx)
        except asyncio.CancelledError:
            raise  # shutdown: the record stays "started" and is checked on the next start
        except Exception as e:  # a bug must not take the daemon down; it is recorded
            log.exception("action_crashed", app=rec.app, action=step.kind.value)
            result = ActionResult(Outcome.FAILED, f"{step.kind.value} of {step.target} failed: "
                                  f"internal error {type(e).__name__}", dict(ctx.detail))
        await self._finish(rec, result)

    async def _finish(self, rec: ActionRecord, result: ActionResult) -> None:
        now = self.clock.timestamp()
        detail = {**rec.detail, **result.detail, "result": result.text,
                  "crashed_again": result.crashed_again}
        done = dataclasses.replace(rec, outcome=result.outcome, ended_at=now, detail=detail)
        try:
            assert rec.id is not None
            await self.store.end_action(rec.id, result.outcome, now, detail)
        except Exception as e:
            log.error("action_end_not_recorded", app=rec.app, error=type(e).__name__,
                      detail=str(e))
        self.metrics.action_in_progress.labels(rec.app).set(0)
        self.metrics.actions.labels(rec.app, rec.kind.value, result.outcome.value).inc()
        if result.outcome is Outcome.DEFERRED:
            self._backoff[rec.app] = now + self.cfg.lease_backoff_s
        elif rec.incident_id is not None:
            # Runbook SEV-2: "monitor recovery, check" -- the action's own check failing is
            # that check failing; otherwise look again recovery_check_s later.
            failed = result.outcome is Outcome.FAILED and rec.kind.touches_fly
            self._recovery_due[rec.incident_id] = now if failed else \
                now + self.cfg.recovery_check_s
        level = "info" if result.outcome is Outcome.OK else "error"
        getattr(log, level)("action_ended", app=rec.app, incident_id=rec.incident_id,
                            action=rec.kind.value, target=rec.target,
                            outcome=result.outcome.value, text=result.text,
                            took_s=round(now - rec.at, 1))
        if rec.incident_id is not None:  # a deferral is timeline and log, not a page
            page = None if result.outcome is Outcome.DEFERRED else "action"
            await self.pipeline.record_action(rec.app, rec.incident_id, done, now, page=page)
        await self.pipeline.refresh_machines(rec.app)

    # -- escalation ----------------------------------------------------------------------------

    async def _recovery_check(self, state: Any, inc: Incident, a: Assessment,
                              history: Sequence[ActionRecord], now: float) -> None:
        """Runbook SEV-2 step 5: not resolved after the mitigation -> SEV-1."""
        due = self._recovery_due.get(inc.id)
        if due is None or now < due:
            return
        if inc.severity is not Severity.SEV2 or a.severity is None:
            self._recovery_due.pop(inc.id, None)
            return
        self._recovery_due.pop(inc.id, None)
        tried = [x for x in history if x.kind.touches_fly
                 and x.outcome in (Outcome.OK, Outcome.FAILED)]
        if not tried:
            return
        last = tried[-1]
        reasons = {f.reason for f in a.findings if f.severity.rank >= Severity.SEV2.rank}
        if reasons == {Reason.OOM_KILLS_MULTIPLE}:
            views = self._machines(state, now)
            after = last.ended_at or last.at
            if not any(v.last_oom_at is not None and v.last_oom_at > after for v in views):
                return  # the kills counted are from before the fix; none since
        if last.outcome is Outcome.FAILED:
            reason = (f"SEV-2 not resolved: its mitigation failed ({last.kind.value} of "
                      f"{last.target}: {last.detail.get('result') or last.text}); escalated to "
                      "SEV-1 per runbook")
        else:
            reason = (f"SEV-2 not resolved {self.cfg.recovery_check_s:.0f} s after the "
                      f"mitigation ({last.kind.value} of {last.target}: ok); escalated to "
                      "SEV-1 per runbook")
        await self.pipeline.escalate(inc.app, inc.id, Severity.SEV1, reason, now)


def _running_image(state: Any) -> tuple[str | None, int | None]:
    """The one image every started app machine runs, and its release version if known."""
    report = state.machines
    if report is None or not report.machines:
        return None, None
    started = [m for m in report.machines if m.is_app_machine and not m.is_standby
               and m.state == "started"]
    images = {m.image for m in started if m.image}
    if len(images) != 1:
        return None, None
    image = images.pop()
    version: int | None = None
    rel = state.releases
    if rel is not None:
        for r in (rel.current, rel.previous):
            if r is not None and r.image_ref == image:
                version = r.version
    if version is None:
        tags = {m.release_version for m in started if m.release_version}
        if len(tags) == 1:
            try:
                version = int(tags.pop() or "")
            except ValueError:
                version = None
    return image, version


def _why(rec: ActionRecord) -> Why:
    """The reason a stored step was planned for (records of an older version: no_safe_action)."""
    try:
        return Why(rec.reason)
    except ValueError:
        return Why.NO_SAFE_ACTION


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
