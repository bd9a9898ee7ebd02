"""The incident store: incidents, their timelines and small daemon state, in SQLite or PostgreSQL.

What it stores (schema in ``tables.py``):

* every ``Incident`` as one row holding its latest value, and its ``TimelineEntry`` lines in
  order (``seq`` 1, 2, 3, ... within the incident);
* small daemon state (budgets, heartbeats) as JSON values under string keys (``get_state`` /
  ``put_state``);
* the paging outbox: one row per (page key, channel), written before the page is sent
  (``enqueue_pages``, ``due_pages``, ``mark_page``, ``hand_over_page``, ``outbox_stats``,
  ``list_pages``), and silences (maintenance windows: ``add_silence``, ``active_silences``,
  ``list_silences``, ``end_silence``).

Writes happen BEFORE actions: the pipeline calls ``save_incident`` before it pages, mitigates or
reports a transition, and ``save_incident`` returns only once its single transaction has committed
(SQLite runs in WAL mode with ``synchronous=FULL``), so a restarted daemon finds every transition
it may have acted on. The database itself guarantees at most one open incident per app (a
partial unique index); a save that would break that raises ``StoreError``.

The store never reads the clock: every time it writes is one carried by the values it is given.

Supported URLs (``Store.open``):

* ``sqlite+aiosqlite:///relative/path.db``, ``sqlite+aiosqlite:////absolute/path.db`` - a file;
  its parent directory is created when missing;
* ``sqlite+aiosqlite:///:memory:`` - an in-memory database (one connection, lost on close);
* ``postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DB`` - ``sslmode=`` in the query is passed
  to asyncpg as ``ssl=``;
* the bare forms ``sqlite:///...``, ``postgresql://...`` and ``postgres://...``, mapped to the
  drivers above.

Every failure surfaces as ``StoreError``; its message shows the URL with the password replaced
by ``***`` and never the password itself.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import (
    Event,
    Incident,
    State,
    TimelineEntry,
    decode_reasons,
    encode_reasons,
)
from hotdash_watch.model.page import OutboxRow, OutboxStats, PageState, Silence
from hotdash_watch.model.severity import Severity
from hotdash_watch.pipeline.ports import StoreError  # the pass's port owns the error
from hotdash_watch.records.tables import (
    actions,
    incidents,
    kv,
    metadata,
    outbox,
    samples,
    silences,
    timeline,
)

__all__ = [
    "CONNECT_TIMEOUT_S",
    "OutboxRow",
    "OutboxStats",
    "PageState",
    "Silence",
    "Store",
    "StoreError",
    "redact_store_url",
]

CONNECT_TIMEOUT_S = 3.0
"""How long ``Store.open`` (and any later reconnect) waits for PostgreSQL to answer."""

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_SUPPORTED = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
_ID_MAX = incidents.c.id.type.length
_QUERY_PASSWORD = re.compile(r"(?i)(\bpassword=)[^&#]*")


_OUTBOX_FIELDS = ("key", "channel", "incident_id", "event", "severity", "page", "state",
                  "next_attempt_at", "created_at")


def _outbox_row(row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [f for f in _OUTBOX_FIELDS if f not in row]
    if missing:
        raise StoreError(f"outbox row lacks {', '.join(missing)}")
    key = str(row["key"])
    if not key or len(key) > outbox.c.key.type.length:
        raise StoreError(f"page key {key!r} must be 1 to {outbox.c.key.type.length} characters")
    if not isinstance(row["page"], Mapping):
        raise StoreError(f"page {key}: the page must be a JSON object")
    _check_json(row["page"], f"page {key}")
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
        "sent_at": _opt_float(row.get("sent_at")),
        "last_error": row.get("last_error"),
    }


def _outbox_of(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row.id, key=row.key, channel=row.channel, incident_id=row.incident_id,
        event=row.event, severity=row.severity, page=dict(row.page or {}),
        state=PageState(row.state), attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        created_at=row.created_at, sent_at=row.sent_at, last_error=row.last_error,
    )


def _silence_of(row: Any) -> Silence:
    return Silence(
        id=row.id, app=row.app, starts_at=row.starts_at, ends_at=row.ends_at,
        author=row.author, reason=row.reason, suspend_mitigation=bool(row.suspend_mitigation),
        created_at=row.created_at,
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


# The outbox's polling statements, built once (``now`` and ``limit`` are bound per call): the
# delivery loop runs them every few seconds, and building the alias each time cost more than
# running the query on SQLite.
_PENDING = outbox.c.state == PageState.PENDING.value
_DUE_PAGES = (select(outbox)
              .where(_PENDING, outbox.c.next_attempt_at <= bindparam("now"),
                     ~_older_pending(bindparam("now")))
              .order_by(outbox.c.created_at, outbox.c.id).limit(bindparam("limit")))
_DEPTH = select(func.count(), func.min(outbox.c.created_at)).where(_PENDING)
_NEXT_DUE = select(func.min(outbox.c.next_attempt_at)).where(_PENDING, ~_older_pending())


def redact_store_url(url: str) -> str:
    """``url`` with any password (in the user info or a ``password=`` query) shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _QUERY_PASSWORD.sub(r"\1***", url)
    at = rest.rfind("@")  # the last @: a raw password may hold one; erring hides more, not less
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    return _QUERY_PASSWORD.sub(r"\1***", f"{scheme}://{rest}")


