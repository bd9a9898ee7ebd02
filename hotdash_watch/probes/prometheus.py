"""The metrics probe: real traffic seen at Fly's edge, preferred over probe results.

Two sources, one result (``TrafficReport`` per app):

* ``ScrapeTraffic`` reads a plain Prometheus ``/metrics`` text endpoint that carries Fly's edge
  series (``fly_edge_http_responses_count{app,status}`` and the
  ``fly_edge_http_response_time_seconds`` histogram), e.g. the simulator or a service that
  exposes its own. Counters become increases between scrapes (a decrease is a counter reset).
* ``QueryTraffic`` asks Fly's managed Prometheus (instant queries) for the same figures.

``TrafficWindow`` keeps an app's reports for the window's span and sums them over the
evaluation span: requests, 5xx, error ratio, p95 (from the summed histogram buckets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient, FlyError
from hotdash_watch.fly.exposition import CounterRates, parse_exposition

__all__ = ["QueryTraffic", "ScrapeTraffic", "TrafficFacts", "TrafficReport"]

RESPONSES = "fly_edge_http_responses_count"
LATENCY = "fly_edge_http_response_time_seconds_bucket"


@dataclass(frozen=True, slots=True)
class TrafficReport:
    """Traffic of one app since the previous report (scrape) or over ``over_s`` (query)."""

    app: str
    at: float
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...] = ()  # (le seconds, count increase), cumulative
    p95_ms: float | None = None  # when the source computed it
    over_s: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TrafficFacts:
    requests: float
    errors: float
    error_ratio: float | None
    p95_ms: float | None
    over_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.over_s if self.over_s else 0.0

    def as_evidence(self) -> dict[str, object]:
        return {"requests": round(self.requests, 1), "errors_5xx": round(self.errors, 1),
                "error_ratio": None if self.error_ratio is None else round(self.error_ratio, 4),
                "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
                "rps": round(self.rps, 2), "over_s": self.over_s}


def _is_5xx(status: str) -> bool:
    return status.startswith("5")


class ScrapeTraffic:
    """Scrapes one /metrics endpoint for every watched app's edge series."""

    kind = "metrics"
    name = "metrics"
    app = "*"

    def __init__(self, url: str, apps: Sequence[str], session: aiohttp.ClientSession,
                 clock: Clock, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self.apps = tuple(apps)
        self.session = session
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s / clock.rate)
        self._rates = CounterRates()

    async def run(self) -> list[TrafficReport]:
        try:
            async with self.session.get(self.url, timeout=self.timeout) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                text = await resp.text()
            families = parse_exposition(text)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            now = self.clock.timestamp()
            return [TrafficReport(a, now, 0, 0, error=type(e).__name__) for a in self.apps]
        now = self.clock.timestamp()
        deltas = self._rates.update(
            {k: families.get(k, []) for k in (RESPONSES, LATENCY)}, now)
        requests = {a: 0.0 for a in self.apps}
        errors = {a: 0.0 for a in self.apps}
        buckets: dict[str, dict[float, float]] = {a: {} for a in self.apps}
        seen: set[str] = set()
        for d in deltas.values():
            app = d.labels.get("app")
            if app not in requests:
                continue
            seen.add(app)
            if d.name == RESPONSES:
                requests[app] += d.increase
                if _is_5xx(d.labels.get("status", "")):
                    errors[app] += d.increase
            else:
                le = float(d.labels.get("le", "+Inf"))
                buckets[app][le] = buckets[app].get(le, 0.0) + d.increase
        return [TrafficReport(a, now, requests[a], errors[a], tuple(sorted(buckets[a].items())))
                for a in self.apps if a in seen]


class QueryTraffic:
    """Asks Fly's managed Prometheus for one app's edge traffic over ``over_s``."""

    kind = "metrics"
    name = "metrics"

    def __init__(self, app: str, client: FlyClient, clock: Clock, *, over_s: float) -> None:
        self.app = app
        self.client = client
        self.clock = clock
        self.over_s = over_s

    async def run(self) -> list[TrafficReport]:
        sel = f'app="{self.app}"'
        rng = f"[{int(self.over_s)}s]"
        try:
            total = await self.client.query(f"sum(increase({RESPONSES}{{{sel}}}{rng}))")
            errs = await self.client.query(
                f'sum(increase({RESPONSES}{{{sel},status=~"5.*"}}{rng}))')
            p95 = await self.client.query(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(fly_edge_http_response_time_seconds_bucket{{{sel}}}{rng})))")
        except FlyError as e:
            return [TrafficReport(self.app, self.clock.timestamp(), 0, 0,
                                  error=type(e).__name__)]
        now = self.clock.timestamp()

        def first(samples: Sequence[object]) -> float | None:
            for s in samples:
                v = float(s.value)  # type: ignore[attr-defined]
                return None if math.isnan(v) else v
            return None

        p95_s = first(p95)
        return [TrafficReport(self.app, now, first(total) or 0.0, first(errs) or 0.0,
                              p95_ms=None if p95_s is None else p95_s * 1000,
                              over_s=self.over_s)]
