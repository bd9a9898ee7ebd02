"""The scheduler edge: one job per (app, probe) and one evaluation job, two implementations.

* ``Scheduler`` - APScheduler 3.x, for ``run`` on the real clock. APScheduler reads the wall
  clock itself, so it is only a trigger: intervals are the configured ones divided by the
  clock's rate, and every job calls into the clock-driven pipeline.
* ``ClockScheduler`` - plain tasks sleeping on the daemon's ``Clock``, for simulation on
  virtual time (``hotdash_watch.virtual_time``), where APScheduler's wall-clock reads would
  never see time pass. Its jitter comes from a generator seeded by the job's id, so a run is
  the same each time.

Both keep APScheduler's rules: probes run at once, then every interval plus up to
``probes.jitter_s``; the evaluation runs one interval after the start, then every interval; a
job still running when its next turn comes is skipped, not piled up (``max_instances=1``,
``coalesce``); a crashing job is logged and never takes the scheduler down. ``stop(grace_s)``
stops scheduling and gives in-flight jobs ``grace_s`` seconds, then cancels them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from hotdash_watch.clock import SystemClock
from hotdash_watch.pipeline import Job, Pipeline

__all__ = ["ClockScheduler", "Scheduler"]

log = structlog.get_logger("hotdash_watch.scheduler")
_REAL_TIME = SystemClock()


class _Jobs:
    """What both implementations share: the job list and the guarded, tracked job bodies."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.clock = pipeline.clock
        self._inflight: set[asyncio.Task[object]] = set()

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)

    def _untrack(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.discard(task)

    async def _run(self, job: Job) -> None:
        self._track()
        try:
            await job.run()
        except asyncio.CancelledError:  # shutdown past its grace period: expected, not an error
            log.info("job_cancelled", job=job.id)
        except Exception:  # a probe must never take the scheduler down
            log.exception("job_crashed", job=job.id)
        finally:
            self._untrack()

    async def _evaluate(self) -> None:
        self._track()
        try:
            await self.pipeline.evaluate()
        except asyncio.CancelledError:
            log.info("evaluation_cancelled")
        except Exception:
            log.exception("evaluation_crashed")
        finally:
            self._untrack()

    async def _drain(self, grace_s: float) -> None:
        pending = [t for t in self._inflight if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for t in late:
                t.cancel()
            if late:
                log.warning("shutdown_cancelled_jobs", count=len(late))


class Scheduler(_Jobs):
    """APScheduler's AsyncIOScheduler and the in-flight job tasks (production)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self._sched = AsyncIOScheduler(timezone=UTC)

    def _real(self, seconds: float) -> float:
        return seconds / self.clock.rate

    def start(self) -> None:
        s = self.pipeline.settings
        first_run = _REAL_TIME.now()  # APScheduler triggers run on real time (module docstring)
        jitter = self._real(s.probes.jitter_s) or None
        for job in self.pipeline.jobs():
            self._sched.add_job(
                self._run, IntervalTrigger(seconds=self._real(job.interval_s), jitter=jitter),
                args=[job], id=job.id, max_instances=1, coalesce=True, misfire_grace_time=None,
                next_run_time=first_run,
            )
        self._sched.add_job(
            self._evaluate, IntervalTrigger(seconds=self._real(s.timers.evaluation_interval_s)),
            id="evaluate", max_instances=1, coalesce=True, misfire_grace_time=None,
        )
        self._sched.start()

    async def stop(self, grace_s: float) -> None:
        """Stop scheduling; in-flight jobs get ``grace_s`` real seconds, then are cancelled."""
        if not self._sched.running:
            return
        self._sched.pause()
        await self._drain(grace_s)
        self._sched.shutdown(wait=False)


class ClockScheduler(_Jobs):
    """The same jobs as ``Scheduler`` as tasks on the daemon's clock (simulation)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self._loops: list[asyncio.Task[None]] = []
        self.running = False

    def start(self) -> None:
        s = self.pipeline.settings
        for job in self.pipeline.jobs():
            self._every(job.id, job.interval_s, s.probes.jitter_s, first_at=0.0,
                        body=lambda job=job: self._run(job))
        every = s.timers.evaluation_interval_s
        self._every("evaluate", every, 0.0, first_at=every, body=self._evaluate)
        self.running = True

    def _every(self, job_id: str, interval_s: float, jitter_s: float, *, first_at: float,
               body: Callable[[], Awaitable[None]]) -> None:
        self._loops.append(asyncio.create_task(
            self._loop(job_id, interval_s, jitter_s, first_at, body), name=f"job:{job_id}"))

    async def _loop(self, job_id: str, interval_s: float, jitter_s: float, first_at: float,
                    body: Callable[[], Awaitable[None]]) -> None:
        rng = random.Random(job_id)
        start = self.clock.monotonic()
        current: asyncio.Task[None] | None = None
        k = 0
        while True:
            # The k-th turn counts from the start, so a late wake-up never shifts later turns.
            jitter = rng.uniform(0, jitter_s) if jitter_s and first_at + k else 0.0
            due = start + first_at + k * interval_s + jitter
            await self.clock.sleep(due - self.clock.monotonic())
            k += 1
            if current is not None and not current.done():
                log.debug("job_skipped_still_running", job=job_id)
                continue
            current = asyncio.create_task(body(), name=f"run:{job_id}")
            self._inflight.add(current)  # before its first step, so stop() waits for it too
            current.add_done_callback(self._inflight.discard)

    async def stop(self, grace_s: float) -> None:
        """Stop scheduling; in-flight jobs get ``grace_s`` clock seconds, then are cancelled."""
        if not self.running:
            return
        self.running = False
        for t in self._loops:
            t.cancel()
        for t in self._loops:
            with suppress(asyncio.CancelledError):
                await t
        self._loops.clear()
        await self._drain(grace_s)
