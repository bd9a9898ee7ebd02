"""Log reports of one app over the window's span (``LogTally``): counts, hints, samples."""

from __future__ import annotations

from collections import Counter, deque

from hotdash_watch.probes.logs import MAX_SAMPLES, LogsReport

__all__ = ["LogTally"]


class LogTally:
    """Log reports of one app over the last ``span_s`` seconds (bounded by polls, not lines)."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._reports: deque[LogsReport] = deque()

    def add(self, report: LogsReport) -> None:
        if report.error is None:
            self._reports.append(report)

    def summary(self, now: float) -> dict[str, object]:
        while self._reports and self._reports[0].at < now - self.span_s:
            self._reports.popleft()
        counts: Counter[str] = Counter()
        hints: set[str] = set()
        samples: list[str] = []
        for r in self._reports:
            counts.update(dict(r.counts))
            hints.update(r.hints)
        for r in reversed(self._reports):
            samples.extend(s for s in r.samples if len(samples) < MAX_SAMPLES)
        return {"lines": sum(r.lines for r in self._reports), "counts": dict(counts),
                "dependency_hints": sorted(hints), "samples": samples}
