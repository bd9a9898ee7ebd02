"""What every action shares: its context, its result, and the wait for a machine's health.

An action changes one thing on Fly under the machine's lease, then confirms it the way flyctl
does: ``wait`` for the state, then the machine's own checks, then a settle period with no new
exit (a bad image crashes again seconds after it starts). Fly errors never
escape: they become an ``ActionResult`` with the essentials of the answer.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotdash_watch.clock import Clock
from hotdash_watch.config.sections import MitigationSettings
from hotdash_watch.fly import FlyClient, FlyError, LeaseHeld, Machine
from hotdash_watch.fly.errors import FlyNotFound, FlyUnauthorized, FlyUnavailable
from hotdash_watch.model.action import Outcome
from hotdash_watch.policy import Step

__all__ = ["Action", "ActionContext", "ActionResult", "Health", "failure", "wait_healthy"]

#: How often a machine is re-read while waiting for it to be healthy (clock seconds).
POLL_S = 2.0


@dataclass
class ActionContext:
    """What an action needs. ``detail`` is the record's detail so far (a resumed rollback's
    progress); ``progress`` persists a new detail before the action goes on."""

    client: FlyClient
    clock: Clock
    settings: MitigationSettings
    app: str
    detail: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    async def save(self, **changes: Any) -> None:
        self.detail.update(changes)
        if self.progress is not None:
            await self.progress(copy.deepcopy(self.detail))

    def call(self, call: str, machine: str, result: str, **extra: Any) -> None:
        """Remember the essentials of one Fly call in the record's detail."""
        self.detail.setdefault("calls", []).append(
            {"call": call, "machine": machine, "result": result, **extra})


@dataclass(frozen=True, slots=True)
class ActionResult:
    outcome: Outcome
    text: str
    detail: dict[str, Any] = field(default_factory=dict)
    crashed_again: bool = False


class Action(Protocol):
    """Carry out one step; never raises for a Fly error (it is the result)."""

    async def __call__(self, step: Step, ctx: ActionContext) -> ActionResult: ...


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    text: str
    crashed_again: bool = False


def failure(step: Step, ctx: ActionContext, exc: FlyError, *,
            machine: str | None = None) -> ActionResult:
    """The result for a Fly error: deferred when someone else holds the lease, else failed.
    ``machine`` names the machine an app-wide step (a rollback) was working on."""
    target = machine or step.target
    what = f"{step.kind.value} of {target}"
    ctx.call(exc.call if getattr(exc, "call", None) else step.kind.value, target,
             type(exc).__name__, status=exc.status)
    if isinstance(exc, LeaseHeld):
        owner = getattr(exc, "owner", None) or "someone else"
        return ActionResult(Outcome.DEFERRED,
                            f"{what} not done: {owner} holds the machine's lease (a deploy in "
                            "progress?); backing off and re-assessing", dict(ctx.detail))
    if isinstance(exc, FlyNotFound):
        text = f"{what} failed: the machine is gone (404)"
    elif isinstance(exc, FlyUnauthorized):
        text = f"{what} failed: the Fly token was refused ({exc.status}); check FLY_API_TOKEN"
    elif isinstance(exc, FlyUnavailable):
        text = f"{what} failed: the Fly API is unavailable after retries ({exc})"
    else:
        text = f"{what} failed: {exc}"
    return ActionResult(Outcome.FAILED, text, dict(ctx.detail))


def _exit_after(m: Machine, since: float, *, updated: bool = False
                ) -> tuple[float, int | None, bool] | None:
    """The newest exit the *new* instance made on its own: after the first start event that
    follows ``since`` -- or, after an update, that follows the update's own event -- so that an
    exit of the old instance while the call was in flight (a crash loop's, say) is not taken
    for the new one crashing again. (at, code, oom), or None."""
    if updated:
        replaced = [e.timestamp for e in m.events if e.type == "update" and e.timestamp >= since]
        if not replaced:
            return None
        since = max(replaced)
    boots = [e.timestamp for e in m.events if e.type == "start" and e.timestamp >= since]
    if not boots:
        return None
    booted = min(boots)
    for e in m.events:
        if e.exit is None or e.timestamp <= booted or e.exit.requested_stop:
            continue
        return e.timestamp, e.exit.exit_code, e.exit.oom_killed or e.exit.exit_code == 137
    return None


async def wait_healthy(ctx: ActionContext, machine_id: str, *, since: float,
                       version: str | None = None) -> Health:
    """Wait until the machine is started, its checks pass, and it stayed so for
    ``settle_s`` without exiting again; at most ``action_timeout_s``."""
    cfg, clock, app = ctx.settings, ctx.clock, ctx.app
    deadline = clock.monotonic() + cfg.action_timeout_s
    with suppress(FlyError):  # the polling below decides
        await ctx.client.wait(app, machine_id, state="started", version=version,
                              timeout_s=max(1, int(min(cfg.action_timeout_s, 60))))
    ok_since: float | None = None
    last: Machine | None = None
    while True:
        try:
            last = await ctx.client.get_machine(app, machine_id)
        except FlyNotFound:
            return Health(False, f"{machine_id} disappeared while starting")
        except FlyError:
            last = None
        now = clock.timestamp()
        if last is not None:
            crash = _exit_after(last, since, updated=version is not None)
            if crash is not None:
                at, code, oom = crash
                why = "OOM-killed" if oom else f"exited with code {code}"
                return Health(False, f"{machine_id} {why} {at - since:.0f} s after the action",
                              crashed_again=True)
            if last.state == "started" and last.checks_passing is not False:
                ok_since = now if ok_since is None else ok_since
                if now - ok_since >= cfg.settle_s:
                    return Health(True, f"{machine_id} started, checks passing, up "
                                  f"{now - since:.0f} s")
            else:
                ok_since = None
        if clock.monotonic() >= deadline:
            state = last.state if last is not None else "unknown"
            checks = "passing" if last is not None and last.checks_passing else "not passing"
            return Health(False, f"{machine_id} not healthy after {cfg.action_timeout_s:.0f} s "
                          f"(state {state}, checks {checks})")
        await clock.sleep(POLL_S)
