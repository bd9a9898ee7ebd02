"""APScheduler at the edge: one job per (app, probe) and one evaluation job.

APScheduler 3.x reads the wall clock itself, so it is only a trigger: intervals are the
configured ones divided by the clock's rate (``simulate --time-scale``), and every job calls into
the clock-driven pipeline. Probe jobs run with ``max_instances=1`` and ``coalesce``, so a slow
probe never piles up; a failed probe is re-run at once (``probes.reprobe_on_failure``) rather than
at the next interval.
"""

from __future__ import annotations

import asyncio
from datetime import UTC

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from hotdash_watch.clock import SystemClock
from hotdash_watch.pipeline import Job, Pipeline

__all__ = ["Scheduler"]

log = structlog.get_logger("hotdash_watch.scheduler")
_REAL_TIME = SystemClock()


class Scheduler:
    """Owns the AsyncIOScheduler and the in-flight job tasks."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.clock = pipeline.clock
        self._sched = AsyncIOScheduler(timezone=UTC)
        self._inflight: set[asyncio.Task[object]] = set()

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

    async def _run(self, job: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await job.run()
        except asyncio.CancelledError:  # shutdown past its grace period: expected, not an error
            log.info("job_cancelled", job=job.id)
        except Exception:  # a probe must never take the scheduler down
            log.exception("job_crashed", job=job.id)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _evaluate(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self.pipeline.evaluate()
        except asyncio.CancelledError:
            log.info("evaluation_cancelled")
        except Exception:
            log.exception("evaluation_crashed")
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def stop(self, grace_s: float) -> None:
        """Stop scheduling; in-flight jobs get ``grace_s`` real seconds, then are cancelled."""
        if not self._sched.running:
            return
        self._sched.pause()
        pending = [t for t in self._inflight if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for t in late:
                t.cancel()
            if late:
                log.warning("shutdown_cancelled_jobs", count=len(late))
        self._sched.shutdown(wait=False)
