"""Mitigation values shared by the policy, the guards, the actions and the store.

An ``ActionRecord`` is one mitigation step as the store keeps it: planned, started, then ended
with an ``Outcome``. It is written *before* the Fly call (status ``started``) so that a watcher
that dies mid-action finds it on restart and checks it instead of repeating it blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["FLY_ACTIONS", "RESTARTS", "ActionKind", "ActionRecord", "Outcome"]


class ActionKind(StrEnum):
    """What a step does; the ``action`` label of ``hotdash_watch_actions_total``."""

    RESTART = "restart"  # a started machine whose own checks fail
    START = "start"  # a stopped (crashed) machine
    ROLLBACK = "rollback"  # every machine to the previous known-healthy release's image
    RAISE_MEMORY = "raise_memory"  # guest.memory_mb up one step, within the cap
    SCALE_OUT = "scale_out"  # start a stopped spare machine for more capacity
    STOP = "stop"  # scale to zero: only with mitigation.allow_scale_to_zero
    PAGE = "page"  # nothing safe to do: a person is needed (not a Fly call)

    @property
    def touches_fly(self) -> bool:
        return self is not ActionKind.PAGE


#: Kinds that change something on Fly, in order: the ``action`` values of the settings and
#: the metrics (``page`` is not one).
FLY_ACTIONS: tuple[ActionKind, ...] = tuple(k for k in ActionKind if k.touches_fly)

#: Kinds that boot a machine again: they count against the restart budget.
RESTARTS = frozenset({ActionKind.RESTART, ActionKind.START})


class Outcome(StrEnum):
    """How a step ended; the ``outcome`` label of ``hotdash_watch_actions_total``."""

    STARTED = "started"  # written before the Fly call; not an end
    OK = "ok"  # done and verified (machine started, checks passing, stayed up)
    FAILED = "failed"  # Fly refused, or the machine did not come back healthy
    VETOED = "vetoed"  # a guard refused it; recorded and paged
    DRY_RUN = "dry_run"  # would have been done; nothing changed
    DEFERRED = "deferred"  # someone else holds the machine's lease (a deploy): re-assess later

    @property
    def ended(self) -> bool:
        return self is not Outcome.STARTED


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One step of a mitigation, as stored. Times are epoch seconds.

    ``target`` is a machine id, or the app name for app-wide steps (rollback, page).
    ``detail`` holds the essentials of Fly's answers and, for a rollback, the progress per
    machine, so a rollback interrupted by a watcher restart is finished, not redone.
    """

    id: int | None
    app: str
    incident_id: str | None
    kind: ActionKind
    target: str
    reason: str
    text: str
    outcome: Outcome
    at: float
    ended_at: float | None = None
    guard: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def is_restart(self) -> bool:
        return self.kind in RESTARTS

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "app": self.app, "incident_id": self.incident_id,
                "kind": self.kind.value, "target": self.target, "reason": self.reason,
                "text": self.text, "outcome": self.outcome.value, "at": self.at,
                "ended_at": self.ended_at, "guard": self.guard, "detail": self.detail}
