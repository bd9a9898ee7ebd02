"""A daemon under test on a manual clock: started without its scheduler, driven pass by pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from hotdash_watch.clock import Clock, ManualClock
from hotdash_watch.config import Settings
from hotdash_watch.daemon import Daemon

STEP = 5.0  # seconds between passes: the default probe and evaluation interval


@asynccontextmanager
async def running(settings: Settings, clock: Clock) -> AsyncIterator[Daemon]:
    """A started daemon with no scheduler and a fresh registry; stopped however the block ends."""
    d = Daemon(settings, clock, CollectorRegistry(), schedule=False)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def tick(d: Daemon, clock: ManualClock, n: int = 1, step: float = STEP, *,
               deliver: bool = False) -> None:
    """n passes as the scheduler would run them: probe, let time pass, evaluate; with
    ``deliver``, each pass ends with a delivery pass of the outbox (when there is one)."""
    assert d.pipeline is not None
    for _ in range(n):
        for probe in d.pipeline.probes:
            await d.pipeline.intake.run_probe(probe)
        clock.advance(step)
        await d.pipeline.evaluate()
        if deliver and d.outbox is not None:
            await d.outbox.deliver_due()
