"""``watcher_partition``: the watcher cannot reach the app's public URL (every app's when ``app``
is left out), while Fly and the app are fine: a request hangs or the connection drops without a
response, decided per 30-second window so that a client's automatic retry of a dropped request
meets the same fate. A ``recover`` of one app lifts that app's part."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault, AppRule, Outage
from hotdash_watch.sim.model import SimMachine
from hotdash_watch.sim.spec import Fault

__all__ = ["WatcherPartition"]

WINDOW_S = 30.0
HANG_SHARE = 0.5


@dataclass(eq=False)
class WatcherPartition(ActiveFault):
    kind: ClassVar[str] = "watcher_partition"
    fields: ClassVar[frozenset[str]] = frozenset({"until_s"})
    app_rule: ClassVar[AppRule] = "optional"

    apps: set[str] = field(default_factory=set)  # the apps still cut off

    def fire(self, targets: list[SimMachine]) -> None:
        self.apps = {self.fault.app} if self.fault.app else set(self.ctx.apps)
        super().fire(targets)

    def recovered(self, by: Fault, machines: set[str] | None) -> None:
        if machines is not None:
            return
        self.apps -= {by.app} if by.app else set(self.apps)
        if not self.apps:
            self.end("recover")

    def url_outage(self, app: str) -> Outage | None:
        return self if app in self.apps else None

    def hangs(self) -> bool:
        """For one request now: hang (True) or drop the connection (False)."""
        window = int(self.ctx.timeline.now // WINDOW_S)
        return random.Random(f"{self.ctx.seed}:partition:{window}").random() < HANG_SHARE
