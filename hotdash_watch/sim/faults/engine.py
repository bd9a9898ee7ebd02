"""The fault engine: fires faults (``FaultEngine``) and answers, for every active fault at once,
what the world's parts ask of them (``FaultEffects``: flyd's, the proxy's and the Machines API's
questions, health, the Fly API and the public URLs). Nothing here knows a kind by name."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator, Sequence

from hotdash_watch.sim.faults import FAULTS
from hotdash_watch.sim.faults.base import ActiveFault, FaultContext, FaultKind, Outage
from hotdash_watch.sim.flyd import Health, worst
from hotdash_watch.sim.model import SimMachine, app_named
from hotdash_watch.sim.proxy import Answer, Stage
from hotdash_watch.sim.spec import Fault

__all__ = ["FaultEffects", "FaultEngine"]


class FaultEffects:
    """The active faults of ``faults`` (every fault fired, in firing order), as one answer to
    each question the world's parts ask (``FlydEffects``, ``ProxyEffects``, ``ApiEffects``)."""

    def __init__(self, faults: Sequence[FaultKind]) -> None:
        self.faults = faults

    def _active(self) -> Iterator[FaultKind]:
        return (af for af in self.faults if af.active)

    def any_active(self) -> bool:
        return any(True for _ in self._active())

    def degrades(self, app: str) -> bool:
        """Whether an active fault keeps ``app`` from being healthy."""
        return any(af.degrades and af.fault.app == app for af in self._active())

    # flyd
    def booted(self, m: SimMachine, cause: str) -> None:
        for af in self._active():
            af.booted(m, cause)

    def listening(self, m: SimMachine) -> None:
        for af in self._active():
            af.listening(m)

    def health(self, m: SimMachine, check: str) -> Health | None:
        return worst(*(af.health(m, check) for af in self._active()))

    # the proxy
    def slow_p95_ms(self, m: SimMachine) -> list[float]:
        return [p for af in self._active() if (p := af.slow_p95_ms(m)) is not None]

    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None:
        """The last answer the active faults give (in firing order), each drawing from ``rng``."""
        result = None
        for af in self._active():
            answer = af.answer(stage, m, path, rng)
            if answer is not None:
                result = answer
        return result

    def holds_autostop(self, app: str) -> bool:
        return any(af.holds_autostop(app) for af in self._active())

    # the Machines API
    def updated(self, m: SimMachine, cause: str) -> None:
        for af in self._active():
            if m.id in af.targets:
                af.updated(m, cause)

    # the Fly API and the public URLs
    def api_outage(self) -> Outage | None:
        return next((o for af in self._active() if (o := af.api_outage()) is not None), None)

    def url_outage(self, app: str) -> Outage | None:
        return next((o for af in self._active() if (o := af.url_outage(app)) is not None), None)


class FaultEngine:
    """Fires faults into the world of ``ctx``."""

    def __init__(self, ctx: FaultContext) -> None:
        self.ctx = ctx
        self._uid = itertools.count(1)

    def with_app(self, fault: Fault) -> Fault:
        """``fault`` with its app filled in when the kind needs one and the world has one app;
        ``ValueError`` when it cannot be."""
        cls = FAULTS.get(fault.kind)
        if cls is None:
            raise ValueError(f"unknown fault kind {fault.kind!r} (kinds: {', '.join(FAULTS)})")
        if fault.app is None and cls.app_rule == "required":
            if len(self.ctx.apps) != 1:
                raise ValueError(f"{fault.kind} needs an app")
            fault = dataclasses.replace(fault, app=next(iter(self.ctx.apps)))
        return fault

    def fire(self, fault: Fault) -> ActiveFault:
        """Fire ``fault`` now; it ends by itself at its ``until_s``."""
        ctx = self.ctx
        af = FAULTS[fault.kind](ctx, next(self._uid), fault, ctx.timeline.now)
        ctx.faults.append(af)
        targets = self._resolve(fault)
        if af.per_machine:
            af.targets = {m.id for m in targets}
        af.fire(targets)
        if fault.until_s is not None and af.active:
            ctx.timeline.schedule(max(fault.until_s, ctx.timeline.now), af.end,
                                  "until_s reached")
        return af

    def _resolve(self, fault: Fault) -> list[SimMachine]:
        """The machines ``fault.machines`` names (none when the fault names no app)."""
        if fault.app is None:
            return []
        machines = app_named(self.ctx.apps, fault.app).machines
        sel = fault.machines
        if sel == "all":
            return list(machines)
        if isinstance(sel, int):
            return list(machines[:sel])
        wanted = set(sel)
        return [m for m in machines if m.name in wanted or m.id in wanted]
