"""``Store``: the one object the rest of the watcher holds, over one repository per table.

The facade owns the engine: ``open`` parses the URL, creates the schema when missing and
refuses (``StoreError``, password hidden) when it cannot; ``close`` ends every connection, and
any call after it fails with ``StoreError``. Each method hands its work to the repository of
its table (``incidents``, ``state``, ``samples``, ``outbox``, ``actions``, ``silences``), whose
connections come from one ``Database`` handle, so every failure reaches the caller the same
way: as ``StoreError``, saying what could not be done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hotdash_watch.model.action import ActionRecord, Outcome
from hotdash_watch.model.incident import Incident, TimelineEntry
from hotdash_watch.model.page import OutboxRow, OutboxStats, PageState, Silence
from hotdash_watch.records.store.actions import Actions
from hotdash_watch.records.store.engine import (
    CONNECT_TIMEOUT_S,
    Database,
    StoreError,
    describe,
    engine_for,
    parse_url,
    redact_store_url,
    secrets_of,
)
from hotdash_watch.records.store.incidents import Incidents
from hotdash_watch.records.store.outbox import Pages
from hotdash_watch.records.store.samples import Sample, Samples
from hotdash_watch.records.store.silences import Silences
from hotdash_watch.records.store.state import KeyValues
from hotdash_watch.records.tables import metadata

__all__ = ["Store"]


class Store:
    """Incidents, timelines, daemon state, samples, pages, actions and silences over an
    ``AsyncEngine``; build with ``open``."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._db = Database(engine)
        self.url = url
        """The URL the store was opened with, password redacted: safe to log."""
        self._incidents = Incidents(self._db)
        self._state = KeyValues(self._db)
        self._samples = Samples(self._db)
        self._pages = Pages(self._db)
        self._actions = Actions(self._db)
        self._silences = Silences(self._db)

    # -- life ----------------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Store:
        """Connect to ``url`` and create the schema if missing; ``StoreError`` when impossible."""
        shown = redact_store_url(url)
        parsed = parse_url(url, shown)
        try:
            engine = engine_for(parsed, connect_timeout_s)
        except OSError as e:
            raise StoreError(
                f"cannot open the store {shown}: cannot create the directory "
                f"{Path(parsed.database or '').parent}: {e.strerror or e}"
            ) from None
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        except Exception as e:  # anything the driver raises: refused, timeout, auth, bad path
            with suppress(Exception):
                await engine.dispose()
            raise StoreError(
                f"cannot open the store {shown}: {describe(e, secrets_of(url))}"
            ) from None
        return cls(engine, shown)

    async def close(self) -> None:
        """Close every connection; later calls do nothing. The store cannot be used again."""
        if not self._db.closed:
            self._db.closed = True
            await self._db.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.backend

    async def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` now (for readiness checks)."""
        if self._db.closed:
            return False
        try:
            async with self._db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    # -- incidents (incidents.py) --------------------------------------------------------------

    async def save_incident(
        self, incident: Incident, new_entries: Sequence[TimelineEntry] = ()
    ) -> None:
        """Insert or update ``incident`` and append ``new_entries`` (not ``incident.timeline``)
        to its timeline in one transaction; durable when it returns. ``StoreError`` when the
        app already has another open incident or the write fails (nothing is stored then)."""
        await self._incidents.save(incident, new_entries)

    async def get_incident(self, incident_id: str) -> Incident | None:
        """The incident with its full timeline (ordered by seq), or ``None`` if unknown."""
        return await self._incidents.get(incident_id)

    async def open_incidents(self) -> list[Incident]:
        """Every incident not resolved, newest first (by ``opened_at``), with timelines."""
        return await self._incidents.open_all()

    async def open_incident_for(self, app: str) -> Incident | None:
        """The open incident of ``app`` with its timeline, or ``None``."""
        return await self._incidents.open_for(app)

    async def list_incidents(
        self, *, app: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[Incident]:
        """Incidents newest first (by ``opened_at``), optionally of one app and/or in one state;
        at most ``limit``; WITHOUT timelines (``timeline=()``)."""
        return await self._incidents.recent(app=app, state=state, limit=limit)

    async def incident_id_taken(self, incident_id: str) -> bool:
        """Whether an incident (open or resolved) already has this id."""
        return await self._incidents.id_taken(incident_id)

    # -- daemon state (state.py) ---------------------------------------------------------------

    async def get_state(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or ``None`` when there is none."""
        return await self._state.get(key)

    async def put_state(self, key: str, value: Any, at: float) -> None:
        """Store the JSON ``value`` under ``key``, replacing any previous value, at ``at``."""
        await self._state.put(key, value, at)

    # -- samples (samples.py) ------------------------------------------------------------------

    async def add_samples(self, rows: Sequence[Sample]) -> None:
        """Append (app, at, error_ratio, p95_ms, severity) rows; non-finite numbers become None."""
        await self._samples.add(rows)

    async def samples(self, app: str, start: float, end: float
                      ) -> list[tuple[float, float | None, float | None, str | None]]:
        """(at, error_ratio, p95_ms, severity) of ``app`` between ``start`` and ``end``."""
        return await self._samples.between(app, start, end)

    async def prune_samples(self, before: float) -> None:
        """Drop every sample taken before ``before``."""
        await self._samples.prune(before)

    # -- outbox (outbox.py) --------------------------------------------------------------------

    async def enqueue_pages(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Queue pages, one row per (key, channel), in one transaction; the new rows' ids. A
        (key, channel) already queued is skipped, whatever its state. Durable when it returns."""
        return await self._pages.enqueue(rows)

    async def due_pages(self, now: float, limit: int = 100) -> list[OutboxRow]:
        """Pending rows due at ``now``, oldest first, each channel's in the order queued."""
        return await self._pages.due(now, limit)

    async def pending_pages(self, channel: str | None = None, limit: int = 1000
                            ) -> list[OutboxRow]:
        """Pending rows (due or not), oldest first, optionally of one channel."""
        return await self._pages.pending(channel, limit)

    async def mark_page(
        self,
        page_id: int,
        state: str,
        attempts: int,
        next_attempt_at: float,
        sent_at: float | None = None,
        last_error: str | None = None,
    ) -> bool:
        """Record an attempt's outcome on a PENDING row; False when the row is not pending
        (already sent, failed, silenced or handed over: such a row never changes again)."""
        return await self._pages.mark(page_id, state, attempts, next_attempt_at,
                                      sent_at=sent_at, last_error=last_error)

    async def hand_over_page(
        self,
        page_id: int,
        new_row: Mapping[str, Any],
        *,
        state: str = PageState.HANDED_OVER.value,
        attempts: int,
        last_error: str | None,
    ) -> int | None:
        """Close the pending row ``page_id`` as ``state`` (handed_over or failed) and queue
        ``new_row`` in one transaction; the new row's id, or None when its channel had the page
        already. ``StoreError`` (nothing written) when ``page_id`` is not pending."""
        return await self._pages.hand_over(page_id, new_row, state=state, attempts=attempts,
                                           last_error=last_error)

    async def outbox_stats(self, now: float) -> OutboxStats:
        """Pending depth, the oldest pending row's age at ``now``, the next due time."""
        return await self._pages.stats(now)

    async def list_pages(self, incident_id: str | None = None, limit: int = 100
                         ) -> list[OutboxRow]:
        """Outbox rows newest first (``created_at``, then ``id``), optionally of one incident."""
        return await self._pages.newest(incident_id, limit)

    # -- actions (actions.py) ------------------------------------------------------------------

    async def add_action(self, record: ActionRecord) -> ActionRecord:
        """Store a new action row; the record with its id. Durable when it returns."""
        return await self._actions.add(record)

    async def end_action(self, action_id: int, outcome: Outcome, ended_at: float,
                         detail: Mapping[str, Any] | None = None) -> None:
        """Record how the action ended (or, with ``Outcome.STARTED``, its progress)."""
        await self._actions.end(action_id, outcome, ended_at, detail)

    async def actions_since(self, since: float, *, app: str | None = None,
                            incident_id: str | None = None) -> list[ActionRecord]:
        """Actions started at or after ``since`` (of one app / incident), oldest first."""
        return await self._actions.since(since, app=app, incident_id=incident_id)

    async def unfinished_actions(self) -> list[ActionRecord]:
        """Actions that were started and never ended (the watcher stopped during them)."""
        return await self._actions.unfinished()

    # -- silences (silences.py) ----------------------------------------------------------------

    async def add_silence(
        self,
        app: str,
        starts_at: float,
        ends_at: float,
        *,
        author: str,
        reason: str,
        created_at: float,
        suspend_mitigation: bool = False,
    ) -> Silence:
        """Store a silence of ``app`` (``"*"`` for every app) from ``starts_at`` to
        ``ends_at``; ``StoreError`` when it would end before it starts or names no app."""
        return await self._silences.add(app, starts_at, ends_at, author=author, reason=reason,
                                        created_at=created_at,
                                        suspend_mitigation=suspend_mitigation)

    async def active_silences(self, now: float) -> list[Silence]:
        """Silences in force at ``now`` (``starts_at <= now < ends_at``), oldest first."""
        return await self._silences.active(now)

    async def list_silences(self, limit: int = 100) -> list[Silence]:
        """Every silence (past, active, future), newest start first."""
        return await self._silences.newest(limit)

    async def end_silence(self, silence_id: int, at: float) -> Silence | None:
        """End the silence at ``at`` (never later than it was to end); the silence as it is
        now, or None when unknown."""
        return await self._silences.end(silence_id, at)
