"""More capacity: raise a machine's memory one step, or start a stopped spare machine.

A memory raise is an ``update`` of the machine's full config (the Machines API has no partial
update) with ``current_version`` for optimistic locking; a running machine reboots with it, a
stopped (crashed) one is started afterwards. The raise lasts until the next deploy when the
app's fly.toml has a ``[[vm]]`` section: the step's text says so, and so do the page
and the report.
"""

from __future__ import annotations

from hotdash_watch.actions.base import ActionContext, ActionResult, failure, wait_healthy
from hotdash_watch.actions.restart import start
from hotdash_watch.fly import FlyError
from hotdash_watch.model.action import Outcome
from hotdash_watch.policy import STOPPED, Step

__all__ = ["raise_memory", "scale_out"]


async def raise_memory(step: Step, ctx: ActionContext) -> ActionResult:
    app, mid = ctx.app, step.target
    new_mb = int(step.params["memory_mb"])
    try:
        async with ctx.client.lease(app, mid, ttl_s=int(ctx.settings.lease_ttl_s),
                                    description="hotdash-watch mitigation") as lease:
            m = await ctx.client.get_machine(app, mid)
            if m.incomplete:
                return ActionResult(Outcome.FAILED, f"{mid}'s host is unreachable (only an "
                                    "incomplete config): not updated", dict(ctx.detail))
            if (m.memory_mb or 0) >= new_mb:
                return ActionResult(Outcome.OK, f"{mid} already has {m.memory_mb} MB",
                                    dict(ctx.detail))
            config = m.config_copy()
            config.setdefault("guest", {})["memory_mb"] = new_mb
            was_running = m.state not in STOPPED
            since = ctx.clock.timestamp()
            updated = await ctx.client.update(app, mid, config=config,
                                              current_version=m.instance_id,
                                              nonce=lease.nonce, skip_launch=not was_running)
            ctx.call("update", mid, "ok", memory_mb=new_mb, from_mb=m.memory_mb,
                     instance_id=updated.instance_id)
            await ctx.save(since=since)
            if not was_running:
                await ctx.client.start(app, mid, nonce=lease.nonce)
                ctx.call("start", mid, "ok")
    except FlyError as e:
        return failure(step, ctx, e)
    health = await wait_healthy(ctx, mid, since=since, version=updated.instance_id)
    text = (f"memory of {mid} raised {m.memory_mb} -> {new_mb} MB: {health.text}. Lasts until "
            f"the next deploy: set [[vm]] memory = \"{new_mb}mb\" in fly.toml to keep it")
    return ActionResult(Outcome.OK if health.ok else Outcome.FAILED, text,
                        {**ctx.detail, "crashed_again": health.crashed_again},
                        crashed_again=health.crashed_again)


async def scale_out(step: Step, ctx: ActionContext) -> ActionResult:
    """Start a stopped spare machine for capacity (its health confirmed like any start)."""
    try:
        m = await ctx.client.get_machine(ctx.app, step.target)
    except FlyError as e:
        return failure(step, ctx, e)
    if m.state not in STOPPED:
        return ActionResult(Outcome.OK, f"{step.target} is already {m.state}", dict(ctx.detail))
    return await start(step, ctx)
