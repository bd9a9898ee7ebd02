"""The runbook's Phase 2 ("Immediate Mitigation") as a pure function: situation in, plan out.

``plan(situation, settings, recent_release_s)`` returns an ordered ``Plan`` of ``Step`` values;
it never calls Fly. The guards (``guards.py``) may veto each step, and the pipeline carries out
the first step that passes them, one at a time per app.

The table (the runbook's Scenarios 1-5; README.md, "What the watcher does by itself", says the
same for operators):

* an operator or inbound alert (data corruption, breach) -> page: a person decides.
* a dependency failure (the logs point at Supabase, OpenAI, upstream timeouts) -> page, never
  restart: restarts do not mend a dependency.
* OOM kills: several -> raise the affected machines' memory one step (within the cap); a single
  one -> record and watch (SEV-3).
* machines stopped after a crash -> start them one at a time. If a machine came back and crashed
  again (after our start, or Fly's supervisor restarted it) and a release was deployed recently
  -> roll back; without a recent release -> page: restarts do not hold.
* high error rate, or started machines whose own checks fail: soon after a release -> roll back;
  otherwise restart only the machines whose own checks fail; none -> page.
* high latency -> start a stopped spare machine (scale out), else raise memory within the cap.
* auto-scaling misbehaving -> record and page at SEV-3; start one machine when requests fail
  while every machine is stopped.
* scale to zero is never planned unless ``allow_scale_to_zero``; a SEV-1 with nothing left to
  try proposes it in the page instead.

Every step carries a ``Why`` (a bounded reason, also in records and logs) and a sentence a
person can read at night.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hotdash_watch.config.sections import MitigationSettings
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.findings import Reason
from hotdash_watch.model.severity import Severity

__all__ = ["MachineView", "Plan", "ReleaseView", "Situation", "Step", "Why", "next_memory_mb",
           "plan"]

#: Machine states that mean "stopped" (a start brings them back).
STOPPED = frozenset({"stopped", "suspended", "failed", "created"})

_ERRORS = frozenset({Reason.ERROR_RATE_CRITICAL, Reason.ERROR_RATE_MAJOR,
                     Reason.ERROR_RATE_MINOR})
_LATENCY = frozenset({Reason.LATENCY_MAJOR, Reason.LATENCY_MINOR})
_OUTAGE = frozenset({Reason.ALL_MACHINES_DOWN, Reason.PARTIAL_OUTAGE})


class Why(StrEnum):
    """Why a step is in the plan."""

    MACHINE_DOWN = "machine_down"
    CRASHED_AFTER_RELEASE = "crashed_again_after_release"
    ERRORS_AFTER_RELEASE = "errors_after_release"
    CHECKS_FAILING = "own_checks_failing"
    DEPENDENCY = "dependency_failure"
    RESTARTS_DO_NOT_HOLD = "restarts_do_not_hold"
    NO_SAFE_ACTION = "no_safe_action"
    LATENCY_SCALE_OUT = "latency_scale_out"
    LATENCY_MEMORY = "latency_memory"
    OOM_MEMORY = "oom_kills_memory"
    OOM_WATCH = "oom_kill_single_watch"
    MEMORY_AT_CAP = "memory_at_cap"
    AUTOSCALING = "autoscaling_misbehaving"
    AUTOSCALING_START = "autoscaling_start_one"
    OPERATOR_SIGNAL = "operator_signal"
    SCALE_TO_ZERO = "scale_to_zero_last_resort"


@dataclass(frozen=True, slots=True)
class MachineView:
    """One machine as the policy and the guards see it (from the Machines API poll).

    ``healthy``: started and its checks pass; ``down``: should serve but does not; ``idle``:
    stopped by Fly's autostop on purpose; ``fly_restarts``: restarts Fly's supervisor made in
    the budget window; ``oom_kills``: OOM kills in the window.
    """

    id: str
    state: str
    healthy: bool = True
    down: bool = False
    idle: bool = False
    standby: bool = False
    image: str = ""
    memory_mb: int = 0
    cpu_kind: str = "shared"
    cpus: int = 1
    oom_kills: int = 0
    fly_restarts: int = 0
    last_oom_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    version: int
    image: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Situation:
    """What the policy reads: the assessment's reasons, the incident, machines, releases and
    what was already tried in this incident (``history``)."""

    app: str
    now: float
    severity: Severity
    reasons: frozenset[Reason]
    opened_at: float
    machines: tuple[MachineView, ...] = ()
    current: ReleaseView | None = None
    rollback_to: ReleaseView | None = None  # newest earlier release known healthy
    dependency_hints: tuple[str, ...] = ()
    history: tuple[ActionRecord, ...] = ()
    watcher_side: bool = False
    busy: bool = False  # an action is running on the app now

    def settling(self, quiet_s: float) -> bool:
        """An action runs, ended less than ``quiet_s`` ago, or a machine is in flux: what the
        signals show may be the tail of a fix, not a new problem."""
        if self.busy or any(m.state not in ("started", *STOPPED) for m in self.machines):
            return True
        ended = [a.ended_at or a.at for a in self.history if a.kind.touches_fly
                 and a.outcome in (Outcome.STARTED, Outcome.OK, Outcome.FAILED)]
        return bool(ended) and self.now - max(ended) < quiet_s


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to do, on one target (a machine id, or the app for app-wide steps)."""

    kind: ActionKind
    target: str
    why: Why
    text: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identifies the step across passes (veto and page records are kept once per key)."""
        extra = self.params.get("memory_mb") or self.params.get("version") or ""
        return f"{self.kind.value}:{self.target}:{self.why.value}:{extra}"


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.steps)

    @property
    def actions(self) -> tuple[Step, ...]:
        """The steps that change something on Fly (not the pages)."""
        return tuple(s for s in self.steps if s.kind.touches_fly)


def next_memory_mb(current: int, cpu_kind: str, cpus: int, factor: float,
                   cap_mb: int) -> int | None:
    """The next memory size for a machine: ``current * factor`` rounded up to what Fly accepts
    for its CPU kind (shared: multiples of 256 MB, performance: of 1024 MB), never above
    ``cap_mb`` nor the CPU's maximum. ``None`` when there is no room left."""
    unit, per_cpu_max = (1024, 8192) if cpu_kind == "performance" else (256, 2048)
    ceiling = min(cap_mb, per_cpu_max * max(1, cpus))
    ceiling -= ceiling % unit
    wanted = math.ceil(max(current, 1) * factor / unit) * unit
    new = min(wanted, ceiling)
    return new if new > current else None


