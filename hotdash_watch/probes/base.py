"""What a probe produces: an ``Observation``, never an exception.

A failure is data with a ``FailureKind``. Some kinds are the watcher's own trouble (it could not
resolve a name, had no route, sent a malformed request): those are *watcher-side* and never count
as a failure of the watched service.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = ["FailureKind", "Observation", "Probe"]


class FailureKind(StrEnum):
    """Why a probe failed; also the ``result`` label of ``hotdash_watch_probe_results_total``."""

    TIMEOUT = "timeout"  # no complete answer within the target's timeout
    CONNECT = "connect"  # connection refused or reset by the service
    HTTP_5XX = "http_5xx"
    HTTP_4XX = "http_4xx"
    BODY = "body"  # answered, but the body does not match what the target expects
    DNS = "dns"  # the watcher could not resolve the name
    NO_ROUTE = "no_route"  # the watcher has no route to the host
    WATCHER = "watcher"  # any other failure of the watcher itself

    @property
    def watcher_side(self) -> bool:
        """True when the failure says something about the watcher, not the service."""
        return self in _WATCHER_SIDE


_WATCHER_SIDE = frozenset({FailureKind.DNS, FailureKind.NO_ROUTE, FailureKind.WATCHER})


@dataclass(frozen=True, slots=True)
class Observation:
    """One probe result.

    ``at`` is wall time in epoch seconds from the daemon's clock. ``latency_ms`` is set whenever
    the service answered (whatever the status). ``over_budget`` is set by synthetic checks whose
    answer was good but slower than the target's latency budget: slow is not an error, so it does
    not count in the error ratio, but it blocks resolution.
    """

    app: str
    probe: str
    at: float
    ok: bool
    latency_ms: float | None = None
    status: int | None = None
    failure: FailureKind | None = None
    over_budget: bool = False
    detail: str = ""

    @property
    def watcher_side(self) -> bool:
        return self.failure is not None and self.failure.watcher_side


class Probe(Protocol):
    """A probe of one target: ``run()`` returns an observation and never raises."""

    app: str
    name: str

    async def run(self) -> Observation: ...
