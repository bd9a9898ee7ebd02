"""``crash``: the machines' processes die of an error. Without ``until_s`` flyd does not bring
them back (a crashed machine stays stopped, a pending flyd restart is called off) and a start or
restart cures the fault on each; with ``until_s`` they crash again 2 s after every boot (flyd's
restart policy goes on) until then."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault, cure_when_booted
from hotdash_watch.sim.flyd import CRASH_AFTER_S
from hotdash_watch.sim.model import SimMachine

__all__ = ["Crash"]


@dataclass(eq=False)
class Crash(ActiveFault):
    kind: ClassVar[str] = "crash"
    fields: ClassVar[frozenset[str]] = frozenset({"machines", "until_s"})
    per_machine: ClassVar[bool] = True
    degrades: ClassVar[bool] = True

    def fire(self, targets: list[SimMachine]) -> None:
        flyd = self.ctx.flyd
        lasting = self.fault.until_s is None
        running = [m for m in targets if m.state == "started"]
        if lasting:
            self.targets = {m.id for m in running}
        self.record("fired", self.describe(targets))
        for m in running:
            if m.flyd_pending and lasting:
                m.gen += 1  # flyd's pending restart is called off: it stays down
                m.flyd_pending = False
                flyd.set_state(m, "stopped")
            elif m.app_up:
                flyd.crash(m, m.gen, 1, final=lasting)
        if not self.targets:
            self.cure("no affected machine was running")

    def duration(self) -> str:
        return super().duration() or " (a start or restart cures it)"

    def booted(self, m: SimMachine, cause: str) -> None:
        cure_when_booted(self, m, cause)

    def listening(self, m: SimMachine) -> None:
        # One crash per boot, however many crash faults affect the machine.
        if self.first_of_kind(lambda af: m.id in af.targets):
            self.ctx.timeline.after(CRASH_AFTER_S, self.ctx.flyd.crash, m, m.gen, 1)
