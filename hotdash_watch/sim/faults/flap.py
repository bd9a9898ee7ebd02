"""``flap``: the machines' health alternates every ``period_s`` (bad first): while bad, the
health endpoint answers 503 and the service check fails, though the requests they serve
meanwhile succeed. A restart does not cure it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault
from hotdash_watch.sim.flyd import SERVICE_CHECK, Health
from hotdash_watch.sim.model import SimMachine
from hotdash_watch.sim.proxy import Answer, Stage

__all__ = ["Flap"]


@dataclass(eq=False)
class Flap(ActiveFault):
    kind: ClassVar[str] = "flap"
    fields: ClassVar[frozenset[str]] = frozenset({"machines", "period_s", "until_s"})
    required: ClassVar[str | None] = "period_s"
    per_machine: ClassVar[bool] = True
    degrades: ClassVar[bool] = True

    def detail(self) -> str:
        return f" (period {self.fault.period_s or 0:g} s)"

    def _bad(self, m: SimMachine) -> bool:
        if m.id not in self.targets:
            return False
        period = float(self.fault.period_s or 1.0)
        return int((self.ctx.timeline.now - self.started_s) // period) % 2 == 0

    def health(self, m: SimMachine, check: str) -> Health | None:
        return Health.UNAVAILABLE if check == SERVICE_CHECK and self._bad(m) else None

    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None:
        if stage is Stage.HEALTH and path.endswith("/health") and self._bad(m):
            return Answer(503, "Service Unavailable",
                          "ERROR health degraded: backend pool unhealthy, 503 Service Unavailable")
        return None
