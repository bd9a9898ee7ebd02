"""Actions: the only code that changes the watched apps on Fly. Kind -> executor registry."""

from __future__ import annotations

from hotdash_watch.actions.base import Action, ActionContext, ActionResult
from hotdash_watch.actions.restart import restart, start, stop
from hotdash_watch.actions.rollback import rollback
from hotdash_watch.actions.scale import raise_memory, scale_out
from hotdash_watch.model.action import ActionKind

__all__ = ["EXECUTORS", "Action", "ActionContext", "ActionResult"]

#: Every kind that touches Fly has exactly one executor (a test walks this registry).
EXECUTORS: dict[ActionKind, Action] = {
    ActionKind.RESTART: restart,
    ActionKind.START: start,
    ActionKind.STOP: stop,
    ActionKind.ROLLBACK: rollback,
    ActionKind.RAISE_MEMORY: raise_memory,
    ActionKind.SCALE_OUT: scale_out,
}
