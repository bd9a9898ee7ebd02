"""Small builders for pipeline values used across tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotdash_watch.config import Settings, load_settings
from hotdash_watch.window import Snapshot

_records_root: Path | None = None
_records_seq = itertools.count()


@contextmanager
def records_under(root: Path) -> Iterator[None]:
    """While open, ``settings()`` without ``records`` keeps each journal and artifacts folder
    in a fresh folder below ``root`` (the test session opens it on pytest's temp dir)."""
    global _records_root
    before, _records_root = _records_root, root
    try:
        yield
    finally:
        _records_root = before


def _fresh_records() -> Path:
    if _records_root is None:
        raise RuntimeError("settings() outside a test session: pass records= (a tmp_path)")
    return _records_root / f"settings-{next(_records_seq)}"


def snapshot(
    *,
    app: str = "svc",
    at: float = 1_000.0,
    over_s: float = 60.0,
    total: int = 100,
    failures: int = 0,
    watcher_failures: int = 0,
    over_budget: int = 0,
    p95_ms: float | None = 50.0,
    latency_samples: int | None = None,
    consecutive_ok: int = 10,
    consecutive_failures: int = 0,
) -> Snapshot:
    """A snapshot with the given figures; ratios derive from the counts."""
    return Snapshot(
        app=app, at=at, over_s=over_s, total=total, failures=failures,
        watcher_failures=watcher_failures, over_budget=over_budget,
        error_ratio=(failures / total) if total else None,
        p50_ms=None if p95_ms is None else p95_ms / 2, p95_ms=p95_ms,
        p99_ms=None if p95_ms is None else p95_ms * 1.2,
        latency_samples=total if latency_samples is None else latency_samples,
        failure_kinds=(("http_5xx", failures),) if failures else (),
        consecutive_ok=consecutive_ok, consecutive_failures=consecutive_failures,
        last_at=at, last_ok_at=at if consecutive_ok else None,
    )


def settings(*, records: Path | None = None, **overrides: Any) -> Settings:
    """Default settings with one app ``svc`` unless ``apps`` is given.

    The journal and artifacts go below ``records``; without it, below a folder of their own
    in the session's temp dir (nothing is created until the daemon writes there).
    """
    overrides.setdefault("apps", [{"name": "svc", "health_url": "http://127.0.0.1:9/health"}])
    overrides.setdefault("store_url", "sqlite+aiosqlite:///:memory:")
    if records is None:
        records = _fresh_records()
    notify = dict(overrides.get("notify") or {})
    notify.setdefault("journal_path", str(records / "feedback" / "reliability.md"))
    notify.setdefault("artifacts_dir", str(records / "artifacts"))
    overrides["notify"] = notify
    return load_settings(None, overrides=overrides)
