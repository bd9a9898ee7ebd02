"""``oom``: the machines need ``need_mb`` of memory; with less, the kernel kills the process
5-10 s after each boot (exit code 137, ``oom_killed``) and flyd's restart policy brings it back.
Raising the memory of every affected machine to ``need_mb`` cures it; a restart does not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault
from hotdash_watch.sim.model import SimMachine

__all__ = ["Oom"]

OOM_AFTER_S = (5.0, 10.0)


@dataclass(eq=False)
class Oom(ActiveFault):
    kind: ClassVar[str] = "oom"
    fields: ClassVar[frozenset[str]] = frozenset({"machines", "need_mb"})
    required: ClassVar[str | None] = "need_mb"
    per_machine: ClassVar[bool] = True
    degrades: ClassVar[bool] = True

    @property
    def need_mb(self) -> int:
        return int(self.fault.need_mb or 0)

    def fire(self, targets: list[SimMachine]) -> None:
        self.targets = {m.id for m in targets if m.memory_mb < self.need_mb}
        self.record("fired", self.describe(targets))
        for m in targets:
            if m.id in self.targets and m.state == "started" and m.app_up:
                self._schedule_kill(m)
        if not self.targets:
            self.cure("every machine already has enough memory")

    def detail(self) -> str:
        return f" (need {self.fault.need_mb} MB)"

    def listening(self, m: SimMachine) -> None:
        # One kill per boot, however many oom faults affect the machine.
        if self.first_of_kind(lambda af: m.id in af.targets and m.memory_mb < af.need_mb):
            self._schedule_kill(m)

    def _schedule_kill(self, m: SimMachine) -> None:
        self.ctx.timeline.after(self.ctx.random("faults").uniform(*OOM_AFTER_S), self._kill, m,
                                m.gen)

    def _kill(self, m: SimMachine, gen: int) -> None:
        if m.gen != gen or m.state != "started" or not m.app_up:
            return
        need = [af.need_mb for af in self.ctx.faults
                if isinstance(af, Oom) and af.active and m.id in af.targets]
        if not need or m.memory_mb >= max(need):
            return
        app = self.ctx.apps[m.app]
        logs = self.ctx.logs
        up = self.ctx.timeline.now - (m.boot_s or self.ctx.timeline.now)
        logs.log(app, m, f"[ {3400.0 + up:.6f}] Out of memory: Killed process 322 (python) "
                 f"total-vm:1503340kB, anon-rss:{m.memory_mb * 973}kB, file-rss:0kB, "
                 "shmem-rss:0kB, UID:0 pgtables:1148kB oom_score_adj:0")
        logs.log(app, m, " INFO Main child exited normally with code: 137")
        logs.log(app, m, " INFO Process appears to have been OOM killed!")
        self.ctx.flyd.exit(m, 137, oom=True)

    def updated(self, m: SimMachine, cause: str) -> None:
        if m.memory_mb >= self.need_mb:
            self.targets.discard(m.id)
            if not self.targets:
                self.cure(f"memory raised to >= {self.fault.need_mb} MB on every affected "
                          f"machine ({m.name} last)")
