"""The incident store: incidents, their timelines and small daemon state, in SQLite or PostgreSQL.

What it stores (schema in ``tables.py``):

* every ``Incident`` as one row holding its latest value, and its ``TimelineEntry`` lines in
  order (``seq`` 1, 2, 3, ... within the incident);
* small daemon state (budgets, heartbeats) as JSON values under string keys (``get_state`` /
  ``put_state``).

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

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Select, delete, event, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from hotdash_watch.incident_model import Event, Incident, State, TimelineEntry
from hotdash_watch.records.tables import incidents, kv, metadata, samples, timeline
from hotdash_watch.severity import Severity

__all__ = ["CONNECT_TIMEOUT_S", "Store", "StoreError", "redact_store_url"]

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


class StoreError(Exception):
    """The store cannot be opened, or a read or write failed; the message is safe to show."""


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
    if value is None or isinstance(value, str | bool | int):
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


def _incident_row(inc: Incident) -> dict[str, Any]:
    if not inc.id or len(inc.id) > _ID_MAX:
        raise StoreError(f"incident id {inc.id!r} must be 1 to {_ID_MAX} characters")
    _check_json(list(inc.reasons), f"incident {inc.id} reasons")
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
        "reasons": list(inc.reasons),
        "evidence": dict(inc.evidence),
    }


def _entry_row(incident_id: str, seq: int, e: TimelineEntry) -> dict[str, Any]:
    _check_json(list(e.reasons), f"incident {incident_id} timeline entry reasons")
    _check_json(e.detail, f"incident {incident_id} timeline entry detail")
    return {
        "incident_id": incident_id,
        "seq": seq,
        "at": float(e.at),
        "event": Event(e.event).value,
        "state": State(e.state).value,
        "severity": Severity(e.severity).value,
        "reasons": list(e.reasons),
        "detail": dict(e.detail),
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
        reasons=tuple(row.reasons or ()),
        evidence=dict(row.evidence or {}),
        timeline=tuple(entries),
    )


# The timeline columns of the incident+timeline join, under names that do not clash.
_T_COLS = [timeline.c[name].label(f"t_{name}")
           for name in ("seq", "at", "event", "state", "severity", "reasons", "detail")]


def _entry_of(row: Any) -> TimelineEntry:
    return TimelineEntry(
        at=row.t_at,
        event=Event(row.t_event),
        state=State(row.t_state),
        severity=Severity(row.t_severity),
        reasons=tuple(row.t_reasons or ()),
        detail=dict(row.t_detail or {}),
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
        ins = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        stmt = ins(table).values(**row)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={col: stmt.excluded[col] for col in row if col != key},
        )

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