def _tried(history: Iterable[ActionRecord], kind: ActionKind, target: str | None = None
           ) -> list[ActionRecord]:
    """Steps of ``kind`` that reached Fly. A dry-run's "would have done" changed nothing, so
    the plan stays what it was (and its record, kept once, is not repeated)."""
    return [a for a in history if a.kind is kind and (target is None or a.target == target)
            and a.outcome in (Outcome.STARTED, Outcome.OK, Outcome.FAILED)]


def _crashed_again(s: Situation) -> list[str]:
    """Machines that came back and crashed again: after our start/restart, or under Fly's
    own supervisor restarts."""
    ours = {a.target for a in s.history if a.is_restart and a.outcome is Outcome.FAILED
            and a.detail.get("crashed_again")}
    fly = {m.id for m in s.machines if m.down and m.fly_restarts > 0}
    return sorted(ours | fly)


def _release_recent(s: Situation, recent_release_s: float) -> bool:
    """A release was deployed before the incident opened, and not long before."""
    if s.current is None:
        return False
    age = s.opened_at - s.current.created_at
    return 0 <= age <= recent_release_s


def _rollback(s: Situation, why: Why, evidence: str) -> Step:
    cur = s.current
    to = s.rollback_to
    assert cur is not None
    if to is None:
        text = (f"roll back from v{cur.version}: {evidence}; no earlier release is known "
                "healthy")
        return Step(ActionKind.ROLLBACK, s.app, why, text,
                    {"from_version": cur.version, "from_image": cur.image})
    text = (f"roll back v{cur.version} -> v{to.version} ({evidence}); one machine at a time. "
            "The rollback keeps today's config and secrets, and the next deploy rolls "
            "forward again")
    return Step(ActionKind.ROLLBACK, s.app, why, text,
                {"version": to.version, "image": to.image, "from_version": cur.version,
                 "from_image": cur.image})


def _page(s: Situation, why: Why, text: str) -> Step:
    return Step(ActionKind.PAGE, s.app, why, text)


