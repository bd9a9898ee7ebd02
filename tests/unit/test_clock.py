"""The injected clocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from hotdash_watch.clock import ManualClock, ScaledClock


class TestManualClock:
    def test_advance(self):
        """now, timestamp and monotonic move together, exactly by the amount advanced."""
        c = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        c.advance(90.5)
        assert c.now() == datetime(2026, 1, 1, 0, 1, 30, 500000, tzinfo=UTC)
        assert c.monotonic() == 90.5
        assert c.timestamp() == datetime(2026, 1, 1, tzinfo=UTC).timestamp() + 90.5

    def test_refuses_to_go_back(self):
        """A negative advance is an error."""
        with pytest.raises(ValueError, match="backwards"):
            ManualClock().advance(-1)

    async def test_sleepers_wake_in_deadline_order(self):
        """Sleepers wake when time passes their deadline, earliest first, never before."""
        c = ManualClock()
        woke: list[int] = []

        async def sleeper(n: int, s: float) -> None:
            await c.sleep(s)
            woke.append(n)

        tasks = [asyncio.create_task(sleeper(1, 600)), asyncio.create_task(sleeper(2, 30))]
        await asyncio.sleep(0)
        c.advance(29.9)
        await asyncio.sleep(0)
        assert woke == []
        c.advance(0.1)
        await asyncio.sleep(0)
        assert woke == [2]
        c.advance(600)
        await asyncio.gather(*tasks)
        assert woke == [2, 1]


class TestScaledClock:
    def test_rejects_non_positive_rate(self):
        """A time scale of zero or less is refused with the value named."""
        with pytest.raises(ValueError, match="got 0"):
            ScaledClock(0)

    async def test_sleep_is_scaled(self):
        """Sleeping 60 clock seconds at rate 600 moves the clock at least 60 s."""
        c = ScaledClock(600)
        t = c.monotonic()
        await c.sleep(60)
        assert c.monotonic() - t >= 60
