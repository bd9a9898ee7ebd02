"""Helpers for the simulator's tests: scenarios in one line, stepping and driving the manual
clock while a request is in flight, a small Fly API client, and a shape comparison."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp

from hotdash_watch.clock import ManualClock
from hotdash_watch.sim import Scenario, SimServer, World, parse_scenario
from tests.support.fixtures import load as fixture

__all__ = ["FlyApi", "assert_same_shape", "drive", "fixture", "make_scenario", "step"]

T = TypeVar("T")


def make_scenario(*apps: dict[str, Any], faults: tuple[dict[str, Any], ...] = (),
                  duration_s: float = 900, seed: int = 0, name: str = "test") -> Scenario:
    """A scenario from plain dicts (the TOML tables); one 2-machine app by default."""
    return parse_scenario({
        "name": name, "duration_s": duration_s, "seed": seed,
        "apps": list(apps) or [{"name": "hotdash-api"}],
        "faults": list(faults),
    })


def step(world: World, clock: ManualClock, seconds: float) -> None:
    """Advance the clock and bring the world up to it."""
    clock.advance(seconds)
    world.step_to()


async def drive(clock: ManualClock, awaitable: Awaitable[T], *, step_s: float = 0.25,
                limit_s: float = 600.0) -> T:
    """Await ``awaitable`` while moving the manual clock forward (the request is waiting on it)."""
    task = asyncio.ensure_future(awaitable)
    moved = 0.0
    while not task.done():
        await asyncio.sleep(0.001)  # let socket I/O through (a real, tiny wait)
        if not task.done():
            if moved >= limit_s:
                task.cancel()
                break
            clock.advance(step_s)
            moved += step_s
    return await task


class FlyApi:
    """The simulator's APIs over real HTTP, returning (status, decoded body, headers)."""

    def __init__(self, session: aiohttp.ClientSession, sim: SimServer) -> None:
        self.session = session
        self.sim = sim
        self.auth = {"Authorization": f"Bearer {sim.token}"}

    async def call(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                   auth: bool = True, **kw: Any) -> tuple[int, Any, Any]:
        hdrs = {**(self.auth if auth else {}), **(headers or {})}
        async with self.session.request(method, self.sim.base_url + path, headers=hdrs,
                                        **kw) as r:
            text = await r.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return r.status, body, r.headers

    def machines(self, app: str) -> str:
        return f"/v1/apps/{app}/machines"


def assert_same_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """``actual`` has the same keys and value types as ``expected``, recursively.

    In lists, each item is compared with the expected item of the same ``type`` (events) or
    ``name`` (checks) when there is one, else with the one at the same index (lists of equal
    length) or the first.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {type(actual).__name__}, expected an object"
        assert set(actual) == set(expected), (
            f"{path}: keys differ: missing {sorted(set(expected) - set(actual))}, "
            f"extra {sorted(set(actual) - set(expected))}")
        for key, value in expected.items():
            assert_same_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: {type(actual).__name__}, expected a list"
        if not expected:
            return
        for i, item in enumerate(actual):
            twin = expected[i] if len(actual) == len(expected) else expected[0]
            for key in ("type", "name"):
                if isinstance(item, dict) and key in item:
                    twin = next((e for e in expected if isinstance(e, dict)
                                 and e.get(key) == item[key]), twin)
                    break
            assert_same_shape(item, twin, f"{path}[{i}]")
    elif expected is None:
        assert actual is None, f"{path}: {actual!r}, expected null"
    else:
        want = bool if isinstance(expected, bool) else type(expected)
        assert type(actual) is want, (
            f"{path}: {type(actual).__name__} {actual!r}, expected {want.__name__}")
