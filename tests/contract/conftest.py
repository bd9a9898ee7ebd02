"""The ``store`` fixture: every contract test runs against SQLite (a file) and PostgreSQL.

``store_url`` (tests/conftest.py) gives an empty store on each backend; PostgreSQL tests skip
locally and fail in CI when it is missing (``tests.support.services.require_postgres_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hotdash_watch.records.store import Store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A store opened on ``store_url``, closed after the test."""
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
