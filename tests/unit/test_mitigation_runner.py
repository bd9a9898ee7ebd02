"""The action runner on virtual time: one action per app, progress saved, a crash recorded as
FAILED, each end reported at its instant, and shutdown cancelling what outlives the grace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hotdash_watch.actions import ActionContext, ActionResult
from hotdash_watch.actions.runner import ActionEnded, ActionRunner
from hotdash_watch.config import MitigationSettings
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import Step, Why
from hotdash_watch.virtual_time import VirtualClock
from tests.support.virtual import on_virtual_time

Executor = Callable[[Step, ActionContext], Awaitable[ActionResult]]


class Progress:
    """The store's ``end_action`` as the runner calls it for progress; may refuse."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.saved: list[tuple[int, Outcome, float, dict[str, Any]]] = []

    async def end_action(self, action_id: int, outcome: Outcome, ended_at: float,
                         detail: Any = None) -> None:
        if self.fail:
            raise OSError("store down")
        self.saved.append((action_id, outcome, ended_at, dict(detail or {})))


class Harness:
    """A runner on the running virtual clock whose ends are collected in order."""

    def __init__(self, executors: dict[ActionKind, Executor], store: Progress | None = None
                 ) -> None:
        self.clock = VirtualClock.running()
        self.store = store or Progress()
        self.ends: list[ActionEnded] = []
        self.runner = ActionRunner(object(), self.clock,  # type: ignore[arg-type]
                                   MitigationSettings(), self.store, self._end,
                                   executors=executors)  # type: ignore[arg-type]

    async def _end(self, ended: ActionEnded) -> None:
        self.ends.append(ended)

    def start(self, app: str, kind: ActionKind = ActionKind.RESTART, target: str = "m1",
              action_id: int = 1) -> bool:
        step = Step(kind, target, Why.CHECKS_FAILING, f"{kind.value} {target}")
        rec = ActionRecord(id=action_id, app=app, incident_id="inc-1", kind=kind,
                           target=target, reason=step.why.value, text=step.text,
                           outcome=Outcome.STARTED, at=self.clock.timestamp(),
                           detail={"key": step.key})
        return self.runner.start(step, rec)


def gated(gates: dict[str, asyncio.Event], ran: list[str]) -> Executor:
    """An executor that notes its target in ``ran``, waits for the target's gate, then
    succeeds."""
    async def run(step: Step, ctx: ActionContext) -> ActionResult:
        ran.append(step.target)
        await gates[step.target].wait()
        return ActionResult(Outcome.OK, f"{step.kind.value} of {step.target}: done")
    return run


def taking(seconds: float) -> Executor:
    """An executor that takes ``seconds`` of the clock, then succeeds."""
    async def run(step: Step, ctx: ActionContext) -> ActionResult:
        await ctx.clock.sleep(seconds)
        return ActionResult(Outcome.OK, "done")
    return run


async def settle() -> None:
    """Let every ready task run (no clock time passes while they can)."""
    for _ in range(5):
        await asyncio.sleep(0)


class TestOneActionPerApp:
    @on_virtual_time
    async def test_a_second_action_of_the_same_app_is_refused(self):
        """While an action of an app runs, another of that app is refused and never run; an
        action of another app runs alongside; once the first ended the app is free."""
        gates = {m: asyncio.Event() for m in ("m1", "m2", "m3")}
        ran: list[str] = []
        h = Harness({ActionKind.RESTART: gated(gates, ran)})
        assert h.start("a", target="m1")
        assert not h.start("a", target="m2")
        assert h.start("b", target="m3")
        await settle()
        assert (h.runner.busy("a"), h.runner.busy("b"), h.runner.busy("c")) == (
            True, True, False)
        assert ran == ["m1", "m3"], "the refused action never ran"
        gates["m1"].set()
        await settle()
        assert [e.record.target for e in h.ends] == ["m1"]
        assert not h.runner.busy("a") and h.runner.busy("b")
        assert h.start("a", target="m2")
        gates["m2"].set()
        gates["m3"].set()
        await settle()
        assert sorted(e.record.target for e in h.ends) == ["m1", "m2", "m3"]


