"""Small daemon state: budgets, heartbeats, channel health, as JSON values under string keys.

A value is replaced whole on every write, and ``at`` (the caller's time, epoch seconds) is
recorded with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hotdash_watch.records.store.checks import check_json
from hotdash_watch.records.store.engine import Database
from hotdash_watch.records.tables import kv

__all__ = ["KeyValues"]


class KeyValues:
    """The ``kv`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or ``None`` when there is none."""
        async with self._db.reading(f"cannot read state {key!r}") as conn:
            return (await conn.execute(
                select(kv.c.value).where(kv.c.key == key)
            )).scalar_one_or_none()

    async def put(self, key: str, value: Any, at: float) -> None:
        """Store ``value`` (JSON: dicts, lists, str, int, finite float, bool, None) under
        ``key``, replacing any previous value; ``at`` (epoch seconds) is recorded with it."""
        check_json(value, f"state {key!r}")
        row = {"key": key, "value": value, "updated_at": float(at)}
        async with self._db.writing(f"cannot write state {key!r}") as conn:
            await conn.execute(self._db.upsert(kv, "key", row))
