"""The virtual-time loop: simulated waits are time, the process's own work is none.

Every assertion holds however fast or busy the machine is: real work (CPU, a thread, SQLite)
may take any real time, the virtual clock must not move meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import aiosqlite
import pytest
from aiohttp import web

from hotdash_watch import virtual_time
from hotdash_watch.virtual_time import EPOCH, VirtualClock, VirtualTimeLoop
from tests.support.virtual import on_virtual_time


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class TestClock:
    @on_virtual_time
    async def test_starts_at_the_fixed_epoch_and_sleeps_exactly(self):
        clock = VirtualClock.running()
        assert clock.now() == EPOCH and clock.monotonic() == 0.0
        await clock.sleep(3600)
        assert clock.monotonic() == 3600.0
        assert clock.timestamp() == EPOCH.timestamp() + 3600.0

    @on_virtual_time
    async def test_cpu_work_takes_no_time(self):
        clock = VirtualClock.running()
        _busy(0.03)  # 30 ms of real CPU
        await asyncio.sleep(0)
        assert clock.monotonic() == 0.0

    @on_virtual_time
    async def test_timers_fire_in_order_at_their_own_times(self):
        clock = VirtualClock.running()
        fired: list[tuple[str, float]] = []

        async def at(name: str, t: float) -> None:
            await clock.sleep(t)
            fired.append((name, clock.monotonic()))

        await asyncio.gather(at("c", 30), at("a", 0.5), at("b", 7))
        assert fired == [("a", 0.5), ("b", 7.0), ("c", 30.0)]

    def test_needs_its_loop(self):
        async def outside() -> None:
            VirtualClock.running()

        with pytest.raises(RuntimeError, match="VirtualTimeLoop"):
            asyncio.run(outside())

    def test_pace_must_be_positive(self):
        with pytest.raises(ValueError, match="pace must be > 0"):
            VirtualTimeLoop(pace=0)


class TestOutsideWorkHoldsTheClock:
    @on_virtual_time
    async def test_a_thread_finishes_before_any_timer_fires(self):
        """A timer 1 ms ahead does not fire while a thread works for 50 ms of real time."""
        clock = VirtualClock.running()
        timer = asyncio.ensure_future(clock.sleep(0.001))
        await asyncio.to_thread(time.sleep, 0.05)
        assert clock.monotonic() == 0.0 and not timer.done()
        await timer
        assert clock.monotonic() == 0.001

    @on_virtual_time
    async def test_aiosqlite_queries_take_no_time(self, tmp_path: Path):
        clock = VirtualClock.running()
        timer = asyncio.ensure_future(clock.sleep(0.001))
        async with aiosqlite.connect(tmp_path / "t.db") as db:
            await db.execute("create table t (x integer)")
            await db.executemany("insert into t values (?)", [(i,) for i in range(2000)])
            await db.commit()
            async with db.execute("select sum(x) from t") as cur:
                assert await cur.fetchone() == (1999 * 2000 // 2,)
        assert clock.monotonic() == 0.0 and not timer.done()
        timer.cancel()

    @on_virtual_time
    async def test_a_served_delay_is_measured_exactly_over_real_sockets(self):
        """A server that waits 3 s of clock time before answering: the client measures 3 s,
        whatever the real cost of the HTTP round trip and of 20 ms of CPU in the handler."""
        clock = VirtualClock.running()

        async def slow(_: web.Request) -> web.Response:
            _busy(0.02)
            await clock.sleep(3.0)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", slow)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    t0 = clock.monotonic()
                    async with session.get(f"http://127.0.0.1:{port}/") as resp:
                        assert await resp.text() == "ok"
                    assert clock.monotonic() - t0 == pytest.approx(3.0, abs=1e-9)
                t0 = clock.monotonic()
                with pytest.raises(TimeoutError):
                    async with session.get(f"http://127.0.0.1:{port}/",
                                           timeout=aiohttp.ClientTimeout(total=1.0)):
                        pass
                assert clock.monotonic() - t0 == pytest.approx(1.0, abs=1e-9)
        finally:
            await runner.cleanup()

    def test_a_leaked_hold_is_reported_not_a_hang(self, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture):
        monkeypatch.setattr(virtual_time, "_HOLD_POLL_S", 0.001)
        monkeypatch.setattr(virtual_time, "_HOLD_STALL_S", 0.003)

        async def leak() -> float:
            asyncio.get_running_loop().hold()  # never released
            clock = VirtualClock.running()
            await clock.sleep(5)
            return clock.monotonic()

        assert virtual_time.run(leak()) == 5.0
        assert "outside work pending" in caplog.text


class TestPace:
    def test_paced_jumps_spend_real_time(self):
        """pace=1000: 50 virtual seconds take at least 50 ms of real time (a lower bound:
        waiting is the point), and the clock still reads exactly 50 s."""

        async def main() -> float:
            clock = VirtualClock.running()
            await clock.sleep(50)
            return clock.monotonic()

        start = time.monotonic()
        assert virtual_time.run(main(), pace=1000) == 50.0
        assert time.monotonic() - start >= 0.05
