"""Roll an app back to an earlier release's image through the Machines API.

One machine at a time: lease -> read -> copy the full config with the old ``image`` -> update with
``current_version`` -> wait ``started`` at the new version -> checks pass and it stays up ->
release -> the next machine. Machines out of service go first, so capacity only grows; a healthy
machine is never updated while it is the last one serving.

Progress is saved in the action's record after every machine, and a machine already running the
target image is skipped: a rollback interrupted by a watcher restart is finished, never redone.
The rollback keeps today's config and secrets and leaves no release record; the next
deploy rolls forward again.
"""

from __future__ import annotations

from hotdash_watch.actions.base import (
    POLL_S,
    ActionContext,
    ActionResult,
    failure,
    wait_healthy,
)
from hotdash_watch.fly import FlyError, Machine
from hotdash_watch.fly.errors import FlyConflict
from hotdash_watch.model.action import Outcome
from hotdash_watch.policy import STOPPED, Step
from hotdash_watch.probes.machines import TRANSIENT

#: Updates refused with a conflict (state or version changed meanwhile) are re-read and retried.
UPDATE_ATTEMPTS = 3

__all__ = ["rollback"]


def _serving(m: Machine) -> bool:
    return m.state == "started" and m.checks_passing is not False


async def _settled(ctx: ActionContext, machine_id: str) -> Machine:
    """The machine once it is out of a transient state (Fly answers 412 to an
    update mid-start or mid-replace); at most ``action_timeout_s``."""
    deadline = ctx.clock.monotonic() + ctx.settings.action_timeout_s
    m = await ctx.client.get_machine(ctx.app, machine_id)
    while m.state in TRANSIENT and ctx.clock.monotonic() < deadline:
        await ctx.clock.sleep(POLL_S)
        m = await ctx.client.get_machine(ctx.app, machine_id)
    return m


async def _update_one(step: Step, ctx: ActionContext, mid: str, image: str
                      ) -> tuple[Machine, Machine, float, bool]:
    """Lease, re-read, update to ``image`` (start it if it was crashed and stopped), release.
    A conflict (the machine changed state or version meanwhile) is re-read and retried."""
    app = ctx.app
    for attempt in range(UPDATE_ATTEMPTS):
        async with ctx.client.lease(app, mid, ttl_s=int(ctx.settings.lease_ttl_s),
                                    description="hotdash-watch rollback") as lease:
            m = await _settled(ctx, mid)
            config = m.config_copy()
            config["image"] = image
            launch = m.state not in STOPPED or not m.autostopped
            since = ctx.clock.timestamp()
            try:
                updated = await ctx.client.update(
                    app, mid, config=config, current_version=m.instance_id,
                    nonce=lease.nonce, skip_launch=m.state in STOPPED)
            except FlyConflict:
                if attempt + 1 >= UPDATE_ATTEMPTS:
                    raise
                ctx.call("update", mid, "FlyConflict, re-read and retried")
                await ctx.clock.sleep(POLL_S)
                continue
            ctx.call("update", mid, "ok", image=image, instance_id=updated.instance_id)
            if m.state in STOPPED and launch and not m.is_standby:
                await ctx.client.start(app, mid, nonce=lease.nonce)
                ctx.call("start", mid, "ok")
            return m, updated, since, launch and not m.is_standby
    raise AssertionError("unreachable")  # the loop returns or raises


async def rollback(step: Step, ctx: ActionContext) -> ActionResult:
    app = ctx.app
    image = str(step.params.get("image") or "")
    version = step.params.get("version")
    if not image:
        return ActionResult(Outcome.FAILED, "rollback not done: no target image (no earlier "
                            "release is known healthy)", dict(ctx.detail))
    done: list[str] = list(ctx.detail.get("done") or [])
    await ctx.save(image=image, version=version, from_version=step.params.get("from_version"),
                   done=done)
    try:
        machines = [m for m in await ctx.client.list_machines(app)
                    if m.is_app_machine and not m.incomplete]
    except FlyError as e:
        return failure(step, ctx, e, machine=app)
    # Out-of-service machines first: updating them costs no capacity.
    order = sorted(machines, key=lambda m: (_serving(m), m.id))
    for planned in order:
        mid = planned.id
        try:
            m = await ctx.client.get_machine(app, mid)
        except FlyError as e:
            return failure(step, ctx, e, machine=mid)
        if m.image == image:
            if not _serving(m) and not m.autostopped and not m.is_standby:
                # Updated before a restart of the watcher, maybe still replacing: one machine
                # at a time means waiting for it before the next.
                health = await wait_healthy(ctx, mid, since=ctx.clock.timestamp())
                if not health.ok:
                    return ActionResult(
                        Outcome.FAILED, f"rollback to v{version} stopped at {mid}: "
                        f"{health.text}", dict(ctx.detail), crashed_again=health.crashed_again)
            if mid not in done:
                done.append(mid)
                await ctx.save(done=done)
            continue
        if _serving(m):
            try:
                others = [x for x in await ctx.client.list_machines(app)
                          if x.id != mid and x.is_app_machine and _serving(x)]
            except FlyError as e:
                return failure(step, ctx, e, machine=mid)
            if not others:
                return ActionResult(
                    Outcome.FAILED, f"rollback stopped before {mid}: it is the last machine "
                    f"serving ({len(done)} of {len(machines)} rolled back to v{version})",
                    dict(ctx.detail))
        try:
            m, updated, since, launched = await _update_one(step, ctx, mid, image)
        except FlyError as e:
            return failure(step, ctx, e, machine=mid)
        done.append(mid)
        await ctx.save(done=done)
        if not launched:
            continue
        health = await wait_healthy(ctx, mid, since=since, version=updated.instance_id)
        if not health.ok:
            return ActionResult(
                Outcome.FAILED, f"rollback to v{version} stopped at {mid}: {health.text} "
                f"({len(done)} of {len(machines)} machines on v{version})", dict(ctx.detail),
                crashed_again=health.crashed_again)
    return ActionResult(
        Outcome.OK, f"rolled back {len(done)} machine(s) to v{version} ({image}), one at a time, "
        "each started and passing its checks. Today's config and secrets were kept; the next "
        "deploy rolls forward again", dict(ctx.detail))
