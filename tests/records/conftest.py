"""Fixtures for the records tests: an incident driven through the real state machine, a store,
and the Fly simulator with a real ``FlyClient`` pointed at it.

``running_sim`` is the simulator as an async context manager, for tests on virtual time
(``@on_virtual_time``), which cannot use async fixtures; ``start_sim`` is the same as a fixture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from hotdash_watch.classify import classify
from hotdash_watch.clock import Clock
from hotdash_watch.config import Settings
from hotdash_watch.fly import FlyClient
from hotdash_watch.incidents import advance
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Incident, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.store import Store
from hotdash_watch.sim import SimServer, parse_scenario
from tests.support.factories import settings as make_settings
from tests.support.factories import snapshot

APP = "hotdash-api"
#: 2026-03-01T12:00:05Z, the opening of the incident every test shares.
T0 = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Story:
    """An incident as the state machine produced it, and every entry it produced, in order."""

    incident: Incident
    steps: tuple[tuple[Incident, tuple[TimelineEntry, ...]], ...]


def run_story(settings: Settings, *, resolve: bool = True) -> Story:
    """Drive ``incidents.advance``: SEV-2 at T0, SEV-1 at +60 s, clear at +240 s, resolved at
    +845 s (after the 600 s stabilization) when ``resolve``."""
    t = settings.thresholds
    inc: Incident | None = None
    steps: list[tuple[Incident, tuple[TimelineEntry, ...]]] = []
    script = [
        (0.0, 20, Severity.SEV2),
        (60.0, 62, Severity.SEV1),
        (240.0, 0, None),
    ]
    if resolve:
        script.append((845.0, 0, None))
    for dt, failures, level in script:
        now = T0 + dt
        snap = snapshot(app=APP, at=now, failures=failures, p95_ms=80.0)
        assessment = classify(snap, t, now)
        step = advance(inc, level, assessment, snap, settings, now)
        assert step.incident is not None
        inc = step.incident
        if step.entries:
            inc = dataclasses.replace(inc, timeline=inc.timeline + step.entries)
            steps.append((inc, step.entries))
    assert inc is not None
    return Story(inc, tuple(steps))


def action(at: float, kind: str, target: str = "", outcome: str = "ok", *,
           id: int | None = None, ended_at: float | None = None, text: str = "",
           incident_id: str | None = None) -> ActionRecord:
    """A step as the store keeps it; an ended one ends at ``at`` unless ``ended_at`` says."""
    done = Outcome(outcome)
    if ended_at is None and done.ended:
        ended_at = at
    return ActionRecord(id=id, app=APP, incident_id=incident_id, kind=ActionKind(kind),
                        target=target, reason="test", text=text, outcome=done, at=at,
                        ended_at=ended_at)


@pytest.fixture
def settings() -> Settings:
    return make_settings(apps=[{"name": APP, "health_url": "http://127.0.0.1:9/health"}])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/w.db")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


StartSim = Callable[[Clock], Awaitable[SimServer]]


@asynccontextmanager
async def running_sim(clock: Clock) -> AsyncIterator[SimServer]:
    """The simulator (one app of three machines, the first OOM-killed from 5 s on) on
    ``clock``, stopped when the body ends."""
    scenario = parse_scenario({
        "name": "records", "duration_s": 900, "seed": 7,
        "apps": [{"name": APP, "machines": 3}],
        "faults": [{"at_s": 5, "kind": "oom", "app": APP, "machines": 1, "need_mb": 1024}],
    }, "tests/records")
    sim = SimServer(scenario, clock)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start the simulator (``running_sim``) on the given clock; stopped afterwards."""
    async with AsyncExitStack() as stack:

        async def start(clock: Clock) -> SimServer:
            return await stack.enter_async_context(running_sim(clock))

        yield start


def fly_client(session: aiohttp.ClientSession, clock: Clock, sim: SimServer, **kw: float
               ) -> FlyClient:
    return FlyClient(session, clock, token=SecretStr(sim.token), machines_url=sim.machines_url,
                     api_url=sim.api_url, **kw)  # type: ignore[arg-type]
