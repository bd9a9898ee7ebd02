"""``dependency_down``: a service the app depends on (its database, the model API) is
unreachable: 60 % of requests and every health request fail with 503, the ``db`` check times
out and the service check fails. Restarts do nothing; it lasts until ``until_s`` (or a
``recover``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault
from hotdash_watch.sim.flyd import DB_CHECK, Health
from hotdash_watch.sim.model import SimMachine
from hotdash_watch.sim.proxy import Answer, Stage

__all__ = ["DependencyDown"]

FAIL_RATE = 0.6
LINES = ("ERROR Supabase connection timeout after 10000ms (database unreachable)",
         "ERROR OpenAI API error 503: The server is overloaded or not ready yet.")


@dataclass(eq=False)
class DependencyDown(ActiveFault):
    kind: ClassVar[str] = "dependency_down"
    fields: ClassVar[frozenset[str]] = frozenset({"until_s"})
    degrades: ClassVar[bool] = True

    def health(self, m: SimMachine, check: str) -> Health | None:
        if self.fault.app != m.app:
            return None
        return Health.TIMEOUT if check == DB_CHECK else Health.UNAVAILABLE

    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None:
        # Overlapping outages of one app fail a request once.
        if stage is not Stage.BACKEND or not self.first_of_kind(
                lambda af: af.fault.app == m.app):
            return None
        if not (path.endswith("/health") or rng.random() < FAIL_RATE):
            return None
        line = LINES[self.ctx.count(self.kind) % 2]  # the two alternate, world-wide
        return Answer(503, "Service Unavailable: dependency unreachable", line)
