"""Incidents and their timelines.

Every ``Incident`` is one row of ``incidents`` holding its latest value, and its
``TimelineEntry`` lines are rows of ``timeline`` in order (``seq`` 1, 2, 3, ... within the
incident). Findings are stored in the ``reasons`` JSON column as the model encodes them; an
entry's ``action_id`` rides in its ``detail``.

Writes happen BEFORE actions: the pipeline calls ``save`` before it pages, mitigates or reports
a transition, and ``save`` returns only once its single transaction has committed, so a
restarted daemon finds every transition it may have acted on. The database itself guarantees
at most one open incident per app (the partial unique index ``one_open_incident_per_app``); a
save that would break that raises ``StoreError`` naming the incident already open.

Reads of incidents with their timelines are one statement (a join), so one consistent snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.exc import IntegrityError

from hotdash_watch.model.incident import (
    Event,
    Incident,
    State,
    TimelineEntry,
    decode_reasons,
    encode_reasons,
)
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.store.checks import check_json, opt_float
from hotdash_watch.records.store.engine import Database, StoreError
from hotdash_watch.records.tables import incidents, timeline

__all__ = ["Incidents"]

_ID_MAX = incidents.c.id.type.length


def _incident_row(inc: Incident) -> dict[str, Any]:
    if not inc.id or len(inc.id) > _ID_MAX:
        raise StoreError(f"incident id {inc.id!r} must be 1 to {_ID_MAX} characters")
    reasons = encode_reasons(inc.findings)
    check_json(reasons, f"incident {inc.id} reasons")
    check_json(inc.evidence, f"incident {inc.id} evidence")
    return {
        "id": inc.id,
        "app": inc.app,
        "state": State(inc.state).value,
        "severity": Severity(inc.severity).value,
        "max_severity": Severity(inc.max_severity).value,
        "opened_at": float(inc.opened_at),
        "updated_at": float(inc.updated_at),
        "severity_since": float(inc.severity_since),
        "monitoring_since": opt_float(inc.monitoring_since),
        "resolved_at": opt_float(inc.resolved_at),
        "reasons": reasons,
        "evidence": dict(inc.evidence),
    }


def _entry_row(incident_id: str, seq: int, e: TimelineEntry) -> dict[str, Any]:
    reasons = encode_reasons(e.findings, e.notes)
    check_json(reasons, f"incident {incident_id} timeline entry reasons")
    check_json(e.detail, f"incident {incident_id} timeline entry detail")
    detail = dict(e.detail) if e.action_id is None else {**e.detail, "action_id": e.action_id}
    return {
        "incident_id": incident_id,
        "seq": seq,
        "at": float(e.at),
        "event": Event(e.event).value,
        "state": State(e.state).value,
        "severity": Severity(e.severity).value,
        "reasons": reasons,
        "detail": detail,
    }


def _incident_of(row: Any, entries: Sequence[TimelineEntry] = ()) -> Incident:
    return Incident(
        id=row.id,
        app=row.app,
        state=State(row.state),
        severity=Severity(row.severity),
        max_severity=Severity(row.max_severity),
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        severity_since=row.severity_since,
        monitoring_since=row.monitoring_since,
        resolved_at=row.resolved_at,
        findings=decode_reasons(row.reasons)[0],
        evidence=dict(row.evidence or {}),
        timeline=tuple(entries),
    )


# The timeline columns of the incident+timeline join, under names that do not clash.
_T_COLS = [timeline.c[name].label(f"t_{name}")
           for name in ("seq", "at", "event", "state", "severity", "reasons", "detail")]


def _entry_of(row: Any) -> TimelineEntry:
    findings, notes = decode_reasons(row.t_reasons)
    detail = dict(row.t_detail or {})
    action_id = detail.pop("action_id", None)
    return TimelineEntry(
        at=row.t_at,
        event=Event(row.t_event),
        state=State(row.t_state),
        severity=Severity(row.t_severity),
        findings=findings,
        notes=notes,
        detail=detail,
        action_id=action_id if isinstance(action_id, int) else None,
    )


def _with_timelines() -> Select[Any]:
    """Incidents joined to their timelines: one statement, so one consistent snapshot."""
    joined = incidents.outerjoin(timeline, timeline.c.incident_id == incidents.c.id)
    return select(incidents, *_T_COLS).select_from(joined)


def _group(rows: Sequence[Any]) -> list[Incident]:
    """Fold the join's rows (ordered by incident, then seq) back into incidents."""
    order: dict[str, Any] = {}
    entries: dict[str, list[TimelineEntry]] = {}
    for row in rows:
        if row.id not in order:
            order[row.id] = row
            entries[row.id] = []
        if row.t_seq is not None:
            entries[row.id].append(_entry_of(row))
    return [_incident_of(row, entries[iid]) for iid, row in order.items()]


