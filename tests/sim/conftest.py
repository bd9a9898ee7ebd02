"""Fixtures for the simulator's tests: a started SimServer on the manual clock and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from hotdash_watch.clock import ManualClock
from hotdash_watch.sim import Scenario, SimServer
from tests.sim.helpers import FlyApi, make_scenario

StartSim = Callable[[Scenario], Awaitable[SimServer]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def start_sim(clock: ManualClock) -> AsyncIterator[StartSim]:
    """Start a SimServer on the manual clock; every one started is stopped afterwards."""
    servers: list[SimServer] = []

    async def start(scenario: Scenario) -> SimServer:
        sim = SimServer(scenario, clock)
        servers.append(sim)
        await sim.start()
        return sim

    yield start
    for sim in servers:
        await sim.stop()


@pytest.fixture
async def sim(start_sim: StartSim) -> SimServer:
    """A started simulator with one app, hotdash-api, of three machines."""
    return await start_sim(make_scenario({"name": "hotdash-api", "machines": 3}))


@pytest.fixture
def api(session: aiohttp.ClientSession, sim: SimServer) -> FlyApi:
    return FlyApi(session, sim)
