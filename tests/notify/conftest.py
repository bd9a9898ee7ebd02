"""Fixtures of the paging tests: a collecting receiver on a real socket, an HTTP session,
incidents in each runbook situation, channel settings carrying secrets, and outboxes on a
SQLite store driven by the manual clock."""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from hotdash_watch.clock import ManualClock
from hotdash_watch.config import Settings
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.notify import build_notifier
from hotdash_watch.notify.base import ChannelBase, Notifier
from hotdash_watch.notify.channels import parse_channel
from hotdash_watch.notify.outbox import Outbox
from hotdash_watch.records.store import Store
from tests.contract.conftest import store  # noqa: F401 - the store contract's fixture
from tests.notify.receiver import Receiver
from tests.support import factories

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

TOKEN = "T0PSECRET-url-token-4f9a2c7e1b"
ROUTING_KEY = "R0UTING-key-8d3e5f6a7b9c0d1e"
HMAC_KEY = "HMAC-key-2b4d6f8a0c1e3g5i"
SECRETS = (TOKEN, ROUTING_KEY, HMAC_KEY)

T0 = 1_772_366_400.0  # 2026-03-01T12:00:00Z, the manual clock's start
APP = "hotdash-llamaindex-mcp"


def assert_golden(name: str, actual: str) -> None:
    """Compare ``actual`` with ``tests/golden/<name>``; ``UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"{path} is missing: run the tests once with UPDATE_GOLDEN=1"
    assert actual == path.read_text(), f"{name} differs from its golden file"


def incident(severity: Severity = Severity.SEV1, state: State = State.INVESTIGATING,
             **changes: Any) -> Incident:
    """An incident of the LlamaIndex MCP app opened at T0, in the classifier's words."""
    reasons = {
        Severity.SEV1: (Finding(Reason.ERROR_RATE_CRITICAL, Severity.SEV1,
                                "error rate 62 % over 60 s"),
                        Finding(Reason.ALL_MACHINES_DOWN, Severity.SEV1,
                                "all machines down: 0 of 3 started and healthy (Machines API)")),
        Severity.SEV2: (Finding(Reason.LATENCY_MAJOR, Severity.SEV2,
                                "p95 latency 2400 ms over 60 s (probes) > 2000 ms"),),
        Severity.SEV3: (Finding(Reason.ERROR_RATE_MINOR, Severity.SEV3,
                                "error rate 6.2 % over 60 s (31/500 edge) >= 5.0 %"),),
    }[severity]
    evidence = {
        Severity.SEV1: {"error_ratio": 0.62, "p95_ms": 5000.0,
                        "machines": {"total": 3, "started_healthy": 0, "down": 3,
                                     "down_ids": ["m1", "m2", "m3"]}},
        Severity.SEV2: {"error_ratio": 0.01, "p95_ms": 2400.0},
        Severity.SEV3: {"error_ratio": 0.062, "p95_ms": 300.0, "fly_api": "unreachable"},
    }[severity]
    opened = TimelineEntry(at=T0, event=Event.OPENED, state=State.INVESTIGATING,
                           severity=severity, findings=reasons)
    base = Incident(
        id="INC-20260301-120000", app=APP, state=state, severity=severity,
        max_severity=severity, opened_at=T0, updated_at=T0, severity_since=T0,
        findings=reasons, evidence=evidence, timeline=(opened,),
    )
    return dataclasses.replace(base, **changes)


def settings(**notify: Any) -> Settings:
    """Default settings with the given ``notify`` section."""
    return factories.settings(notify=notify)


def channel_for(kind: str, base: str, *, name: str | None = None, **extra: Any
                ) -> ChannelBase:
    """A channel of ``kind`` pointed at ``base`` (the receiver), carrying secrets."""
    data: dict[str, Any] = {"name": name or kind, "kind": kind, **extra}
    host = base.removeprefix("http://")
    if kind == "webhook":
        data.setdefault("url", f"{base}/hook/{TOKEN}")
        data.setdefault("hmac_secret", HMAC_KEY)
    elif kind == "slack":
        data.setdefault("url", f"{base}/services/T000/B000/{TOKEN}")
    elif kind == "pagerduty":
        data.setdefault("url", f"{base}/v2/enqueue")
        data.setdefault("routing_key", ROUTING_KEY)
    elif kind == "alertmanager":
        data.setdefault("url", f"http://hotdash:{TOKEN}@{host}")
    return parse_channel(data)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store in a SQLite file (a restart reopens the same file)."""
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'watch.db'}")
    try:
        yield opened
    finally:
        await opened.close()


MakeOutbox = Callable[..., Awaitable[Outbox]]


@pytest.fixture
def make_outbox(sqlite_store: Store, session: aiohttp.ClientSession, clock: ManualClock,
                receiver: Receiver) -> MakeOutbox:
    """Build an outbox of webhook channels named ``channels`` (each at ``/<name>``) on the
    SQLite store (or ``on``), with notify settings ``notify``."""

    async def make(*channels: str | ChannelBase, on: Store | None = None,
                   registry: CollectorRegistry | None = None, **notify: Any) -> Outbox:
        chans = [c if isinstance(c, ChannelBase) else parse_channel(
            {"name": c, "kind": "webhook", "url": receiver.url(f"/{c}"), "timeout_s": 2.0})
            for c in (channels or ("hook",))]
        notify.setdefault("retry_initial_s", 5.0)
        notify.setdefault("retry_max_s", 60.0)
        notify.setdefault("failover_after_s", 120.0)
        s = settings(channels=[c.model_dump() for c in chans], **notify)
        notifiers: list[Notifier] = [build_notifier(c) for c in chans]
        return Outbox(on or sqlite_store, notifiers, session, clock,
                      registry or CollectorRegistry(), s, rng=random.Random(7))

    return make
