"""The ``store`` fixture: every contract test runs against SQLite (a file) and PostgreSQL.

PostgreSQL tests get a fresh schema: the store's tables are dropped before and after each test
(tests do not run in parallel). When PostgreSQL is missing they skip locally and fail in CI
(``tests.support.services.require_postgres_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from hotdash_watch.records.store import Store
from hotdash_watch.records.tables import metadata
from tests.support.services import require_postgres_url

BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


async def drop_store_tables(url: str) -> None:
    """Drop the store's tables (only those) at ``url``."""
    engine = create_async_engine(url, connect_args={"timeout": 3})
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty store on the backend; the SQLite file's directory does not exist yet."""
    if request.param == "sqlite":
        path = tmp_path / "nested" / "dir" / "watch.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = require_postgres_url()
    await drop_store_tables(url)
    try:
        yield url
    finally:
        await drop_store_tables(url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A store opened on ``store_url``, closed after the test."""
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
