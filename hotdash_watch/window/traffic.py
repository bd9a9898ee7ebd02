"""Edge traffic of one app over the window's span (``TrafficWindow``), summed on demand."""

from __future__ import annotations

import math
from collections import deque

from hotdash_watch.fly.exposition import histogram_quantile
from hotdash_watch.probes.prometheus import TrafficFacts, TrafficReport

__all__ = ["TrafficWindow"]


class TrafficWindow:
    """An app's traffic reports over ``span_s``, summed over an evaluation span on demand."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._reports: deque[TrafficReport] = deque()

    def add(self, report: TrafficReport) -> None:
        if report.error is None:
            self._reports.append(report)

    def facts(self, now: float, over_s: float) -> TrafficFacts | None:
        while self._reports and self._reports[0].at < now - self.span_s:
            self._reports.popleft()
        recent = [r for r in self._reports if r.at > now - over_s]
        if not recent:
            return None
        if recent[-1].over_s is not None:  # a query result already covers its own span
            r = recent[-1]
            ratio = r.errors / r.requests if r.requests > 0 else None
            return TrafficFacts(r.requests, r.errors, ratio, r.p95_ms, r.over_s)
        requests = sum(r.requests for r in recent)
        errors = sum(r.errors for r in recent)
        merged: dict[float, float] = {}
        for r in recent:
            for le, count in r.buckets:
                merged[le] = merged.get(le, 0.0) + count
        p95 = histogram_quantile(0.95, sorted(merged.items())) if merged else None
        p95_ms = None if p95 is None or math.isnan(p95) else p95 * 1000
        return TrafficFacts(requests, errors, errors / requests if requests > 0 else None,
                            p95_ms, over_s)
