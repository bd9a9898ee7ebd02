"""The retry policy of every Fly call: tenacity, keyed on ``FlyUnavailable``, sleeping on the clock.

* Only ``FlyUnavailable`` (and so ``FlyRateLimited``) is retried; every other error is raised
  at once.
* The wait before attempt *n + 1* is ``max(Retry-After, backoff)``, where ``backoff`` is drawn
  uniformly from ``[b / 2, b]`` with ``b = min(max_backoff_s, initial_s * 2 ** (n - 1))``:
  0.2 s, 0.4 s, 0.8 s ... up to 5 s, jittered so that several watchers do not retry in step.
* It stops after ``attempts`` attempts, or as soon as the next wait would end past
  ``deadline_s`` (clock seconds since the first attempt); the last error is then raised as is.
* Sleeps go through ``clock.sleep`` and the deadline is read from ``clock.monotonic()``, so a
  manual or scaled clock drives them. tenacity's own timing is not used.
* Before each attempt it checks whether the task is being cancelled, and raises
  ``CancelledError`` rather than sending one more request. A ``CancelledError`` raised during
  an attempt or a sleep propagates unchanged.

Each retry is logged as ``fly_call_retry`` with app, machine, call, attempt, status, wait_s and
the request id. Never the token, a header or a URL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from hotdash_watch.clock import Clock
from hotdash_watch.fly.errors import FlyUnavailable

__all__ = ["RetryPolicy", "call_with_retry", "raise_if_cancelling"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a Fly call is tried; times in clock seconds."""

    attempts: int = 4
    deadline_s: float = 60.0
    initial_s: float = 0.2
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, got {self.deadline_s}")
        if not 0 < self.initial_s <= self.max_backoff_s:
            raise ValueError("need 0 < initial_s <= max_backoff_s")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The jittered backoff after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff_s, self.initial_s * 2 ** min(attempt - 1, 30))
        return rng.uniform(ceiling / 2, ceiling)


_RNG = random.Random()


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` when the current task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    policy: RetryPolicy,
    call: str,
    app: str | None = None,
    machine: str | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt()`` until it succeeds, raises a non-retryable error, or the policy stops."""
    rng = rng or _RNG
    started = clock.monotonic()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = policy.backoff(state.attempt_number, rng)
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        wakes_at = clock.monotonic() - started + (state.upcoming_sleep or 0.0)
        return wakes_at > policy.deadline_s

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        structlog.get_logger("hotdash_watch.fly").warning(
            "fly_call_retry",
            app=app,
            machine=machine,
            call=call,
            attempt=state.attempt_number,
            status=getattr(exc, "status", None),
            error=type(exc).__name__ if exc else None,
            request_id=getattr(exc, "request_id", None),
            wait_s=round(state.upcoming_sleep, 3),
        )

    retrying = AsyncRetrying(
        sleep=clock.sleep,
        retry=retry_if_exception_type(FlyUnavailable),
        wait=wait,
        stop=stop,
        before_sleep=log_retry,
        reraise=True,
    )
    async for try_ in retrying:
        raise_if_cancelling()
        with try_:
            return await attempt()
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
