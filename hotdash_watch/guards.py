"""Guards: a pure chain that may veto each planned step, so a wrong decision stays cheap.

A guard is a callable ``(step, context) -> Verdict``; ``check`` runs ``GUARDS`` in order, like
structlog's processor chain, and returns the first verdict that is not ALLOW. Verdicts:

* ``ALLOW`` - go ahead;
* ``DRY_RUN`` - plan and record "would have done", change nothing (the last guard);
* ``DEFER`` - not now (an action is already running on the app, the target is cooling down, too
  many machines are out of service, a deploy holds a lease): planned again on a later pass;
* ``VETO`` - not this step: recorded with its reason and paged once per incident.

Guards, all on by default and configured under ``[mitigation]``: the allow-list of action kinds
(runbook Level-1 authority: restart, start, rollback), a silence that suspends mitigation, one
action at a time per app, a lease held by someone else (back off), cooldown per target, the
restart budget per machine and per app (Fly's own supervisor restarts included: a crash loop
stops and pages, as Monit and CrashLoopBackOff do), the blast radius (never more than a
fraction of the machines out of service at once, never the last healthy machine), rollback at
most once per incident and only to a release known healthy, never back to the one just left.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hotdash_watch.config.sections import MitigationSettings
from hotdash_watch.model.action import RESTARTS, ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import MachineView, Step

__all__ = ["GUARDS", "Decision", "Guard", "GuardContext", "GuardName", "Verdict", "check"]


class Decision(StrEnum):
    ALLOW = "allow"
    DRY_RUN = "dry_run"
    DEFER = "defer"
    VETO = "veto"


class GuardName(StrEnum):
    """Which guard decided; recorded with vetoes and deferrals."""

    ALLOW_LIST = "allowed_actions"
    SUSPENDED = "mitigation_suspended"
    ONE_AT_A_TIME = "one_action_per_app"
    LEASE = "lease_held_elsewhere"
    COOLDOWN = "cooldown"
    MACHINE_BUDGET = "restart_budget_machine"
    APP_BUDGET = "restart_budget_app"
    BLAST_RADIUS = "blast_radius"
    LAST_HEALTHY = "last_healthy_machine"
    ROLLBACK_ONCE = "rollback_once_per_incident"
    ROLLBACK_TARGET = "rollback_target_unknown"
    DRY_RUN = "dry_run"


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    guard: GuardName | None = None
    text: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


ALLOW = Verdict(Decision.ALLOW)


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What the guards read. ``app_history``: the app's actions in the budget window (every
    incident); ``incident_history``: this incident's; ``busy``: an action runs on the app now;
    ``suspended``: why mitigation is suspended (a silence), if it is."""

    now: float
    settings: MitigationSettings
    dry_run: bool = False
    machines: tuple[MachineView, ...] = ()
    app_history: tuple[ActionRecord, ...] = ()
    incident_history: tuple[ActionRecord, ...] = ()
    busy: bool = False
    suspended: str | None = None
    lease_backoff_until: float | None = None
    current_version: int | None = None

    def machine(self, machine_id: str) -> MachineView | None:
        return next((m for m in self.machines if m.id == machine_id), None)


Guard = Callable[[Step, GuardContext], Verdict]

_TOOK_EFFECT = (Outcome.STARTED, Outcome.OK, Outcome.FAILED)
_DISRUPTIVE = frozenset({ActionKind.RESTART, ActionKind.STOP, ActionKind.RAISE_MEMORY})


def allow_list(step: Step, ctx: GuardContext) -> Verdict:
    kind = step.kind
    if kind is ActionKind.PAGE:
        return ALLOW
    if kind is ActionKind.STOP and not ctx.settings.allow_scale_to_zero:
        return Verdict(Decision.VETO, GuardName.ALLOW_LIST,
                       "stopping machines (scale to zero) needs "
                       "mitigation.allow_scale_to_zero = true")
    if kind.value not in ctx.settings.allowed_actions:
        return Verdict(Decision.VETO, GuardName.ALLOW_LIST,
                       f"{kind.value} is not in mitigation.allowed_actions "
                       f"({', '.join(ctx.settings.allowed_actions) or 'empty'}); add it to let "
                       "the watcher do this itself",
                       {"allowed_actions": list(ctx.settings.allowed_actions)})
    return ALLOW


def suspended(step: Step, ctx: GuardContext) -> Verdict:
    if ctx.suspended and step.kind.touches_fly:
        return Verdict(Decision.VETO, GuardName.SUSPENDED,
                       f"mitigation is suspended: {ctx.suspended}")
    return ALLOW


def one_at_a_time(step: Step, ctx: GuardContext) -> Verdict:
    if ctx.busy and step.kind.touches_fly:
        return Verdict(Decision.DEFER, GuardName.ONE_AT_A_TIME,
                       "another action is running on this app")
    return ALLOW


def lease_backoff(step: Step, ctx: GuardContext) -> Verdict:
    until = ctx.lease_backoff_until
    if until is not None and ctx.now < until and step.kind.touches_fly:
        return Verdict(Decision.DEFER, GuardName.LEASE,
                       "someone else (a deploy?) held a machine's lease: waiting "
                       f"{until - ctx.now:.0f} s more before acting",
                       {"until": until})
    return ALLOW


def cooldown(step: Step, ctx: GuardContext) -> Verdict:
    if not step.kind.touches_fly:
        return ALLOW
    window = ctx.settings.cooldown_s
    same = [a for a in ctx.app_history if a.target == step.target and a.kind.touches_fly
            and a.outcome in _TOOK_EFFECT]
    if not same:
        return ALLOW
    last = max(a.ended_at or a.at for a in same)
    if ctx.now - last < window:
        return Verdict(Decision.DEFER, GuardName.COOLDOWN,
                       f"{step.target} was acted on {ctx.now - last:.0f} s ago (cooldown "
                       f"{window:.0f} s)", {"last_action_at": last})
    return ALLOW


