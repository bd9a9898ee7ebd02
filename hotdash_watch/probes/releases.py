"""The releases probe: current and previous release, for deploy correlation and rollback."""

from __future__ import annotations

from dataclasses import dataclass

from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient, FlyError, Release

__all__ = ["ReleasesProbe", "ReleasesReport"]


@dataclass(frozen=True, slots=True)
class ReleasesReport:
    app: str
    at: float
    current: Release | None = None
    previous: Release | None = None  # the newest earlier release that completed
    error: str | None = None

    def since_deploy_s(self, now: float) -> float | None:
        return None if self.current is None else now - self.current.created_at

    def as_evidence(self, now: float) -> dict[str, object]:
        if self.current is None:
            return {}
        since = self.since_deploy_s(now)
        return {
            "current_version": self.current.version,
            "current_image": self.current.image_ref,
            "deployed_s_ago": None if since is None else round(since),
            "previous_version": self.previous.version if self.previous else None,
            "previous_image": self.previous.image_ref if self.previous else None,
        }


class ReleasesProbe:
    kind = "releases"

    def __init__(self, app: str, client: FlyClient, clock: Clock) -> None:
        self.app = app
        self.name = "releases"
        self.client = client
        self.clock = clock

    async def run(self) -> ReleasesReport:
        try:
            releases = await self.client.releases(self.app, limit=10)
        except FlyError as e:
            return ReleasesReport(self.app, self.clock.timestamp(),
                                  error=f"{type(e).__name__}: {e}")
        now = self.clock.timestamp()
        if not releases:
            return ReleasesReport(self.app, now)
        current = releases[0]
        previous = next((r for r in releases[1:] if r.status == "complete"), None)
        return ReleasesReport(self.app, now, current, previous)
