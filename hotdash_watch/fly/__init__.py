"""The watcher's only way to Fly: Machines API, GraphQL releases, logs polling, Prometheus.

From the bottom up (each module imports only from the ones listed before it):

* ``models`` - frozen values (``Machine``, ``MachineEvent``, ``Release``, ``LogPage``, ``Lease``,
  ``Sample``) and the parsers that build them from untrusted JSON, one module per concept.
* ``errors`` - the ``FlyError`` tree; "retryable" is the type ``FlyUnavailable``.
* ``retry`` - the tenacity policy, sleeping on the daemon's clock.
* ``core.FlyCore`` - the one HTTP path: session, auth header, deadlines, error translation
  (the only place aiohttp errors become ``FlyError``), retries.
* ``api`` - one class per API surface on ``FlyCore``: ``machines``, ``graphql``, ``logs``,
  ``prometheus``.
* ``client.FlyClient`` - every surface in one client, built with base URLs, token, session,
  clock.
* ``logs.LogFollower`` - each log line once, across overlapping pages.
* ``exposition`` - the Prometheus text format of ``/metrics``, counter rates, quantiles.
"""

from hotdash_watch.fly.client import NONCE_HEADER, RELEASES_QUERY, FlyClient, auth_header
from hotdash_watch.fly.errors import (
    FlyConflict,
    FlyError,
    FlyMalformed,
    FlyNotFound,
    FlyRateLimited,
    FlyRejected,
    FlyUnauthorized,
    FlyUnavailable,
    LeaseHeld,
)
from hotdash_watch.fly.exposition import (
    CounterDelta,
    CounterRates,
    histogram_quantile,
    parse_exposition,
)
from hotdash_watch.fly.logs import LogFollower
from hotdash_watch.fly.models import (
    CheckStatus,
    ExitInfo,
    Lease,
    LogLine,
    LogPage,
    Machine,
    MachineEvent,
    Release,
    Sample,
)
from hotdash_watch.fly.retry import RetryPolicy

__all__ = [
    "NONCE_HEADER",
    "RELEASES_QUERY",
    "CheckStatus",
    "CounterDelta",
    "CounterRates",
    "ExitInfo",
    "FlyClient",
    "FlyConflict",
    "FlyError",
    "FlyMalformed",
    "FlyNotFound",
    "FlyRateLimited",
    "FlyRejected",
    "FlyUnauthorized",
    "FlyUnavailable",
    "Lease",
    "LeaseHeld",
    "LogFollower",
    "LogLine",
    "LogPage",
    "Machine",
    "MachineEvent",
    "Release",
    "RetryPolicy",
    "Sample",
    "auth_header",
    "histogram_quantile",
    "parse_exposition",
]
