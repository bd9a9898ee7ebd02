"""Virtual time for simulation: an asyncio event loop whose clock moves only when it is idle.

The loop's ``time()`` is a number of virtual seconds. It stands still while any task can run,
while any socket has data to read, and while work handed to a thread (``run_in_executor``,
``asyncio.to_thread``, aiosqlite's connection thread) is still out. When every task waits for a
timer and nothing else is pending, the clock jumps straight to the next timer. So a response
the simulator delays by 3 s takes 3 s on the watcher's clock, and 40 ms of real CPU work takes
no time at all: verdicts do not depend on how fast or how busy the machine is.

``pace`` (``simulate --time-scale``, the demo) keeps the same rule but spends real time on each
jump: a jump of ``d`` virtual seconds waits ``d / pace`` real seconds, so a person can watch.
Requests from outside (curl against the demo) are served as they arrive, without moving the
clock.

Production never uses this: ``run`` keeps the real clock and APScheduler.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import selectors
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

__all__ = ["EPOCH", "VirtualClock", "VirtualTimeLoop", "run"]

log = logging.getLogger("hotdash_watch.virtual_time")

T = TypeVar("T")

#: Where a simulation's clock starts unless told otherwise: a fixed instant, so incident IDs
#: and every timestamp of a run are the same each time.
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

#: Real seconds to wait for outside work (a thread, a socket) between checks.
_HOLD_POLL_S = 1.0
#: Real seconds after which outside work that never finishes is reported and time moves on,
#: so a leaked hold cannot freeze a simulation forever.
_HOLD_STALL_S = 30.0


class _IdleSelector(selectors.BaseSelector):
    """The loop's selector: real I/O first; when there is none, move virtual time."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        loop = self._loop
        waited = 0.0
        while loop.holds > 0:  # outside work is out: wait for it in real time, clock still
            events = self._inner.select(_HOLD_POLL_S)
            if events:
                return events
            waited += _HOLD_POLL_S
            if waited >= _HOLD_STALL_S:
                log.warning("virtual time: %d piece(s) of outside work pending for %.0f s; "
                            "moving on", loop.holds, waited)
                break
        if timeout is None:  # no timer at all: only the outside world can wake the loop
            return self._inner.select(None)
        if loop.pace is None:
            loop.advance(timeout)
            return []
        start = time.monotonic()
        events = self._inner.select(timeout / loop.pace)
        if events:
            loop.advance(min(timeout, (time.monotonic() - start) * loop.pace))
        else:
            loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time (module docstring). ``pace``: virtual seconds per
    real second while idle (None: jump at once)."""

    def __init__(self, pace: float | None = None) -> None:
        if pace is not None and pace <= 0:
            raise ValueError(f"pace must be > 0 (virtual seconds per real second), got {pace}")
        super().__init__(_IdleSelector(selectors.DefaultSelector(), self))
        self.pace = pace
        self.holds = 0
        self._now = 0.0
        _track_aiosqlite()

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def hold(self) -> Callable[[], None]:
        """Keep the clock still until the returned release is called (once)."""
        self.holds += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.holds -= 1

        return release

    def hold_until_done(self, fut: asyncio.Future[Any]) -> None:
        release = self.hold()
        fut.add_done_callback(lambda _f: release())

    def run_in_executor(self, executor: Executor | None, func: Callable[..., T],
                        *args: Any) -> asyncio.Future[T]:
        fut = super().run_in_executor(executor, func, *args)
        self.hold_until_done(fut)
        return fut


class VirtualClock:
    """The daemon's ``Clock`` on a ``VirtualTimeLoop``: ``start`` plus the loop's seconds."""

    rate = 1.0  # clock seconds are loop seconds: aiohttp timeouts need no scaling

    def __init__(self, loop: VirtualTimeLoop, start: datetime = EPOCH) -> None:
        self.loop = loop
        self._start = start
        self._epoch = start.timestamp()
        self._t0 = loop.time()

    @classmethod
    def running(cls, start: datetime = EPOCH) -> VirtualClock:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise RuntimeError("VirtualClock needs a VirtualTimeLoop (virtual_time.run)")
        return cls(loop, start)

    @property
    def pace(self) -> float | None:
        return self.loop.pace

    def monotonic(self) -> float:
        return self.loop.time() - self._t0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def timestamp(self) -> float:
        return self._epoch + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))  # the loop's timers are virtual


def run(main: Coroutine[Any, Any, T], *, pace: float | None = None) -> T:
    """Run ``main`` to completion on a fresh ``VirtualTimeLoop`` (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(pace)) as runner:
        return runner.run(main)


class _HeldQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    """aiosqlite's request queue: each request holds a virtual loop until its answer is in."""

    def put_nowait(self, item: Any) -> None:
        fut = item[0] if isinstance(item, tuple) and item else None
        if isinstance(fut, asyncio.Future):
            loop = fut.get_loop()
            if isinstance(loop, VirtualTimeLoop):
                loop.hold_until_done(fut)
        super().put_nowait(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)


def _track_aiosqlite() -> None:
    """aiosqlite answers from a thread of its own, which the loop cannot see; make each request
    it queues hold the clock (a no-op on ordinary loops)."""
    try:
        import aiosqlite.core as core
    except ImportError:  # pragma: no cover - aiosqlite is a dependency
        return
    if getattr(core, "SimpleQueue", None) is not _HeldQueue:
        core.SimpleQueue = _HeldQueue  # type: ignore[misc]
