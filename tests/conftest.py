"""Shared fixtures: a manual clock, a fresh metrics registry, store URLs for both backends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine

from hotdash_watch.clock import ManualClock
from hotdash_watch.records.tables import metadata
from tests.support import factories
from tests.support.services import require_postgres_url
from tests.support.target import LocalService

# Tests read logs as data (``log_events``); debug lines (one per evaluation pass) are dropped.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


@pytest.fixture(scope="session", autouse=True)
def _records_in_session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Journals and artifacts of ``factories.settings()`` land in pytest's temp dir."""
    with factories.records_under(tmp_path_factory.mktemp("records")):
        yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def drop_store_tables(url: str) -> None:
    """Drop the store's tables (only those) at ``url``."""
    engine = create_async_engine(url, connect_args={"timeout": 3})
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
    finally:
        await engine.dispose()


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty store on each backend (PostgreSQL: the one running on this machine).

    The SQLite file's directory does not exist yet. PostgreSQL tests get the store's tables
    dropped before and after; when PostgreSQL is missing they skip locally and fail in CI.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'watch.db'}"
        return
    url = require_postgres_url()
    await drop_store_tables(url)
    try:
        yield url
    finally:
        await drop_store_tables(url)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    """A local HTTP service whose /health fails ``error_ratio`` of requests."""
    svc = LocalService()
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture
def log_events() -> Iterator[list[MutableMapping[str, Any]]]:
    """Structured log entries emitted during the test, with their bound context merged in."""
    capture = structlog.testing.LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture],
                        cache_logger_on_first_use=False)
    try:
        yield capture.entries
    finally:
        structlog.configure(**old)
