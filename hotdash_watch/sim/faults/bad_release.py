"""``bad_release``: a new release is deployed to every machine at once (strategy IMMEDIATE); its
image fails a share (``rate``) of requests, and at 1.0 crashes on start (the release then shows
``failed``). Only rolling every machine off the bad image cures it; a ``recover`` makes the image
healthy instead."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

from hotdash_watch.sim.faults.base import ActiveFault
from hotdash_watch.sim.flyd import REPLACE_S
from hotdash_watch.sim.model import Release, SimApp, SimMachine, app_named

__all__ = ["BadRelease"]


@dataclass(eq=False)
class BadRelease(ActiveFault):
    kind: ClassVar[str] = "bad_release"
    fields: ClassVar[frozenset[str]] = frozenset({"rate"})
    required: ClassVar[str | None] = "rate"
    degrades: ClassVar[bool] = True

    image: str | None = None  # the bad release's image

    def fire(self, targets: list[SimMachine]) -> None:
        super().fire(targets)
        self._deploy()

    def detail(self) -> str:
        return f" (rate {self.fault.rate or 0:g})"

    def _deploy(self) -> None:
        ctx = self.ctx
        now = ctx.timeline.now
        app = app_named(ctx.apps, str(self.fault.app))
        rate = float(self.fault.rate or 1.0)
        prev = app.releases[-1]
        rel = Release(
            version=prev.version + 1, id=ctx.ids.alnum(25),
            image=f"registry.fly.io/{app.name}:deployment-{ctx.ids.ulid(ctx.timeline.ts(now))}",
            created_s=now, status="running", stable=False, fail_rate=rate,
            strategy="IMMEDIATE", updated_s=now)
        app.releases.append(rel)
        self.image = rel.image
        self.targets = {m.id for m in app.machines}
        for m in app.machines:
            cfg = copy.deepcopy(m.config)
            cfg["image"] = rel.image
            cfg.setdefault("metadata", {}).update(fly_release_id=rel.id,
                                                  fly_release_version=str(rel.version))
            m.config = cfg
            running = m.state not in ("stopped", "suspended")
            ctx.flyd.begin_replace(m, launch=running, cause="deploy")
        ctx.timeline.after(REPLACE_S + 1.0, self._finish, app, rel)

    def _finish(self, app: SimApp, rel: Release) -> None:
        rel.status = "failed" if rel.fail_rate >= 1.0 else "complete"
        rel.stable = rel.status == "complete"
        rel.updated_s = self.ctx.timeline.now

    def end(self, how: str) -> None:
        if self.active and how == "recover":
            for rel in self.ctx.apps[str(self.fault.app)].releases:
                if rel.image == self.image:
                    rel.fail_rate = 0.0
        super().end(how)

    def updated(self, m: SimMachine, cause: str) -> None:
        if m.image != self.image:
            self.targets.discard(m.id)
            if not self.targets:
                self.cure(f"no machine runs the bad image any more ({cause} of "
                          f"{m.name} last)")
