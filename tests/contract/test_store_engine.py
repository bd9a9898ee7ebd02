"""The store's engine and its layout: SQLite commits are durable when they return, and the
store's modules read no clock and import nothing of the stages that use them."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from sqlalchemy import text

from hotdash_watch.notify.outbox import PageStore
from hotdash_watch.records.store import Store

PACKAGE = Path(__file__).resolve().parents[2] / "hotdash_watch"
STORE = sorted((PACKAGE / "records" / "store").glob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


async def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path):
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'watch.db'}")
    try:
        async with store._db.engine.connect() as conn:  # the store's own connection
            pragmas = [(await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                       for name in ("journal_mode", "synchronous", "foreign_keys")]
    finally:
        await store.close()
    assert pragmas == ["wal", 2, 1]  # synchronous 2 is FULL


@pytest.mark.parametrize("path", STORE, ids=lambda p: p.name)
def test_the_store_reads_no_clock(path: Path):
    """Every time the store writes comes with the values it is given."""
    names = imported(path)
    assert not {n for n in names if n.split(".")[0] in ("time", "datetime")
                or n.startswith("hotdash_watch.clock")}
    assert ".now(" not in path.read_text()


@pytest.mark.parametrize("path", STORE, ids=lambda p: p.name)
def test_the_store_imports_no_stage_that_uses_it(path: Path):
    names = imported(path)
    assert not {n for n in names if n.startswith(("hotdash_watch.notify",
                                                   "hotdash_watch.respond",
                                                   "hotdash_watch.daemon"))}


@pytest.mark.parametrize("module", ["outbox.py", "delivery.py", "outbox_metrics.py"])
def test_paging_does_not_import_the_records(module: str):
    """The outbox names its storage by a protocol; the daemon passes the store in."""
    names = imported(PACKAGE / "notify" / module)
    assert not {n for n in names if n.startswith("hotdash_watch.records")}


def test_page_values_import_nothing_else_of_the_package():
    names = imported(PACKAGE / "model" / "page.py")
    assert {n for n in names if n.startswith("hotdash_watch")} <= {
        "hotdash_watch.model.severity", "hotdash_watch.model.severity.Severity"}


def test_the_store_is_what_the_outbox_asks_for():
    """``Store`` has each ``PageStore`` method, with the same parameters and defaults."""
    wanted = [name for name, _ in inspect.getmembers(PageStore, inspect.iscoroutinefunction)]
    assert len(wanted) == 9
    for name in wanted:
        theirs = inspect.signature(getattr(PageStore, name)).parameters
        ours = inspect.signature(getattr(Store, name)).parameters
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()], name
