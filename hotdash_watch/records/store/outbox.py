"""The paging outbox: every page, one row per (page key, channel), written before it is sent.

Rows are queued ``pending`` (or ``silenced`` while a silence covers the app) and leave
``pending`` exactly once: the delivery loop decides what an attempt means (``notify.delivery``)
and this repository writes it, refusing to touch a row that has left ``pending`` already, so a
page marked sent is never sent again. A (key, channel) is queued at most once, whatever became
of the first row. Handing a page over closes its row and queues the copy on the other channel
in one transaction.

Due rows come oldest first, and a row behind an older pending row of its channel that is not
due yet waits for it: each channel's pages go out in the order they were queued. The polling
statements are built once, with ``now`` and ``limit`` bound per call: the delivery loop runs
them every few seconds, and building them each time cost more than running them on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update

from hotdash_watch.model.page import OutboxRow, OutboxStats, PageState
from hotdash_watch.records.store.checks import check_json, opt_float
from hotdash_watch.records.store.engine import Database, StoreError
from hotdash_watch.records.tables import outbox

__all__ = ["Pages"]

_OUTBOX_FIELDS = ("key", "channel", "incident_id", "event", "severity", "page", "state",
                  "next_attempt_at", "created_at")
_CLOSING = (PageState.HANDED_OVER, PageState.FAILED)


def _outbox_row(row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [f for f in _OUTBOX_FIELDS if f not in row]
    if missing:
        raise StoreError(f"outbox row lacks {', '.join(missing)}")
    key = str(row["key"])
    if not key or len(key) > outbox.c.key.type.length:
        raise StoreError(f"page key {key!r} must be 1 to {outbox.c.key.type.length} characters")
    if not isinstance(row["page"], Mapping):
        raise StoreError(f"page {key}: the page must be a JSON object")
    check_json(row["page"], f"page {key}")
    state = PageState(row["state"]).value
    return {
        "key": key,
        "channel": str(row["channel"]),
        "incident_id": str(row["incident_id"]),
        "event": str(row["event"]),
        "severity": str(row["severity"]),
        "page": dict(row["page"]),
        "state": state,
        "attempts": int(row.get("attempts", 0)),
        "next_attempt_at": float(row["next_attempt_at"]),
        "created_at": float(row["created_at"]),
        "sent_at": opt_float(row.get("sent_at")),
        "last_error": row.get("last_error"),
    }


def _outbox_of(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row.id, key=row.key, channel=row.channel, incident_id=row.incident_id,
        event=row.event, severity=row.severity, page=dict(row.page or {}),
        state=PageState(row.state), attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        created_at=row.created_at, sent_at=row.sent_at, last_error=row.last_error,
    )


def _older_pending(now: Any = None) -> Any:
    """EXISTS: a pending row of the same channel queued before the outer row (and, with
    ``now``, not due yet): the outer row must wait for it, so each channel keeps its order."""
    o, p = outbox, outbox.alias("older")
    conds = [
        p.c.channel == o.c.channel,
        p.c.state == PageState.PENDING.value,
        or_(p.c.created_at < o.c.created_at,
            and_(p.c.created_at == o.c.created_at, p.c.id < o.c.id)),
    ]
    if now is not None:
        conds.append(p.c.next_attempt_at > now)
    return exists().where(*conds)


_PENDING = outbox.c.state == PageState.PENDING.value
_DUE_PAGES = (select(outbox)
              .where(_PENDING, outbox.c.next_attempt_at <= bindparam("now"),
                     ~_older_pending(bindparam("now")))
              .order_by(outbox.c.created_at, outbox.c.id).limit(bindparam("limit")))
_DEPTH = select(func.count(), func.min(outbox.c.created_at)).where(_PENDING)
_NEXT_DUE = select(func.min(outbox.c.next_attempt_at)).where(_PENDING, ~_older_pending())


class Pages:
    """The ``outbox`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Queue pages, one row per (key, channel), in one transaction; return the new ids.

        Each row maps ``key``, ``channel``, ``incident_id``, ``event``, ``severity``, ``page``
        (JSON object), ``state`` (pending or silenced), ``next_attempt_at`` and ``created_at``
        (and optionally ``attempts``). A (key, channel) already queued is skipped, whatever its
        state: queueing the same page twice never sends it twice. Durable when it returns.
        """
        values = [_outbox_row(r) for r in rows]
        if not values:
            return []
        async with self._db.writing("cannot queue pages") as conn:
            found = await conn.execute(
                self._db.insert_ignore(outbox, ("key", "channel"), values)
                .returning(outbox.c.id))
            return sorted(found.scalars().all())

    async def due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        """Pending rows due at ``now``, oldest first (``created_at``, then ``id``).

        A row behind an older pending row of its channel that is not due yet is not returned:
        each channel's pages go out in the order they were queued.
        """
        if limit <= 0:
            return []
        async with self._db.reading("cannot read due pages") as conn:
            rows = (await conn.execute(_DUE_PAGES, {"now": now, "limit": limit})).all()
            return [_outbox_of(r) for r in rows]

    async def pending(self, channel: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Pending rows (due or not), oldest first, optionally of one channel."""
        if limit <= 0:
            return []
        query = select(outbox).where(_PENDING)
        if channel is not None:
            query = query.where(outbox.c.channel == channel)
        query = query.order_by(outbox.c.created_at, outbox.c.id).limit(limit)
        async with self._db.reading("cannot read pending pages") as conn:
            return [_outbox_of(r) for r in (await conn.execute(query)).all()]

    async def mark(self, page_id: int, state: str, attempts: int, next_attempt_at: float,
                   sent_at: float | None = None, last_error: str | None = None) -> bool:
        """Record an attempt's outcome on a PENDING row; False when the row is not pending
        (already sent, failed, silenced or handed over: such a row never changes again)."""
        values = {"state": PageState(state).value, "attempts": int(attempts),
                  "next_attempt_at": float(next_attempt_at), "sent_at": opt_float(sent_at),
                  "last_error": last_error}
        async with self._db.writing(f"cannot mark page {page_id}") as conn:
            done = await conn.execute(
                update(outbox).where(outbox.c.id == page_id, _PENDING).values(**values))
            return bool(done.rowcount)

    async def hand_over(self, page_id: int, new_row: Mapping[str, Any], *,
                        state: str = PageState.HANDED_OVER.value, attempts: int,
                        last_error: str | None) -> int | None:
        """Atomically queue ``new_row`` (the page on another channel) and close the pending
        row ``page_id`` as ``state`` (handed_over, or failed). Returns the new row's id, or
        None when that channel already had the page (then only the old row is closed).
        ``StoreError`` if ``page_id`` is not pending (nothing is written then)."""
        value = _outbox_row(new_row)
        closing = PageState(state)
        if closing not in _CLOSING:
            raise StoreError(f"page {page_id} can be handed over as handed_over or failed, "
                             f"not {closing.value}")
        async with self._db.writing(
                f"cannot hand page {page_id} over to {value['channel']}") as conn:
            closed = await conn.execute(
                update(outbox).where(outbox.c.id == page_id, _PENDING)
                .values(state=closing.value, attempts=int(attempts), last_error=last_error))
            if not closed.rowcount:
                raise StoreError(f"cannot hand page {page_id} over: it is not pending")
            found = await conn.execute(
                self._db.insert_ignore(outbox, ("key", "channel"), [value])
                .returning(outbox.c.id))
            return found.scalar_one_or_none()

    async def stats(self, now: float) -> OutboxStats:
        """Pending depth, the oldest pending row's age at ``now``, the next due time."""
        async with self._db.reading("cannot read the outbox") as conn:
            depth, oldest = (await conn.execute(_DEPTH)).one()
            nxt = (await conn.execute(_NEXT_DUE)).scalar_one_or_none() if depth else None
        return OutboxStats(depth=int(depth),
                           oldest_age_s=0.0 if oldest is None else max(0.0, now - oldest),
                           next_attempt_at=nxt)

    async def newest(self, incident_id: str | None = None, limit: int = 100
                     ) -> list[OutboxRow]:
        """Outbox rows newest first (``created_at``, then ``id``), optionally of one incident."""
        if limit <= 0:
            return []
        query = select(outbox)
        if incident_id is not None:
            query = query.where(outbox.c.incident_id == incident_id)
        query = query.order_by(outbox.c.created_at.desc(), outbox.c.id.desc()).limit(limit)
        async with self._db.reading("cannot list pages") as conn:
            return [_outbox_of(r) for r in (await conn.execute(query)).all()]