def _memory_steps(s: Situation, machines: Iterable[MachineView], why: Why, because: str,
                  settings: MitigationSettings) -> list[Step]:
    steps: list[Step] = []
    at_cap: list[str] = []
    for m in machines:
        new = next_memory_mb(m.memory_mb, m.cpu_kind, m.cpus, settings.memory_factor,
                             settings.memory_cap_mb)
        if new is None:
            at_cap.append(m.id)
            continue
        steps.append(Step(
            ActionKind.RAISE_MEMORY, m.id, why,
            f"raise memory of {m.id} {m.memory_mb} -> {new} MB ({because}). The raise lasts "
            f"until the next deploy: set `[[vm]] memory = \"{new}mb\"` in the app's fly.toml "
            "to keep it",
            {"memory_mb": new, "from_mb": m.memory_mb}))
    if at_cap and not steps:
        steps.append(_page(s, Why.MEMORY_AT_CAP,
                           f"{because}, but memory of {', '.join(at_cap)} is already at the "
                           f"cap ({settings.memory_cap_mb} MB, mitigation.memory_cap_mb): a "
                           "person must look for the leak or raise the cap"))
    return steps


def _restart_step(m: MachineView, why: Why, because: str) -> Step:
    if m.state in STOPPED:
        return Step(ActionKind.START, m.id, why, f"start {m.id} ({because})")
    return Step(ActionKind.RESTART, m.id, why, f"restart {m.id} ({because})")


def _last_resort(s: Situation, settings: MitigationSettings) -> list[Step]:
    if s.severity is not Severity.SEV1:
        return []
    if settings.allow_scale_to_zero:
        return [Step(ActionKind.STOP, m.id, Why.SCALE_TO_ZERO,
                     f"stop {m.id}: scale to zero as the last resort (allow_scale_to_zero)")
                for m in s.machines if m.state == "started" and not m.standby]
    return [_page(s, Why.SCALE_TO_ZERO,
                  "proposal, not done: if the failure cascades into other services, scale to "
                  f"zero as the last resort (`fly scale count 0 -a {s.app}`; takes the service "
                  "offline; mitigation.allow_scale_to_zero lets the watcher do it)")]