def _secrets_of(url: str) -> list[str]:
    """The password texts found in ``url``, to scrub from driver messages."""
    found = []
    rest = url.partition("://")[2]
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        found.append(rest[:at].partition(":")[2])
    found += [m.group(0).partition("=")[2] for m in _QUERY_PASSWORD.finditer(url)]
    with suppress(Exception):
        parsed = make_url(url)
        if parsed.password:
            found.append(str(parsed.password))
    return sorted({s for s in found if s}, key=len, reverse=True)


def _describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """One line saying what went wrong, from the driver's own error when there is one."""
    orig: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig
        # An async driver's error arrives wrapped in SQLAlchemy's emulated DBAPI error; name the
        # driver's own (asyncpg's InvalidPasswordError says more than "Error").
        if orig.__cause__ is not None and str(orig.__cause__) == str(orig):
            orig = orig.__cause__
    lines = str(orig).strip().splitlines()
    if lines:
        text_ = lines[0]
    elif isinstance(orig, TimeoutError):
        text_ = "timed out"
    else:
        text_ = "no detail"
    for secret in secrets:
        text_ = text_.replace(secret, "***")
    if len(text_) > 300:
        text_ = text_[:297] + "..."
    return f"{text_} ({type(orig).__name__})"


def _check_json(value: Any, where: str) -> None:
    """Refuse what would not come back equal from both backends (NaN, non-str keys, objects)."""
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise StoreError(f"{where}: {value} is outside the 64-bit integers JSON columns keep")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StoreError(f"{where}: {value!r} cannot be stored as JSON (only finite numbers)")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise StoreError(f"{where}: key {k!r} is not a string")
            _check_json(v, f"{where}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
        return
    raise StoreError(f"{where}: {type(value).__name__} value cannot be stored as JSON")


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _action_row(a: ActionRecord) -> dict[str, Any]:
    _check_json(a.detail, f"action {a.kind} detail")
    return {"app": a.app, "incident_id": a.incident_id, "kind": a.kind.value,
            "target": a.target, "reason": a.reason, "text": a.text,
            "outcome": a.outcome.value, "guard": a.guard, "at": float(a.at),
            "ended_at": _opt_float(a.ended_at), "detail": dict(a.detail)}


def _action_of(row: Any) -> ActionRecord:
    return ActionRecord(id=row.id, app=row.app, incident_id=row.incident_id,
                        kind=ActionKind(row.kind), target=row.target, reason=row.reason,
                        text=row.text, outcome=Outcome(row.outcome), at=row.at,
                        ended_at=row.ended_at, guard=row.guard, detail=dict(row.detail or {}))


def _incident_row(inc: Incident) -> dict[str, Any]:
    if not inc.id or len(inc.id) > _ID_MAX:
        raise StoreError(f"incident id {inc.id!r} must be 1 to {_ID_MAX} characters")
    reasons = encode_reasons(inc.findings)
    _check_json(reasons, f"incident {inc.id} reasons")
    _check_json(inc.evidence, f"incident {inc.id} evidence")
    return {
        "id": inc.id,
        "app": inc.app,
        "state": State(inc.state).value,
        "severity": Severity(inc.severity).value,
        "max_severity": Severity(inc.max_severity).value,
        "opened_at": float(inc.opened_at),
        "updated_at": float(inc.updated_at),
        "severity_since": float(inc.severity_since),
        "monitoring_since": _opt_float(inc.monitoring_since),
        "resolved_at": _opt_float(inc.resolved_at),
        "reasons": reasons,
        "evidence": dict(inc.evidence),
    }


def _entry_row(incident_id: str, seq: int, e: TimelineEntry) -> dict[str, Any]:
    reasons = encode_reasons(e.findings, e.notes)
    _check_json(reasons, f"incident {incident_id} timeline entry reasons")
    _check_json(e.detail, f"incident {incident_id} timeline entry detail")
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


def _parse(url: str, shown: str) -> URL:
    scheme = url.partition("://")[0] if "://" in url else ""
    driver = _DRIVERS.get(scheme.lower())
    if driver is None:
        what = f"scheme {scheme!r} is not supported" if scheme else "the URL has no scheme"
        raise StoreError(f"cannot open the store {shown}: {what}; use {_SUPPORTED}")
    try:
        parsed = make_url(driver + url[len(scheme):])
    except Exception as e:  # ArgumentError, or ValueError for a port that is not a number
        raise StoreError(f"cannot open the store {shown}: malformed URL: "
                         f"{_describe(e, _secrets_of(url))}") from None
    if driver.startswith("postgresql"):
        query = dict(parsed.query)
        if "sslmode" in query:  # libpq's name; asyncpg takes the same modes as ssl=
            mode = query.pop("sslmode")
            query.setdefault("ssl", mode)
            parsed = parsed.set(query=query)
        if not parsed.database:
            raise StoreError(f"cannot open the store {shown}: the URL names no database")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _engine_for(parsed: URL, connect_timeout_s: float) -> AsyncEngine:
    if parsed.drivername == "sqlite+aiosqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            engine = create_async_engine(parsed, poolclass=StaticPool)
        else:
            if not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        parsed, pool_pre_ping=True, connect_args={"timeout": connect_timeout_s}
    )


