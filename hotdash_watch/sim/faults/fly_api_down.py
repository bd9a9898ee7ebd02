"""``fly_api_down``: Fly's own APIs (Machines, GraphQL, logs) are down, platform-wide: 30 % of
requests hang (until the outage ends, at most 300 s), the rest get 503. The apps themselves go
on serving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault, AppRule, Outage
from hotdash_watch.sim.model import SimMachine

__all__ = ["FlyApiDown"]

HANG_SHARE = 0.3


@dataclass(eq=False)
class FlyApiDown(ActiveFault):
    kind: ClassVar[str] = "fly_api_down"
    fields: ClassVar[frozenset[str]] = frozenset({"until_s"})
    app_rule: ClassVar[AppRule] = "forbidden"

    def where(self, targets: list[SimMachine]) -> str:
        return "the Fly API (Machines, GraphQL, logs)"

    def api_outage(self) -> Outage | None:
        return self

    def hangs(self) -> bool:
        """For one request: hang (True) or answer 503 (False)."""
        return self.ctx.random("api").random() < HANG_SHARE
