"""Tests on virtual time: the body of an ``async def`` test on its own ``VirtualTimeLoop``.

Scenario seconds pass only while every task waits, so a test of a 15-minute incident takes as
long as the work in it, and the same on a busy machine as on an idle one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from hotdash_watch import virtual_time

P = ParamSpec("P")
T = TypeVar("T")


def on_virtual_time(test: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """Run the coroutine test ``test`` on a fresh virtual-time loop (a plain test to pytest)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        async def body() -> Any:
            return await test(*args, **kwargs)

        return virtual_time.run(body())

    return run
