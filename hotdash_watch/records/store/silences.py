"""Silences: maintenance windows. Pages for an app (or every app, ``"*"``) queued between
``starts_at`` and ``ends_at`` are stored as silenced and never sent; a silence may also ask
the policy to hold its mitigation. Ending a silence early moves its end, never past it."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import insert, select, update

from hotdash_watch.model.page import Silence
from hotdash_watch.records.store.engine import Database, StoreError
from hotdash_watch.records.tables import silences

__all__ = ["Silences"]


def _silence_of(row: Any) -> Silence:
    return Silence(
        id=row.id, app=row.app, starts_at=row.starts_at, ends_at=row.ends_at,
        author=row.author, reason=row.reason, suspend_mitigation=bool(row.suspend_mitigation),
        created_at=row.created_at,
    )


class Silences:
    """The ``silences`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, app: str, starts_at: float, ends_at: float, *, author: str,
                  reason: str, created_at: float, suspend_mitigation: bool = False) -> Silence:
        """Store a silence of ``app`` (``"*"`` for every app) from ``starts_at`` to
        ``ends_at``; ``StoreError`` when it would end before it starts or names no app."""
        if not app:
            raise StoreError("a silence needs an app name (or \"*\" for every app)")
        if not (math.isfinite(starts_at) and math.isfinite(ends_at)) or ends_at <= starts_at:
            raise StoreError(f"a silence must end after it starts (starts_at {starts_at}, "
                             f"ends_at {ends_at})")
        row = {"app": app, "starts_at": float(starts_at), "ends_at": float(ends_at),
               "author": author, "reason": reason,
               "suspend_mitigation": bool(suspend_mitigation), "created_at": float(created_at)}
        async with self._db.writing(f"cannot add a silence of {app!r}") as conn:
            new_id = (await conn.execute(insert(silences).values(**row)
                                         .returning(silences.c.id))).scalar_one()
        return Silence(id=new_id, **row)

    async def active(self, now: float) -> list[Silence]:
        """Silences in force at ``now`` (``starts_at <= now < ends_at``), oldest first."""
        query = (select(silences)
                 .where(silences.c.starts_at <= now, silences.c.ends_at > now)
                 .order_by(silences.c.starts_at, silences.c.id))
        async with self._db.reading("cannot read silences") as conn:
            return [_silence_of(r) for r in (await conn.execute(query)).all()]

    async def newest(self, limit: int = 100) -> list[Silence]:
        """Every silence (past, active, future), newest start first."""
        if limit <= 0:
            return []
        query = (select(silences)
                 .order_by(silences.c.starts_at.desc(), silences.c.id.desc()).limit(limit))
        async with self._db.reading("cannot list silences") as conn:
            return [_silence_of(r) for r in (await conn.execute(query)).all()]

    async def end(self, silence_id: int, at: float) -> Silence | None:
        """End the silence at ``at`` (never later than it was to end; a silence not started
        yet then ends where it starts); the silence as it is now, or None when unknown."""
        async with self._db.writing(f"cannot end silence {silence_id}") as conn:
            row = (await conn.execute(
                select(silences).where(silences.c.id == silence_id))).first()
            if row is None:
                return None
            ends = min(row.ends_at, max(float(at), row.starts_at))
            await conn.execute(update(silences).where(silences.c.id == silence_id)
                               .values(ends_at=ends))
            row = (await conn.execute(
                select(silences).where(silences.c.id == silence_id))).one()
        return _silence_of(row)
