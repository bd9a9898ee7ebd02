"""Restart, start and stop one machine under its lease, then confirm.

Restart is for a ``started`` machine, start for a ``stopped``/``suspended`` one: the
step's kind was chosen from the state the policy saw, and the state is read again here, under the
lease, so a machine that changed meanwhile gets the call that fits it (or none, if it already
serves).
"""

from __future__ import annotations

from hotdash_watch.actions.base import ActionContext, ActionResult, failure, wait_healthy
from hotdash_watch.fly import FlyError
from hotdash_watch.model.action import ActionKind, Outcome
from hotdash_watch.policy import STOPPED, Step

__all__ = ["restart", "start", "stop"]


async def _boot(step: Step, ctx: ActionContext) -> ActionResult:
    app, mid, cfg = ctx.app, step.target, ctx.settings
    try:
        async with ctx.client.lease(app, mid, ttl_s=int(cfg.lease_ttl_s),
                                    description="hotdash-watch mitigation") as lease:
            m = await ctx.client.get_machine(app, mid)
            if m.is_standby:
                return ActionResult(Outcome.FAILED, f"{mid} is a standby: not started",
                                    dict(ctx.detail))
            since = ctx.clock.timestamp()
            if m.state in STOPPED:
                call = "start"
                await ctx.client.start(app, mid, nonce=lease.nonce)
            elif m.state == "started":
                call = "restart"
                await ctx.client.restart(app, mid, nonce=lease.nonce)
            else:
                return ActionResult(Outcome.FAILED, f"{mid} is {m.state}: neither started nor "
                                    "stopped; left alone to settle", dict(ctx.detail))
            ctx.call(call, mid, "ok", previous_state=m.state)
            await ctx.save(since=since)
            await ctx.client.wait(app, mid, state="started", timeout_s=30)
    except FlyError as e:
        return failure(step, ctx, e)
    health = await wait_healthy(ctx, mid, since=since)
    outcome = Outcome.OK if health.ok else Outcome.FAILED
    return ActionResult(outcome, f"{call} of {mid}: {health.text}",
                        {**ctx.detail, "crashed_again": health.crashed_again},
                        crashed_again=health.crashed_again)


async def restart(step: Step, ctx: ActionContext) -> ActionResult:
    """Restart a started machine whose own checks fail (or start it if it stopped since)."""
    return await _boot(step, ctx)


async def start(step: Step, ctx: ActionContext) -> ActionResult:
    """Start a stopped machine (or restart it if it is started but failing)."""
    return await _boot(step, ctx)


async def stop(step: Step, ctx: ActionContext) -> ActionResult:
    """Stop a started machine (scale to zero; only with ``allow_scale_to_zero``)."""
    app, mid = ctx.app, step.target
    try:
        async with ctx.client.lease(app, mid, ttl_s=int(ctx.settings.lease_ttl_s),
                                    description="hotdash-watch mitigation") as lease:
            m = await ctx.client.get_machine(app, mid)
            if m.state in STOPPED:
                return ActionResult(Outcome.OK, f"{mid} was already {m.state}", dict(ctx.detail))
            await ctx.client.stop(app, mid, nonce=lease.nonce)
            ctx.call(ActionKind.STOP.value, mid, "ok", previous_state=m.state)
            stopped = await ctx.client.wait(app, mid, state="stopped", version=m.instance_id,
                                            timeout_s=max(1, int(ctx.settings.action_timeout_s)))
    except FlyError as e:
        return failure(step, ctx, e)
    if not stopped:
        return ActionResult(Outcome.FAILED, f"{mid} did not stop within "
                            f"{ctx.settings.action_timeout_s:.0f} s", dict(ctx.detail))
    return ActionResult(Outcome.OK, f"stopped {mid}", dict(ctx.detail))
