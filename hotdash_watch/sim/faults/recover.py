"""``recover``: ends the app's active faults (every app's when ``app`` is left out); with
``machines``, only those machines' part of the faults that affect machines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault, AppRule
from hotdash_watch.sim.model import SimMachine
from hotdash_watch.sim.spec import Fault

__all__ = ["Recover"]


@dataclass(eq=False)
class Recover(ActiveFault):
    kind: ClassVar[str] = "recover"
    fields: ClassVar[frozenset[str]] = frozenset({"machines"})
    app_rule: ClassVar[AppRule] = "optional"

    def fire(self, targets: list[SimMachine]) -> None:
        super().fire(targets)
        self.state = "ended"  # done as it fires
        machines = {m.id for m in targets} if self.fault.machines != "all" else None
        for af in self.ctx.faults:
            if af.active:
                af.recovered(self.fault, machines)

    def where(self, targets: list[SimMachine]) -> str:
        if self.fault.machines != "all":
            return f"{', '.join(m.name for m in targets)} of {self.fault.app}"
        return super().where(targets)

    def recovered(self, by: Fault, machines: set[str] | None) -> None:
        return None  # a recover is over as soon as it fires
