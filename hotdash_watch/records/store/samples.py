"""Per-app samples: the error ratio, p95 latency and severity of each evaluation while an
incident is open, which the post-incident report draws. A number that is not finite is
stored as NULL."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import delete, insert, select

from hotdash_watch.records.store.engine import Database
from hotdash_watch.records.tables import samples

__all__ = ["Sample", "Samples"]

Sample = tuple[str, float, float | None, float | None, str | None]
"""(app, at, error_ratio, p95_ms, severity)."""


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


class Samples:
    """The ``samples`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, rows: Sequence[Sample]) -> None:
        """Append (app, at, error_ratio, p95_ms, severity) rows; non-finite numbers become None."""
        if not rows:
            return
        values = [{"app": a, "at": float(at), "error_ratio": _finite(r), "p95_ms": _finite(p),
                   "severity": sev} for a, at, r, p, sev in rows]
        async with self._db.writing("cannot write samples") as conn:
            await conn.execute(insert(samples), values)

    async def between(self, app: str, start: float, end: float
                      ) -> list[tuple[float, float | None, float | None, str | None]]:
        """(at, error_ratio, p95_ms, severity) of ``app`` between ``start`` and ``end``."""
        query = (select(samples.c.at, samples.c.error_ratio, samples.c.p95_ms,
                        samples.c.severity)
                 .where(samples.c.app == app, samples.c.at >= start, samples.c.at <= end)
                 .order_by(samples.c.at))
        async with self._db.reading(f"cannot read samples of {app}") as conn:
            return [tuple(r) for r in (await conn.execute(query)).all()]  # type: ignore[misc]

    async def prune(self, before: float) -> None:
        """Drop every sample taken before ``before``."""
        async with self._db.writing("cannot prune samples") as conn:
            await conn.execute(delete(samples).where(samples.c.at < before))