_OPEN = incidents.c.state != State.RESOLVED.value


class Incidents:
    """The ``incidents`` and ``timeline`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, incident: Incident, new_entries: Sequence[TimelineEntry] = ()) -> None:
        """Insert or update ``incident`` and append ``new_entries`` to its timeline, atomically.

        ``incident.timeline`` is not read: only ``new_entries`` are written, after the entries
        already stored. Durable when it returns. ``StoreError`` if the app already has another
        open incident, or when the write fails (then nothing of it is stored).
        """
        row = _incident_row(incident)
        entry_rows = [_entry_row(incident.id, 0, e) for e in new_entries]  # validates first
        try:
            async with self._db.writing(f"cannot save incident {incident.id}") as conn:
                # The upsert goes first: it takes the row (PostgreSQL) or database (SQLite)
                # write lock, so the max(seq) read below cannot race another writer.
                await conn.execute(self._db.upsert(incidents, "id", row))
                if entry_rows:
                    last = (await conn.execute(
                        select(func.coalesce(func.max(timeline.c.seq), 0))
                        .where(timeline.c.incident_id == incident.id)
                    )).scalar_one()
                    for n, entry_row in enumerate(entry_rows, start=1):
                        entry_row["seq"] = last + n
                    await conn.execute(insert(timeline), entry_rows)
        except StoreError as e:
            if isinstance(e.__cause__, IntegrityError) and incident.is_open:
                other = None
                with suppress(Exception):
                    other = await self._open_id_for(incident.app)
                if other is not None and other != incident.id:
                    raise StoreError(
                        f"cannot save incident {incident.id}: app {incident.app!r} already has "
                        f"an open incident {other}; only one may be open per app"
                    ) from e.__cause__
            raise

    async def get(self, incident_id: str) -> Incident | None:
        """The incident with its full timeline (ordered by seq), or ``None`` if unknown."""
        query = _with_timelines().where(incidents.c.id == incident_id).order_by(timeline.c.seq)
        found = await self._with_timelines(query, f"cannot read incident {incident_id}")
        return found[0] if found else None

    async def open_all(self) -> list[Incident]:
        """Every incident not resolved, newest first (by ``opened_at``), with timelines."""
        query = (_with_timelines().where(_OPEN)
                 .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc(), timeline.c.seq))
        return await self._with_timelines(query, "cannot read the open incidents")

    async def open_for(self, app: str) -> Incident | None:
        """The open incident of ``app`` with its timeline, or ``None``."""
        query = (_with_timelines().where(incidents.c.app == app, _OPEN)
                 .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc(), timeline.c.seq))
        found = await self._with_timelines(query, f"cannot read the open incident of {app!r}")
        return found[0] if found else None

    async def recent(self, *, app: str | None = None, state: str | None = None,
                     limit: int = 50) -> list[Incident]:
        """Incidents newest first (by ``opened_at``), optionally of one app and/or in one state;
        at most ``limit``; WITHOUT timelines (``timeline=()``)."""
        if limit <= 0:
            return []
        query = select(incidents)
        if app is not None:
            query = query.where(incidents.c.app == app)
        if state is not None:
            query = query.where(incidents.c.state == str(state))
        query = query.order_by(incidents.c.opened_at.desc(), incidents.c.id.desc()).limit(limit)
        async with self._db.reading("cannot list incidents") as conn:
            rows = (await conn.execute(query)).all()
        return [_incident_of(row) for row in rows]

    async def id_taken(self, incident_id: str) -> bool:
        """Whether an incident (open or resolved) already has this id."""
        async with self._db.reading(f"cannot look up incident {incident_id}") as conn:
            found = (await conn.execute(
                select(incidents.c.id).where(incidents.c.id == incident_id)
            )).first()
        return found is not None

    async def _with_timelines(self, query: Select[Any], what: str) -> list[Incident]:
        async with self._db.reading(what) as conn:
            rows = (await conn.execute(query)).all()
        return _group(rows)

    async def _open_id_for(self, app: str) -> str | None:
        async with self._db.reading(f"cannot read the open incident of {app!r}") as conn:
            return (await conn.execute(
                select(incidents.c.id).where(incidents.c.app == app, _OPEN)
            )).scalar_one_or_none()