class TestEnds:
    @on_virtual_time
    async def test_the_end_is_reported_at_its_instant(self):
        """An action that takes 42 s of the clock ends 42 s after it started; its end is the
        record as started and the executor's result, handed over from the action's task."""
        h = Harness({ActionKind.START: taking(42.0)})
        t0 = h.clock.timestamp()
        assert h.start("a", ActionKind.START)
        task = h.runner.tasks["a"]
        await task
        [ended] = h.ends
        assert ended.ended_at - t0 == pytest.approx(42.0)
        assert (ended.record.kind, ended.record.outcome) == (ActionKind.START, Outcome.STARTED)
        assert (ended.result.outcome, ended.result.text) == (Outcome.OK, "done")

    @on_virtual_time
    async def test_progress_is_saved_as_started(self):
        """Each progress the executor reports is saved under the action's id, still started,
        with the detail so far."""
        async def run(step: Step, ctx: ActionContext) -> ActionResult:
            await ctx.save(done=["m1"])
            await ctx.clock.sleep(5.0)
            await ctx.save(done=["m1", "m2"])
            return ActionResult(Outcome.OK, "rolled back", dict(ctx.detail))

        h = Harness({ActionKind.ROLLBACK: run})
        t0 = h.clock.timestamp()
        h.start("a", ActionKind.ROLLBACK, target="a", action_id=9)
        await h.runner.tasks["a"]
        assert [(i, o, round(at - t0, 3), d.get("done")) for i, o, at, d in h.store.saved] == [
            (9, Outcome.STARTED, 0.0, ["m1"]), (9, Outcome.STARTED, 5.0, ["m1", "m2"])]
        assert h.ends[0].result.detail["done"] == ["m1", "m2"]

    @on_virtual_time
    async def test_a_progress_the_store_refuses_does_not_stop_the_action(self):
        """A store that cannot save progress costs the progress, not the action."""
        async def run(step: Step, ctx: ActionContext) -> ActionResult:
            await ctx.save(done=["m1"])
            return ActionResult(Outcome.OK, "rolled back")

        h = Harness({ActionKind.ROLLBACK: run}, Progress(fail=True))
        h.start("a", ActionKind.ROLLBACK, target="a")
        await h.runner.tasks["a"]
        assert [e.result.outcome for e in h.ends] == [Outcome.OK]

    @on_virtual_time
    async def test_a_crash_becomes_failed(self):
        """An executor that raises ends FAILED, naming the error, with the detail it had
        saved; the runner and the app go on."""
        async def run(step: Step, ctx: ActionContext) -> ActionResult:
            await ctx.save(done=["m1"])
            raise KeyError("bug")

        h = Harness({ActionKind.RESTART: run})
        h.start("a")
        await h.runner.tasks["a"]
        [ended] = h.ends
        assert ended.result.outcome is Outcome.FAILED
        assert ended.result.text == "restart of m1 failed: internal error KeyError"
        assert ended.result.detail == {"key": ended.record.detail["key"], "done": ["m1"]}
        assert not h.runner.busy("a")


class TestDrain:
    @on_virtual_time
    async def test_late_actions_are_cancelled_at_the_grace(self):
        """Shutdown waits the grace period: an action done within it reports its end; one
        that would take longer is cancelled at the grace, and its end is never reported."""
        h = Harness({ActionKind.START: taking(3.0), ActionKind.RESTART: taking(60.0)})
        t0 = h.clock.timestamp()
        h.start("quick", ActionKind.START)
        h.start("slow", ActionKind.RESTART)
        await h.runner.drain(10.0)
        assert h.clock.timestamp() - t0 == pytest.approx(10.0)
        assert [e.record.app for e in h.ends] == ["quick"]
        assert h.runner.tasks["slow"].cancelled()
        assert not h.runner.busy("slow")

    @on_virtual_time
    async def test_nothing_running_returns_at_once(self):
        """With no action running, shutdown does not wait."""
        h = Harness({ActionKind.START: taking(3.0)})
        h.start("a", ActionKind.START)
        await h.runner.tasks["a"]
        t0 = h.clock.timestamp()
        await h.runner.drain(10.0)
        assert h.clock.timestamp() == t0
