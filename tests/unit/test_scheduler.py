"""The scheduler edge, both implementations: the clock-driven one on virtual time (exact turns,
skips, crashes, stop) and APScheduler's wiring for production (jobs, triggers, first run)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hotdash_watch.clock import Clock, SystemClock
from hotdash_watch.config import Settings, load_settings
from hotdash_watch.pipeline import Job
from hotdash_watch.scheduler import ClockScheduler, Scheduler
from hotdash_watch.virtual_time import VirtualClock
from tests.support.virtual import on_virtual_time


class FakePipeline:
    """What a scheduler needs of the pipeline: clock, settings, jobs() and evaluate()."""

    def __init__(self, clock: Clock, settings: Settings,
                 jobs: dict[str, tuple[float, Callable[[], Any]]]) -> None:
        self.clock, self.settings = clock, settings
        self.runs: dict[str, list[float]] = {name: [] for name in [*jobs, "evaluate"]}
        self._jobs = jobs

    def jobs(self) -> list[Job]:
        return [Job(name, every, self._body(name, work))
                for name, (every, work) in self._jobs.items()]

    def _body(self, name: str, work: Callable[[], Any]) -> Callable[[], Any]:
        async def run() -> None:
            self.runs[name].append(self.clock.monotonic())
            await work()
        return run

    async def evaluate(self) -> None:
        self.runs["evaluate"].append(self.clock.monotonic())


def _settings(jitter_s: float = 0.0, evaluation_s: float = 5.0) -> Settings:
    return load_settings(overrides={"probes": {"jitter_s": jitter_s},
                                    "timers": {"evaluation_interval_s": evaluation_s}})


async def _nothing() -> None:
    return None


class TestClockScheduler:
    @on_virtual_time
    async def test_probes_at_once_then_every_interval_evaluation_one_interval_in(self):
        clock = VirtualClock.running()
        p = FakePipeline(clock, _settings(), {"probe:a": (5.0, _nothing),
                                              "fly:a:machines": (10.0, _nothing)})
        s = ClockScheduler(p)  # type: ignore[arg-type]
        s.start()
        await clock.sleep(30.5)
        await s.stop(1.0)
        assert p.runs["probe:a"] == [0, 5, 10, 15, 20, 25, 30]
        assert p.runs["fly:a:machines"] == [0, 10, 20, 30]
        assert p.runs["evaluate"] == [5, 10, 15, 20, 25, 30]

    @on_virtual_time
    async def test_jitter_is_bounded_and_the_same_every_run(self):
        async def turns() -> list[float]:
            clock = VirtualClock(asyncio.get_running_loop())  # type: ignore[arg-type]
            p = FakePipeline(clock, _settings(jitter_s=1.0), {"probe:a": (5.0, _nothing)})
            s = ClockScheduler(p)  # type: ignore[arg-type]
            start = clock.monotonic()
            s.start()
            await clock.sleep(60)
            await s.stop(0)
            return [round(t - start, 9) for t in p.runs["probe:a"]]

        first, second = await turns(), await turns()
        assert first == second
        assert first[0] == 0  # the first run is not delayed
        for k, t in enumerate(first[1:], start=1):
            assert 5 * k <= t <= 5 * k + 1.0, first
        assert len({round(t % 5, 6) for t in first[1:]}) > 1  # there is jitter at all

    @on_virtual_time
    async def test_a_job_still_running_is_skipped_not_piled_up(self):
        clock = VirtualClock.running()
        running = 0
        most = 0

        async def slow() -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await clock.sleep(12)  # longer than two intervals
            running -= 1

        p = FakePipeline(clock, _settings(), {"probe:slow": (5.0, slow)})
        s = ClockScheduler(p)  # type: ignore[arg-type]
        s.start()
        await clock.sleep(31)
        await s.stop(20)
        assert most == 1
        assert p.runs["probe:slow"] == [0, 15, 30]  # 5 and 10 skipped, 20 and 25 too

    @on_virtual_time
    async def test_a_crashing_job_is_logged_and_keeps_its_turns(self,
                                                                log_events: list[Any]):
        clock = VirtualClock.running()

        async def boom() -> None:
            raise RuntimeError("probe bug")

        p = FakePipeline(clock, _settings(), {"probe:boom": (5.0, boom)})
        s = ClockScheduler(p)  # type: ignore[arg-type]
        s.start()
        await clock.sleep(11)
        await s.stop(0)
        assert p.runs["probe:boom"] == [0, 5, 10]
        assert [e["job"] for e in log_events if e["event"] == "job_crashed"] == ["probe:boom"] * 3

    @on_virtual_time
    async def test_stop_waits_the_grace_then_cancels(self, log_events: list[Any]):
        clock = VirtualClock.running()
        finished: list[float] = []

        async def takes(seconds: float) -> Callable[[], Any]:
            async def work() -> None:
                await clock.sleep(seconds)
                finished.append(seconds)
            return work

        p = FakePipeline(clock, _settings(evaluation_s=100),
                         {"probe:quick": (50.0, await takes(2)),
                          "probe:long": (50.0, await takes(30))})
        s = ClockScheduler(p)  # type: ignore[arg-type]
        s.start()
        await clock.sleep(1)
        await s.stop(5)
        assert clock.monotonic() == 6  # stopped at 1 s; the long job had 5 s more, no longer
        assert finished == [2]
        assert any(e["event"] == "shutdown_cancelled_jobs" and e["count"] == 1
                   for e in log_events)
        await clock.sleep(100)
        assert p.runs["probe:quick"] == [0]  # nothing is scheduled after stop


class TestAPScheduler:
    async def test_jobs_and_triggers_as_configured(self):
        p = FakePipeline(SystemClock(), _settings(jitter_s=1.0, evaluation_s=5.0),
                         {"probe:a": (5.0, _nothing), "fly:a:logs": (15.0, _nothing)})
        s = Scheduler(p)  # type: ignore[arg-type]
        s.start()
        try:
            jobs = {j.id: j for j in s._sched.get_jobs()}
            assert set(jobs) == {"probe:a", "fly:a:logs", "evaluate"}
            assert jobs["probe:a"].trigger.interval.total_seconds() == 5.0
            assert jobs["probe:a"].trigger.jitter == 1.0
            assert jobs["fly:a:logs"].trigger.interval.total_seconds() == 15.0
            assert jobs["evaluate"].trigger.interval.total_seconds() == 5.0
            assert all(j.max_instances == 1 and j.coalesce for j in jobs.values())
        finally:
            await s.stop(0)

    async def test_probes_run_at_once(self):
        """The first probe turn is at start (not one interval later): the job runs without
        waiting 60 s for its interval."""
        ran = asyncio.Event()

        async def probe() -> None:
            ran.set()

        p = FakePipeline(SystemClock(), _settings(), {"probe:a": (60.0, probe)})
        s = Scheduler(p)  # type: ignore[arg-type]
        s.start()
        try:
            await asyncio.wait_for(ran.wait(), timeout=30)
        finally:
            await s.stop(0)
        assert len(p.runs["probe:a"]) == 1 and p.runs["evaluate"] == []

    async def test_stop_twice_is_harmless(self):
        s = Scheduler(FakePipeline(SystemClock(), _settings(), {}))  # type: ignore[arg-type]
        s.start()
        await s.stop(0)
        await s.stop(0)


@pytest.mark.parametrize("kind", [ClockScheduler, Scheduler])
def test_both_take_the_same_pipeline(kind: type) -> None:
    """One edge, two implementations: the same constructor and start/stop interface."""
    assert callable(kind.start) and asyncio.iscoroutinefunction(kind.stop)
