"""``errors``: the machines fail a share (``rate``) of their requests with 500; at a rate of
0.5 or more their service check fails too. Without ``until_s`` a new boot of every affected
machine (a restart) cures it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault, cure_when_booted
from hotdash_watch.sim.flyd import SERVICE_CHECK, Health
from hotdash_watch.sim.model import SimMachine
from hotdash_watch.sim.proxy import Answer, Stage

__all__ = ["Errors"]


@dataclass(eq=False)
class Errors(ActiveFault):
    kind: ClassVar[str] = "errors"
    fields: ClassVar[frozenset[str]] = frozenset({"machines", "rate", "until_s"})
    required: ClassVar[str | None] = "rate"
    per_machine: ClassVar[bool] = True
    degrades: ClassVar[bool] = True

    @property
    def rate(self) -> float:
        return float(self.fault.rate or 0)

    def detail(self) -> str:
        return f" (rate {self.fault.rate or 0:g})"

    def booted(self, m: SimMachine, cause: str) -> None:
        cure_when_booted(self, m, cause)

    def health(self, m: SimMachine, check: str) -> Health | None:
        if check == SERVICE_CHECK and m.id in self.targets and self.rate >= 0.5:
            return Health.ERROR
        return None

    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None:
        if stage is Stage.HANDLER and m.id in self.targets and rng.random() < self.rate:
            return Answer(500, "Internal Server Error",
                          "ERROR request failed: worker pool exhausted, 500 Internal Server Error")
        return None
