"""Runs the actions: one task per app at a time, each end reported as an ``ActionEnded``.

``start`` runs a step's executor (``EXECUTORS``) in a task of its own with its
``ActionContext``; the record's detail is saved to the store each time the executor reports
progress, so a watcher restarted mid-rollback knows which machines are done. An executor that
raises is a bug, not an outage: its end is a FAILED result naming the error, and the daemon
goes on. Each end goes to ``on_end`` as a value (the record as started, the result, when it
ended), from the action's own task at the instant it ended.

``drain`` is for shutdown: running actions get a grace period, then are cancelled; their
records stay ``started`` and are checked on the next start (``actions.resume``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from hotdash_watch.actions import EXECUTORS, Action, ActionContext, ActionResult
from hotdash_watch.clock import Clock
from hotdash_watch.config.sections import MitigationSettings
from hotdash_watch.fly import FlyClient
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import Step

__all__ = ["ActionEnded", "ActionRunner", "ProgressStore"]

log = structlog.get_logger("hotdash_watch.actions.runner")


class ProgressStore(Protocol):
    """Where an action's progress is saved (``records.store.Store``)."""

    async def end_action(self, action_id: int, outcome: Outcome, ended_at: float,
                         detail: Mapping[str, Any] | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class ActionEnded:
    """An action ended: its record as it was started, its result, and when (clock seconds)."""

    record: ActionRecord
    result: ActionResult
    ended_at: float


class ActionRunner:
    """Owns the action tasks, at most one per app."""

    def __init__(self, client: FlyClient | None, clock: Clock, settings: MitigationSettings,
                 store: ProgressStore, on_end: Callable[[ActionEnded], Awaitable[None]], *,
                 executors: Mapping[ActionKind, Action] = EXECUTORS) -> None:
        self.client = client
        self.clock = clock
        self.settings = settings
        self.store = store
        self.on_end = on_end
        self.executors = executors
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def busy(self, app: str) -> bool:
        """An action of ``app`` is running."""
        task = self.tasks.get(app)
        return task is not None and not task.done()

    def start(self, step: Step, rec: ActionRecord) -> bool:
        """Run ``step`` (stored as ``rec``, which has its id) in a task of its own; False, and
        nothing started, while another action of the app runs."""
        if self.busy(rec.app):
            return False
        self.tasks[rec.app] = asyncio.create_task(self._task(step, rec),
                                                  name=f"action:{rec.app}:{step.kind.value}")
        return True

    async def _task(self, step: Step, rec: ActionRecord) -> None:
        await self.on_end(await self.run(step, rec))

    async def run(self, step: Step, rec: ActionRecord) -> ActionEnded:
        """Carry ``step`` out and say how it ended; only a cancellation escapes."""
        assert self.client is not None and rec.id is not None
        client, action_id = self.client, rec.id

        async def progress(detail: dict[str, Any]) -> None:
            try:
                await self.store.end_action(action_id, Outcome.STARTED, self.clock.timestamp(),
                                            detail)
            except Exception as e:
                log.warning("action_progress_not_saved", app=rec.app, error=type(e).__name__)

        ctx = ActionContext(client, self.clock, self.settings, rec.app, dict(rec.detail),
                            progress)
        try:
            result = await self.executors[step.kind](step, ctx)
        except asyncio.CancelledError:
            raise  # shutdown: the record stays "started" and is checked on the next start
        except Exception as e:  # a bug must not take the daemon down; it is recorded
            log.exception("action_crashed", app=rec.app, action=step.kind.value)
            result = ActionResult(Outcome.FAILED, f"{step.kind.value} of {step.target} failed: "
                                  f"internal error {type(e).__name__}", dict(ctx.detail))
        return ActionEnded(rec, result, self.clock.timestamp())

    async def drain(self, timeout_s: float) -> None:
        """Let running actions finish within ``timeout_s``, then cancel the rest (their
        records stay ``started``)."""
        running = [t for t in self.tasks.values() if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