def _ours(history: Sequence[ActionRecord], target: str | None = None) -> int:
    return sum(1 for a in history if a.kind in RESTARTS and a.outcome in _TOOK_EFFECT
               and (target is None or a.target == target))


def restart_budget(step: Step, ctx: GuardContext) -> Verdict:
    if step.kind not in RESTARTS:
        return ALLOW
    cfg = ctx.settings
    hours = cfg.budget_window_s / 3600
    span = f"{hours:g} h" if hours >= 1 else f"{cfg.budget_window_s / 60:g} min"
    m = ctx.machine(step.target)
    fly_m = m.fly_restarts if m is not None else 0
    ours_m = _ours(ctx.app_history, step.target)
    if ours_m + fly_m >= cfg.restart_budget_machine:
        return Verdict(Decision.VETO, GuardName.MACHINE_BUDGET,
                       f"restart budget of {step.target} exhausted: {ours_m + fly_m} restarts "
                       f"in the last {span} ({ours_m} by the watcher, {fly_m} by Fly's "
                       f"supervisor), budget {cfg.restart_budget_machine}; the restart loop "
                       "stops here",
                       {"watcher": ours_m, "fly": fly_m, "budget": cfg.restart_budget_machine})
    fly_app = sum(x.fly_restarts for x in ctx.machines)
    ours_app = _ours(ctx.app_history)
    if ours_app + fly_app >= cfg.restart_budget_app:
        return Verdict(Decision.VETO, GuardName.APP_BUDGET,
                       f"restart budget of the app exhausted: {ours_app + fly_app} restarts in "
                       f"the last {span} ({ours_app} by the watcher, {fly_app} by Fly's "
                       f"supervisor), budget {cfg.restart_budget_app}",
                       {"watcher": ours_app, "fly": fly_app, "budget": cfg.restart_budget_app})
    return ALLOW


def blast_radius(step: Step, ctx: GuardContext) -> Verdict:
    """A step that takes a serving machine out of service: never the last healthy one, never
    more than ``max_unavailable_fraction`` of the machines out at once."""
    if step.kind not in _DISRUPTIVE:
        return ALLOW
    m = ctx.machine(step.target)
    if m is None or not m.healthy:
        return ALLOW  # it serves nothing now: acting on it costs no capacity
    serving = [x for x in ctx.machines if not x.standby and not x.idle]  # idle: by design
    healthy = sum(1 for x in serving if x.healthy)
    if healthy - 1 < 1:
        return Verdict(Decision.VETO, GuardName.LAST_HEALTHY,
                       f"{step.target} is the last healthy machine: a {step.kind.value} would "
                       "take the app down", {"healthy": healthy, "total": len(serving)})
    out_now = len(serving) - healthy
    allowed = max(1, math.floor(ctx.settings.max_unavailable_fraction * len(serving)))
    if out_now + 1 > allowed:
        return Verdict(Decision.DEFER, GuardName.BLAST_RADIUS,
                       f"{out_now} of {len(serving)} machines are already out of service; "
                       f"{step.kind.value} of {step.target} would make {out_now + 1} "
                       f"(at most {allowed}: mitigation.max_unavailable_fraction "
                       f"{ctx.settings.max_unavailable_fraction:g})",
                       {"out": out_now, "total": len(serving), "allowed": allowed})
    return ALLOW


def rollback_once(step: Step, ctx: GuardContext) -> Verdict:
    if step.kind is not ActionKind.ROLLBACK:
        return ALLOW
    done = [a for a in ctx.incident_history if a.kind is ActionKind.ROLLBACK
            and a.outcome in _TOOK_EFFECT]  # a dry-run's rollback changed nothing
    if done:
        return Verdict(Decision.VETO, GuardName.ROLLBACK_ONCE,
                       f"a rollback was already tried in this incident "
                       f"({done[0].outcome.value}); a second one is a person's decision")
    return ALLOW


def rollback_target(step: Step, ctx: GuardContext) -> Verdict:
    if step.kind is not ActionKind.ROLLBACK:
        return ALLOW
    version = step.params.get("version")
    if not step.params.get("image") or version is None:
        return Verdict(Decision.VETO, GuardName.ROLLBACK_TARGET,
                       "no earlier release is known to have been healthy while it ran (the "
                       "watcher keeps a health record per release): not rolling back blind")
    left = {a.detail.get("from_version") for a in ctx.app_history
            if a.kind is ActionKind.ROLLBACK and a.outcome in _TOOK_EFFECT}
    if version == ctx.current_version or version in left:
        return Verdict(Decision.VETO, GuardName.ROLLBACK_TARGET,
                       f"v{version} is the release just rolled back from (or the current one)")
    return ALLOW


def dry_run(step: Step, ctx: GuardContext) -> Verdict:
    if ctx.dry_run and step.kind.touches_fly:
        return Verdict(Decision.DRY_RUN, GuardName.DRY_RUN, f"dry-run: would {step.text}")
    return ALLOW


#: The chain, in order: vetoes that concern the step itself come before "not now".
GUARDS: tuple[Guard, ...] = (allow_list, suspended, rollback_once, rollback_target,
                             restart_budget, blast_radius, one_at_a_time, lease_backoff,
                             cooldown, dry_run)


def check(step: Step, ctx: GuardContext, guards: Sequence[Guard] = GUARDS) -> Verdict:
    """The first verdict in ``guards`` that is not ALLOW, else ALLOW."""
    for guard in guards:
        verdict = guard(step, ctx)
        if not verdict.allowed:
            return verdict
    return ALLOW