def plan(s: Situation, settings: MitigationSettings, recent_release_s: float) -> Plan:
    """The ordered steps for ``s``; an empty plan when there is nothing to do or it is not ours
    to do (watcher-side)."""
    if s.watcher_side:
        return Plan()
    reasons = s.reasons
    steps: list[Step] = []
    if Reason.OPERATOR_SIGNAL in reasons:
        return Plan((_page(s, Why.OPERATOR_SIGNAL,
                           "an operator or inbound alert raised this incident (e.g. data "
                           "corruption or a breach): no automatic action, a person decides"),))

    failing = bool(reasons & (_ERRORS | _OUTAGE))
    if s.dependency_hints and failing:
        hints = ", ".join(s.dependency_hints)
        return Plan((_page(s, Why.DEPENDENCY,
                           f"the logs point at a dependency ({hints}): paged, not restarted "
                           "(restarts do not mend a dependency; check its status, keys and "
                           "network)"),))

    recent = _release_recent(s, recent_release_s)
    rolled_back = bool(_tried(s.history, ActionKind.ROLLBACK))
    serving = [m for m in s.machines if not m.standby]
    oom_multiple = Reason.OOM_KILLS_MULTIPLE in reasons
    oom_machines = [m for m in serving if m.oom_kills > 0]

    # OOM kills first: a restart would only be killed again.
    if oom_multiple:
        raised = {a.target: a.ended_at or a.at for a in s.history
                  if a.kind is ActionKind.RAISE_MEMORY and a.outcome is Outcome.OK}
        # A machine whose memory was raised is raised again only if it was killed since.
        targets = sorted((m for m in oom_machines or [m for m in serving if m.state == "started"]
                          if m.id not in raised
                          or (m.last_oom_at is not None and m.last_oom_at > raised[m.id])),
                         key=lambda m: (m.healthy, m.id))  # the ones out of service first
        steps += _memory_steps(s, targets, Why.OOM_MEMORY, "repeated OOM kills", settings)
    elif Reason.OOM_KILL_SINGLE in reasons and not _tried(s.history, ActionKind.RAISE_MEMORY):
        steps.append(_page(s, Why.OOM_WATCH, "a single OOM kill: recorded and watched "
                           "(runbook SEV-3); several would raise memory"))
    skip = {m.id for m in oom_machines} if oom_multiple else set()

    stopped = [m for m in serving if m.down and not m.idle and m.state in STOPPED
               and m.id not in skip]
    unhealthy = [m for m in serving if m.down and m.state == "started" and m.id not in skip]
    crashed = _crashed_again(s)

    if stopped and crashed and recent and not rolled_back and s.rollback_to is not None:
        # Restarting a bad release only crashes it again: the release is the suspect.
        steps.append(_rollback(s, Why.CRASHED_AFTER_RELEASE,
                               f"{', '.join(crashed)} crashed again after a restart, "
                               "soon after a release"))
        return Plan(tuple(steps))
    if stopped and crashed and recent and not rolled_back:
        steps.append(_rollback(s, Why.CRASHED_AFTER_RELEASE,
                               f"{', '.join(crashed)} crashed again after a restart, "
                               "soon after a release"))  # vetoed and paged: no target known
    if stopped:
        if crashed:
            why = ("the recent release is the suspect, but no earlier release is known healthy"
                   if recent else "no recent release explains it")
            steps.append(_page(s, Why.RESTARTS_DO_NOT_HOLD,
                               f"{', '.join(crashed)} crashed again after a restart and {why}: "
                               "restarts do not hold; a person is needed"))
        order = sorted(stopped, key=lambda m: (m.id in crashed, m.id))
        steps += [_restart_step(m, Why.MACHINE_DOWN, f"{m.state}, should be serving")
                  for m in order]

    no_safe = False
    if unhealthy or (reasons & _ERRORS and not stopped):
        planned = any(st.kind is ActionKind.ROLLBACK for st in steps)  # one per plan
        if recent and not rolled_back and not planned and s.current is not None:
            what = "errors began" if reasons & _ERRORS else "machines fail their checks"
            steps.append(_rollback(s, Why.ERRORS_AFTER_RELEASE,
                                   f"{what} soon after release v{s.current.version}"))
            if s.rollback_to is not None:
                return Plan(tuple(steps))
            # No release known healthy: the rollback is vetoed (and paged); restarts follow.
        steps += [_restart_step(m, Why.CHECKS_FAILING, "its own checks fail")
                  for m in unhealthy]
        no_safe = not unhealthy and not stopped and not s.settling(settings.recovery_check_s)

    if reasons & _LATENCY and not (stopped or unhealthy):
        spare = [m for m in serving if m.state in STOPPED and not m.down]
        if spare:
            m = spare[0]
            steps.append(Step(ActionKind.SCALE_OUT, m.id, Why.LATENCY_SCALE_OUT,
                              f"start spare machine {m.id} for capacity (high latency)"))
        else:
            # Once per machine and incident (and never twice in one plan): a raise that did not
            # cure the latency is no reason for another.
            raised = {a.target for a in _tried(s.history, ActionKind.RAISE_MEMORY)}
            planned = {st.target for st in steps if st.kind is ActionKind.RAISE_MEMORY}
            started = [m for m in serving if m.state == "started" and m.id not in skip
                       and m.id not in raised and m.id not in planned]
            steps += _memory_steps(s, started, Why.LATENCY_MEMORY, "high latency", settings)

    if Reason.AUTOSCALING in reasons:
        idle = [m for m in serving if m.idle]
        all_stopped = bool(serving) and all(m.state in STOPPED for m in serving)
        if all_stopped and idle and failing:
            steps.append(Step(ActionKind.START, idle[0].id, Why.AUTOSCALING_START,
                              f"start {idle[0].id}: requests fail while every machine is "
                              "stopped (autostart is not starting them)"))
        steps.append(_page(s, Why.AUTOSCALING,
                           "auto-scaling misbehaving: recorded (SEV-3); check fly.toml "
                           "auto_stop_machines / auto_start_machines and redeploy"))

    if no_safe and not any(st.kind.touches_fly for st in steps):
        steps.append(_page(s, Why.NO_SAFE_ACTION,
                           "errors while every machine passes its own checks and no recent "
                           "release explains them: restarting healthy machines is not a safe "
                           "first step; a person is needed"))
    worked = any(a.kind.touches_fly and a.outcome is Outcome.OK for a in s.history)
    if (s.severity is Severity.SEV1 and not any(st.kind.touches_fly for st in steps)
            and not worked and not s.settling(settings.recovery_check_s)):
        steps += _last_resort(s, settings)  # nothing left to try, nothing has helped
    return Plan(tuple(steps))
