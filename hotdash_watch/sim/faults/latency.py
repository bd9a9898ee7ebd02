"""``latency``: the machines answer slowly, with a p95 of ``p95_ms`` (a lognormal around it); at
or above the check timeout (5 s) their service check times out. Without ``until_s`` raising the
memory of every affected machine above what it had when the fault fired cures it; a restart
does not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault
from hotdash_watch.sim.flyd import CHECK_TIMEOUT_MS, SERVICE_CHECK, Health
from hotdash_watch.sim.model import SimMachine

__all__ = ["Latency"]


@dataclass(eq=False)
class Latency(ActiveFault):
    kind: ClassVar[str] = "latency"
    fields: ClassVar[frozenset[str]] = frozenset({"machines", "p95_ms", "until_s"})
    required: ClassVar[str | None] = "p95_ms"
    per_machine: ClassVar[bool] = True
    degrades: ClassVar[bool] = True

    baseline_mb: dict[str, int] = field(default_factory=dict)  # memory when it fired

    @property
    def p95_ms(self) -> float:
        return float(self.fault.p95_ms or 0)

    def fire(self, targets: list[SimMachine]) -> None:
        self.baseline_mb = {m.id: m.memory_mb for m in targets}
        super().fire(targets)

    def detail(self) -> str:
        return f" (p95 {self.fault.p95_ms or 0:g} ms)"

    def health(self, m: SimMachine, check: str) -> Health | None:
        if check == SERVICE_CHECK and m.id in self.targets and self.p95_ms >= CHECK_TIMEOUT_MS:
            return Health.TIMEOUT
        return None

    def slow_p95_ms(self, m: SimMachine) -> float | None:
        return self.p95_ms if m.id in self.targets else None

    def updated(self, m: SimMachine, cause: str) -> None:
        if (self.fault.until_s is None
                and m.memory_mb > self.baseline_mb.get(m.id, m.memory_mb)):
            self.targets.discard(m.id)
            if not self.targets:
                self.cure(f"memory raised on every affected machine ({m.name} last)")
