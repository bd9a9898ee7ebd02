"""The logs probe: new lines from Fly's logs polling API, counted by pattern.

Each poll returns only lines not seen before (``LogFollower`` keeps the continuation token and
the ids already read). Lines are counted by the runbook's patterns (error, timeout, exception,
failed, oom, slow); a few samples per pattern are kept as evidence, and lines that point at a
dependency (the database / Supabase, the model API / OpenAI, timeouts) are marked as hints,
because a dependency outage is paged, not restarted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient, FlyError, LogFollower

__all__ = ["DEPENDENCY_HINTS", "PATTERNS", "LogsProbe", "LogsReport", "scan"]

PATTERNS: dict[str, re.Pattern[str]] = {
    "error": re.compile(r"\berror\b", re.I),
    "timeout": re.compile(r"time[d ]?out", re.I),
    "exception": re.compile(r"exception|traceback", re.I),
    "failed": re.compile(r"\bfail(ed|ure)?\b", re.I),
    "oom": re.compile(r"out of memory|oom[ -]?kill", re.I),
    "slow": re.compile(r"\bslow\b", re.I),
}
DEPENDENCY_HINTS: dict[str, re.Pattern[str]] = {
    "database (Supabase)": re.compile(r"supabase|postgres|database|\bdb\b", re.I),
    "model API (OpenAI)": re.compile(r"openai", re.I),
    "upstream timeouts": re.compile(r"upstream.*time[d ]?out|time[d ]?out.*(connect|upstream)",
                                    re.I),
}
MAX_SAMPLES = 5


def scan(messages: list[str]) -> tuple[Counter[str], list[str], set[str]]:
    """Counts by pattern, sample lines (matching any pattern) and dependency hints."""
    counts: Counter[str] = Counter()
    samples: list[str] = []
    hints: set[str] = set()
    for msg in messages:
        hit = False
        for name, rx in PATTERNS.items():
            if rx.search(msg):
                counts[name] += 1
                hit = True
        if hit:
            if len(samples) < MAX_SAMPLES:
                samples.append(msg[:300])
            for hint, rx in DEPENDENCY_HINTS.items():
                if rx.search(msg):
                    hints.add(hint)
    return counts, samples, hints


@dataclass(frozen=True, slots=True)
class LogsReport:
    app: str
    at: float
    lines: int
    counts: tuple[tuple[str, int], ...]
    samples: tuple[str, ...]
    hints: tuple[str, ...]
    error: str | None = None


class LogsProbe:
    """Polls the app's logs and reports what is new since the last poll."""

    kind = "logs"

    def __init__(self, app: str, client: FlyClient, clock: Clock) -> None:
        self.app = app
        self.name = "logs"
        self.clock = clock
        self.follower = LogFollower(client, app)

    async def run(self) -> LogsReport:
        try:
            lines = await self.follower.poll()
        except FlyError as e:
            return LogsReport(self.app, self.clock.timestamp(), 0, (), (), (),
                              error=f"{type(e).__name__}: {e}")
        counts, samples, hints = scan([line.message for line in lines])
        return LogsReport(self.app, self.clock.timestamp(), len(lines),
                          tuple(sorted(counts.items())), tuple(samples), tuple(sorted(hints)))
