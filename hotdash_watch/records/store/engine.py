"""The store's connection: URLs, the engine, the backend's dialect, and error translation.

Supported URLs (``Store.open``):

* ``sqlite+aiosqlite:///relative/path.db``, ``sqlite+aiosqlite:////absolute/path.db`` - a file;
  its parent directory is created when missing;
* ``sqlite+aiosqlite:///:memory:`` - an in-memory database (one connection, lost on close);
* ``postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DB`` - ``sslmode=`` in the query is passed
  to asyncpg as ``ssl=``;
* the bare forms ``sqlite:///...``, ``postgresql://...`` and ``postgres://...``, mapped to the
  drivers above.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit is on disk when it returns, so a
write the store has acknowledged survives a crash of the watcher or the machine.

``Database`` is the handle every table's repository works through: it refuses work once the
store is closed and turns every driver or I/O failure into ``StoreError``. Messages name what
failed and never hold a password (``redact_store_url``, ``describe``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from hotdash_watch.model.errors import StoreError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "Database",
    "StoreError",
    "describe",
    "engine_for",
    "parse_url",
    "redact_store_url",
    "secrets_of",
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
_QUERY_PASSWORD = re.compile(r"(?i)(\bpassword=)[^&#]*")


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


def secrets_of(url: str) -> list[str]:
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


def describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
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


def parse_url(url: str, shown: str) -> URL:
    """``url`` with its driver filled in; ``StoreError`` (naming ``shown``) when unusable."""
    scheme = url.partition("://")[0] if "://" in url else ""
    driver = _DRIVERS.get(scheme.lower())
    if driver is None:
        what = f"scheme {scheme!r} is not supported" if scheme else "the URL has no scheme"
        raise StoreError(f"cannot open the store {shown}: {what}; use {_SUPPORTED}")
    try:
        parsed = make_url(driver + url[len(scheme):])
    except Exception as e:  # ArgumentError, or ValueError for a port that is not a number
        raise StoreError(f"cannot open the store {shown}: malformed URL: "
                         f"{describe(e, secrets_of(url))}") from None
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


def engine_for(parsed: URL, connect_timeout_s: float) -> AsyncEngine:
    """The engine for a parsed URL; a SQLite file's directory is created when missing."""
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


class Database:
    """An open engine as the repositories use it: connections whose failures are
    ``StoreError``, and the backend's upsert and insert-or-skip."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.closed = False

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Raise ``StoreError("<what>: <cause>")`` for a driver or I/O failure inside;
        ``StoreError`` itself passes through. Refuses at once when the store is closed."""
        if self.closed:
            raise StoreError(f"{what}: the store is closed")
        try:
            yield
        except (SQLAlchemyError, OSError) as e:
            raise StoreError(f"{what}: {describe(e)}") from e

    @asynccontextmanager
    async def reading(self, what: str) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (no transaction kept), failures translated."""
        with self.errors(what):
            async with self.engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def writing(self, what: str) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed when the block ends (durable then), failures
        translated; an exception inside rolls everything back."""
        with self.errors(what):
            async with self.engine.begin() as conn:
                yield conn

    def upsert(self, table: Any, key: str, row: dict[str, Any]) -> Any:
        """INSERT ``row``, or UPDATE the row with the same ``key`` to it."""
        ins = _dialect_insert(self.backend)
        stmt = ins(table).values(**row)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={col: stmt.excluded[col] for col in row if col != key},
        )

    def insert_ignore(self, table: Any, keys: Sequence[str], rows: list[dict[str, Any]]) -> Any:
        """INSERT ``rows``, skipping those whose ``keys`` are already taken."""
        ins = _dialect_insert(self.backend)
        return ins(table).values(rows).on_conflict_do_nothing(
            index_elements=[table.c[k] for k in keys])