def _dialect_insert(dialect: str) -> Any:
    """The backend's INSERT with ON CONFLICT, imported on first use (the PostgreSQL dialect
    package is large and a SQLite-only watcher never needs it)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


class Store:
    """Incidents, timelines and daemon state over an ``AsyncEngine``; build with ``open``."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._closed = False
        self.url = url
        """The URL the store was opened with, password redacted: safe to log."""

    # -- life ----------------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Store:
        """Connect to ``url`` and create the schema if missing; ``StoreError`` when impossible."""
        shown = redact_store_url(url)
        parsed = _parse(url, shown)
        try:
            engine = _engine_for(parsed, connect_timeout_s)
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
                f"cannot open the store {shown}: {_describe(e, _secrets_of(url))}"
            ) from None
        return cls(engine, shown)

    async def close(self) -> None:
        """Close every connection; later calls do nothing. The store cannot be used again."""
        if not self._closed:
            self._closed = True
            await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    async def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` now (for readiness checks)."""
        if self._closed:
            return False
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    # -- incidents -----------------------------------------------------------------------------

    async def save_incident(
        self, incident: Incident, new_entries: Sequence[TimelineEntry] = ()
    ) -> None:
        """Insert or update ``incident`` and append ``new_entries`` to its timeline, atomically.

        ``incident.timeline`` is not read: only ``new_entries`` are written, after the entries
        already stored. Durable when it returns. ``StoreError`` if the app already has another
        open incident, or when the write fails (then nothing of it is stored).
        """
        row = _incident_row(incident)
        entries = list(new_entries)
        entry_rows = [_entry_row(incident.id, 0, e) for e in entries]  # validates first
        try:
            with self._errors(f"cannot save incident {incident.id}"):
                async with self._engine.begin() as conn:
                    # The upsert goes first: it takes the row (PostgreSQL) or database (SQLite)
                    # write lock, so the max(seq) read below cannot race another writer.
                    await conn.execute(self._upsert(incidents, "id", row))
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

    async def get_incident(self, incident_id: str) -> Incident | None:
        """The incident with its full timeline (ordered by seq), or ``None`` if unknown."""
        query = _with_timelines().where(incidents.c.id == incident_id).order_by(timeline.c.seq)
        found = await self._incidents_with_timelines(query, f"cannot read incident {incident_id}")
        return found[0] if found else None

    async def open_incidents(self) -> list[Incident]:
        """Every incident not resolved, newest first (by ``opened_at``), with timelines."""
        query = (_with_timelines()
                 .where(incidents.c.state != State.RESOLVED.value)
                 .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc(), timeline.c.seq))
        return await self._incidents_with_timelines(query, "cannot read the open incidents")

    async def open_incident_for(self, app: str) -> Incident | None:
        """The open incident of ``app`` with its timeline, or ``None``."""
        query = (_with_timelines()
                 .where(incidents.c.app == app, incidents.c.state != State.RESOLVED.value)
                 .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc(), timeline.c.seq))
        found = await self._incidents_with_timelines(
            query, f"cannot read the open incident of {app!r}"
        )
        return found[0] if found else None

    async def list_incidents(
        self, *, app: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[Incident]:
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
        with self._errors("cannot list incidents"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_incident_of(row) for row in rows]

    async def incident_id_taken(self, incident_id: str) -> bool:
        """Whether an incident (open or resolved) already has this id."""
        with self._errors(f"cannot look up incident {incident_id}"):
            async with self._engine.connect() as conn:
                found = (await conn.execute(
                    select(incidents.c.id).where(incidents.c.id == incident_id)
                )).first()
        return found is not None

    # -- daemon state --------------------------------------------------------------------------

    async def get_state(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or ``None`` when there is none."""
        with self._errors(f"cannot read state {key!r}"):
            async with self._engine.connect() as conn:
                return (await conn.execute(
                    select(kv.c.value).where(kv.c.key == key)
                )).scalar_one_or_none()

    async def put_state(self, key: str, value: Any, at: float) -> None:
        """Store ``value`` (JSON: dicts, lists, str, int, finite float, bool, None) under
        ``key``, replacing any previous value; ``at`` (epoch seconds) is recorded with it."""
        _check_json(value, f"state {key!r}")
        row = {"key": key, "value": value, "updated_at": float(at)}
        with self._errors(f"cannot write state {key!r}"):
            async with self._engine.begin() as conn:
                await conn.execute(self._upsert(kv, "key", row))

    # -- samples -------------------------------------------------------------------------------

    async def add_samples(self, rows: Sequence[tuple[str, float, float | None, float | None,
                                                     str | None]]) -> None:
        """Append (app, at, error_ratio, p95_ms, severity) rows; non-finite numbers become None."""
        if not rows:
            return

        def finite(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        values = [{"app": a, "at": float(at), "error_ratio": finite(r), "p95_ms": finite(p),
                   "severity": sev} for a, at, r, p, sev in rows]
        with self._errors("cannot write samples"):
            async with self._engine.begin() as conn:
                await conn.execute(insert(samples), values)

    async def samples(self, app: str, start: float, end: float
                      ) -> list[tuple[float, float | None, float | None, str | None]]:
        """(at, error_ratio, p95_ms, severity) of ``app`` between ``start`` and ``end``."""
        query = (select(samples.c.at, samples.c.error_ratio, samples.c.p95_ms,
                        samples.c.severity)
                 .where(samples.c.app == app, samples.c.at >= start, samples.c.at <= end)
                 .order_by(samples.c.at))
        with self._errors(f"cannot read samples of {app}"):
            async with self._engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(query)).all()]  # type: ignore[misc]

    async def prune_samples(self, before: float) -> None:
        with self._errors("cannot prune samples"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(samples).where(samples.c.at < before))

    # -- outbox --------------------------------------------------------------------------------

    async def enqueue_pages(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Queue pages, one row per (key, channel), in one transaction; return the new ids.

        Each row maps ``key``, ``channel``, ``incident_id``, ``event``, ``severity``, ``page``
        (JSON object), ``state`` (pending or silenced), ``next_attempt_at`` and ``created_at``
        (and optionally ``attempts``). A (key, channel) already queued is skipped, whatever its
        state: queueing the same page twice never sends it twice. Durable when it returns.
        """
        values = [_outbox_row(r) for r in rows]
        if not values:
            return []
        with self._errors("cannot queue pages"):
            async with self._engine.begin() as conn:
                found = await conn.execute(
                    self._insert_ignore(outbox, ("key", "channel"), values)
                    .returning(outbox.c.id))
                return sorted(found.scalars().all())

    async def due_pages(self, now: float, limit: int = 100) -> list[OutboxRow]:
        """Pending rows due at ``now``, oldest first (``created_at``, then ``id``).

        A row behind an older pending row of its channel that is not due yet is not returned:
        each channel's pages go out in the order they were queued.
        """
        if limit <= 0:
            return []
        with self._errors("cannot read due pages"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_DUE_PAGES, {"now": now, "limit": limit})).all()
                return [_outbox_of(r) for r in rows]

    async def pending_pages(self, channel: str | None = None, limit: int = 1000
                            ) -> list[OutboxRow]:
        """Pending rows (due or not), oldest first, optionally of one channel."""
        if limit <= 0:
            return []
        query = select(outbox).where(outbox.c.state == PageState.PENDING.value)
        if channel is not None:
            query = query.where(outbox.c.channel == channel)
        query = query.order_by(outbox.c.created_at, outbox.c.id).limit(limit)
        with self._errors("cannot read pending pages"):
            async with self._engine.connect() as conn:
                return [_outbox_of(r) for r in (await conn.execute(query)).all()]

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
        values = {"state": PageState(state).value, "attempts": int(attempts),
                  "next_attempt_at": float(next_attempt_at), "sent_at": _opt_float(sent_at),
                  "last_error": last_error}
        with self._errors(f"cannot mark page {page_id}"):
            async with self._engine.begin() as conn:
                done = await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == page_id, outbox.c.state == PageState.PENDING.value)
                    .values(**values))
                return bool(done.rowcount)

    async def hand_over_page(
        self,
        page_id: int,
        new_row: Mapping[str, Any],
        *,
        state: str = PageState.HANDED_OVER.value,
        attempts: int,
        last_error: str | None,
    ) -> int | None:
        """Atomically queue ``new_row`` (the page on another channel) and close the pending
        row ``page_id`` as ``state`` (handed_over, or failed). Returns the new row's id, or
        None when that channel already had the page (then only the old row is closed).
        ``StoreError`` if ``page_id`` is not pending (nothing is written then)."""
        value = _outbox_row(new_row)
        closing = PageState(state)
        if closing not in (PageState.HANDED_OVER, PageState.FAILED):
            raise StoreError(f"page {page_id} can be handed over as handed_over or failed, "
                             f"not {closing.value}")
        with self._errors(f"cannot hand page {page_id} over to {value['channel']}"):
            async with self._engine.begin() as conn:
                closed = await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == page_id, outbox.c.state == PageState.PENDING.value)
                    .values(state=closing.value, attempts=int(attempts), last_error=last_error))
                if not closed.rowcount:
                    raise StoreError(f"cannot hand page {page_id} over: it is not pending")
                found = await conn.execute(
                    self._insert_ignore(outbox, ("key", "channel"), [value])
                    .returning(outbox.c.id))
                return found.scalar_one_or_none()

    async def outbox_stats(self, now: float) -> OutboxStats:
        """Pending depth, the oldest pending row's age at ``now``, the next due time."""
        with self._errors("cannot read the outbox"):
            async with self._engine.connect() as conn:
                depth, oldest = (await conn.execute(_DEPTH)).one()
                nxt = (await conn.execute(_NEXT_DUE)).scalar_one_or_none() if depth else None
        return OutboxStats(depth=int(depth),
                           oldest_age_s=0.0 if oldest is None else max(0.0, now - oldest),
                           next_attempt_at=nxt)

    async def list_pages(self, incident_id: str | None = None, limit: int = 100
                         ) -> list[OutboxRow]:
        """Outbox rows newest first (``created_at``, then ``id``), optionally of one incident."""
        if limit <= 0:
            return []
        query = select(outbox)
        if incident_id is not None:
            query = query.where(outbox.c.incident_id == incident_id)
        query = query.order_by(outbox.c.created_at.desc(), outbox.c.id.desc()).limit(limit)
        with self._errors("cannot list pages"):
            async with self._engine.connect() as conn:
                return [_outbox_of(r) for r in (await conn.execute(query)).all()]

    # -- actions -------------------------------------------------------------------------------

    async def add_action(self, record: ActionRecord) -> ActionRecord:
        """Store a new action row; the record with its id. Durable when it returns."""
        row = _action_row(record)
        with self._errors(f"cannot record {record.kind} of {record.target}"):
            async with self._engine.begin() as conn:
                new_id = (await conn.execute(insert(actions).values(**row)
                                             .returning(actions.c.id))).scalar_one()
        return dataclasses.replace(record, id=new_id)

    async def end_action(self, action_id: int, outcome: Outcome, ended_at: float,
                         detail: Mapping[str, Any] | None = None) -> None:
        """Record how the action ended (or, with ``Outcome.STARTED``, its progress)."""
        values: dict[str, Any] = {"outcome": outcome.value}
        if outcome.ended:
            values["ended_at"] = float(ended_at)
        if detail is not None:
            _check_json(dict(detail), f"action {action_id} detail")
            values["detail"] = dict(detail)
        with self._errors(f"cannot update action {action_id}"):
            async with self._engine.begin() as conn:
                await conn.execute(update(actions).where(actions.c.id == action_id)
                                   .values(**values))

    async def actions_since(self, since: float, *, app: str | None = None,
                            incident_id: str | None = None) -> list[ActionRecord]:
        """Actions started at or after ``since`` (of one app / incident), oldest first."""
        query = select(actions).where(actions.c.at >= since)
        if app is not None:
            query = query.where(actions.c.app == app)
        if incident_id is not None:
            query = query.where(actions.c.incident_id == incident_id)
        query = query.order_by(actions.c.at, actions.c.id)
        with self._errors("cannot read actions"):
            async with self._engine.connect() as conn:
                return [_action_of(r) for r in (await conn.execute(query)).all()]

    async def unfinished_actions(self) -> list[ActionRecord]:
        """Actions that were started and never ended (the watcher stopped during them)."""
        query = (select(actions).where(actions.c.outcome == Outcome.STARTED.value)
                 .order_by(actions.c.at, actions.c.id))
        with self._errors("cannot read unfinished actions"):
            async with self._engine.connect() as conn:
                return [_action_of(r) for r in (await conn.execute(query)).all()]

    # -- silences ------------------------------------------------------------------------------

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
        if not app:
            raise StoreError("a silence needs an app name (or \"*\" for every app)")
        if not (math.isfinite(starts_at) and math.isfinite(ends_at)) or ends_at <= starts_at:
            raise StoreError(f"a silence must end after it starts (starts_at {starts_at}, "
                             f"ends_at {ends_at})")
        row = {"app": app, "starts_at": float(starts_at), "ends_at": float(ends_at),
               "author": author, "reason": reason,
               "suspend_mitigation": bool(suspend_mitigation), "created_at": float(created_at)}
        with self._errors(f"cannot add a silence of {app!r}"):
            async with self._engine.begin() as conn:
                new_id = (await conn.execute(insert(silences).values(**row)
                                             .returning(silences.c.id))).scalar_one()
        return Silence(id=new_id, **row)

    async def active_silences(self, now: float) -> list[Silence]:
        """Silences in force at ``now`` (``starts_at <= now < ends_at``), oldest first."""
        query = (select(silences)
                 .where(silences.c.starts_at <= now, silences.c.ends_at > now)
                 .order_by(silences.c.starts_at, silences.c.id))
        with self._errors("cannot read silences"):
            async with self._engine.connect() as conn:
                return [_silence_of(r) for r in (await conn.execute(query)).all()]

    async def list_silences(self, limit: int = 100) -> list[Silence]:
        """Every silence (past, active, future), newest start first."""
        if limit <= 0:
            return []
        query = (select(silences)
                 .order_by(silences.c.starts_at.desc(), silences.c.id.desc()).limit(limit))
        with self._errors("cannot list silences"):
            async with self._engine.connect() as conn:
                return [_silence_of(r) for r in (await conn.execute(query)).all()]

    async def end_silence(self, silence_id: int, at: float) -> Silence | None:
        """End the silence at ``at`` (never later than it was to end; a silence not started
        yet then ends where it starts); the silence as it is now, or None when unknown."""
        with self._errors(f"cannot end silence {silence_id}"):
            async with self._engine.begin() as conn:
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

    # -- helpers -------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"{what}: the store is closed")
        try:
            yield
        except (SQLAlchemyError, OSError) as e:
            raise StoreError(f"{what}: {_describe(e)}") from e

    def _upsert(self, table: Any, key: str, row: dict[str, Any]) -> Any:
        ins = _dialect_insert(self._engine.dialect.name)
        stmt = ins(table).values(**row)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={col: stmt.excluded[col] for col in row if col != key},
        )

    def _insert_ignore(self, table: Any, keys: Sequence[str], rows: list[dict[str, Any]]) -> Any:
        ins = _dialect_insert(self._engine.dialect.name)
        return ins(table).values(rows).on_conflict_do_nothing(
            index_elements=[table.c[k] for k in keys])

    async def _incidents_with_timelines(self, query: Select[Any], what: str) -> list[Incident]:
        with self._errors(what):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return _group(rows)

    async def _open_id_for(self, app: str) -> str | None:
        with self._errors(f"cannot read the open incident of {app!r}"):
            async with self._engine.connect() as conn:
                return (await conn.execute(
                    select(incidents.c.id).where(
                        incidents.c.app == app, incidents.c.state != State.RESOLVED.value
                    )
                )).scalar_one_or_none()
