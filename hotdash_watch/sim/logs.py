"""The apps' logs: the lines the simulated machines, flyd and the proxy write, and the pages of
Fly's logs polling API (what ``fly logs`` polls) over them.

Every line has a strictly increasing time (by 1 µs when two would share one), so the
``next_token`` of a page (the last line's time in ns) always moves on; each app keeps its newest
``MAX_LOG_LINES``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

from hotdash_watch.sim.ids import IdSource, epoch_ns, rfc3339
from hotdash_watch.sim.model import ApiError, LogLine, SimApp, SimMachine, Timeline

__all__ = ["Logs"]

MAX_LOG_LINES = 200_000
PAGE_LINES = 100
#: How far back the first page (no ``next_token``) reaches.
LOOKBACK_S = 86400.0


class Logs:
    """Writes the apps' log lines and answers the logs API."""

    def __init__(self, timeline: Timeline, apps: Mapping[str, SimApp], ids: IdSource) -> None:
        self.timeline = timeline
        self.apps = apps
        self.ids = ids

    def log(self, app: SimApp | None, m: SimMachine | None, message: str, *,
            level: str = "info", provider: str = "app", t: float | None = None) -> None:
        """One line in ``app``'s logs, from machine ``m`` (or the app), at ``t`` (default now)."""
        if app is None:
            return
        at = self.timeline.now if t is None else t
        if app.logs and at <= app.logs[-1].t:
            # Strictly increasing (by 1 µs, the cursor's resolution): a page of lines that all
            # shared one time would give a next_token that never moves past them.
            at = app.logs[-1].t + 1e-6
        ts = self.timeline.ts(at)
        line = LogLine(at, epoch_ns(ts), self.ids.ulid(ts), message, level,
                       m.id if m else "", m.region if m else app.spec.region, provider)
        app.logs.append(line)
        app.log_ns.append(line.ns)
        if len(app.logs) > MAX_LOG_LINES:
            drop = len(app.logs) - MAX_LOG_LINES // 2
            del app.logs[:drop]
            del app.log_ns[:drop]

    def runner(self, m: SimMachine, message: str) -> None:
        """A line from flyd's runner about machine ``m``."""
        self.log(self.apps.get(m.app), m, message, provider="runner")

    def page(self, app: SimApp, next_token: str | None, instance: str | None,
             region: str | None) -> dict[str, Any]:
        """One page of the logs polling API (tests/fixtures/logs-page.json has the shape)."""
        if next_token:
            try:
                start_ns = int(next_token)
            except ValueError:
                raise ApiError(400, f"invalid next_token: {next_token!r}") from None
            i = bisect.bisect_left(app.log_ns, start_ns)
            lines = _filtered(app.logs[i:], instance, region, limit=PAGE_LINES, from_end=False)
        else:
            cutoff = epoch_ns(self.timeline.ts(self.timeline.now - LOOKBACK_S))
            i = bisect.bisect_left(app.log_ns, cutoff)
            lines = _filtered(app.logs[i:], instance, region, limit=PAGE_LINES, from_end=True)
        data = [{
            "id": line.id,
            "attributes": {
                "timestamp": rfc3339(line.ns / 1e9, 6),
                "message": line.message,
                "level": line.level,
                "instance": line.instance,
                "region": line.region,
                "meta": {"instance": line.instance, "region": line.region,
                         "event": {"provider": line.provider}},
            },
        } for line in lines]
        token = str(lines[-1].ns) if lines else (next_token or "")
        return {"data": data, "meta": {"next_token": token}}


def _filtered(lines: Iterable[LogLine], instance: str | None, region: str | None, *,
              limit: int, from_end: bool) -> list[LogLine]:
    sel = [ln for ln in lines
           if (not instance or ln.instance == instance) and (not region or ln.region == region)]
    return sel[-limit:] if from_end else sel[:limit]
