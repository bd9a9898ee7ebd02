"""One clock for the whole daemon.

Nothing else in the package reads the time or sleeps: every module gets a ``Clock`` and asks it.
Implementations:

* ``SystemClock`` - the real time (``run``).
* ``ScaledClock(rate)`` - time that runs ``rate`` times faster than the real one, starting at a
  chosen instant; used by the standalone simulator (``python -m hotdash_watch.sim``), which
  serves a daemon in another process on real time.
* ``ManualClock`` - time that moves only when a test calls ``advance()``; sleepers wake when
  their deadline is passed. It refuses to go backwards.
* ``virtual_time.VirtualClock`` - virtual time that jumps to the next timer when every task
  waits (``simulate``, the demo, the scenario tests): the process's own work takes no time.

``now()`` is an aware UTC datetime, ``monotonic()`` seconds that never go back, ``timestamp()``
the wall time as epoch seconds (the unit the window and the store use).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    """The time source every stage reads; pure code takes ``now`` as an argument instead."""

    @property
    def rate(self) -> float:
        """How many clock seconds pass per real second (1.0 for the system clock)."""
        ...

    def now(self) -> datetime: ...

    def timestamp(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The machine's own time."""

    rate = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time running ``rate`` times faster than real time, from ``start`` (default: now)."""

    def __init__(self, rate: float, start: datetime | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"time scale must be > 0, got {rate}")
        self.rate = float(rate)
        self._start = start or datetime.now(UTC)
        self._real0 = time.monotonic()

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real0) * self.rate

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed())

    def timestamp(self) -> float:
        return self._start.timestamp() + self._elapsed()

    def monotonic(self) -> float:
        return self._elapsed()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.rate)


class ManualClock:
    """Time that moves only when ``advance()`` or ``set()`` is called (tests)."""

    rate = 1.0

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def timestamp(self) -> float:
        return self._start.timestamp() + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError(f"ManualClock cannot go backwards (advance({seconds}))")
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), fut))
        await fut
