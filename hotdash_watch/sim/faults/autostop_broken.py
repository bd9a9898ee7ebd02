"""``autostop_broken``: the proxy never autostops the app's machines, whatever their load (the
app stays healthy; it only costs money)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault

__all__ = ["AutostopBroken"]


@dataclass(eq=False)
class AutostopBroken(ActiveFault):
    kind: ClassVar[str] = "autostop_broken"
    fields: ClassVar[frozenset[str]] = frozenset({"until_s"})

    def holds_autostop(self, app: str) -> bool:
        return self.fault.app == app
