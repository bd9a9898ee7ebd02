"""What the Fly APIs answer, as frozen values, and the functions that parse it.

Response bodies are untrusted JSON: they are read through private pydantic models that ignore
unknown fields, then turned into frozen dataclasses, which are what the rest of the daemon
sees. Enum-like strings (states, event types, check statuses, release statuses) are kept as
given: a value Fly adds tomorrow is data, never an error. A body of the wrong shape raises
``PayloadError`` (a ``ValueError``), which the client reports as ``FlyMalformed``.

Times are epoch seconds (floats) everywhere. Fly sends them in several formats: event
timestamps in epoch milliseconds, ``exited_at`` as RFC 3339 or epoch milliseconds, log
timestamps as RFC 3339 with nanoseconds, Prometheus values with float epoch seconds;
``parse_time`` reads them all.

* ``payload`` - ``PayloadError``, ``parse_time``, the wire-model base every parser uses.
* ``machines`` - ``Machine`` and ``Lease`` (Machines API).
* ``events`` - a machine's history and health checks: ``MachineEvent``, ``ExitInfo``,
  ``CheckStatus``.
* ``releases`` - ``Release`` (GraphQL).
* ``logs`` - ``LogLine`` and ``LogPage`` (logs polling API).
* ``samples`` - ``Sample`` (Prometheus query answers and ``/metrics`` lines).

Everything is importable from ``hotdash_watch.fly.models`` itself.
"""

from hotdash_watch.fly.models.events import CheckStatus, ExitInfo, MachineEvent, parse_events
from hotdash_watch.fly.models.logs import LogLine, LogPage, parse_log_page
from hotdash_watch.fly.models.machines import (
    APP_EXCLUDED_PROCESS_GROUPS,
    Lease,
    Machine,
    parse_lease,
    parse_machine,
    parse_machines,
)
from hotdash_watch.fly.models.payload import PayloadError, parse_time, plain
from hotdash_watch.fly.models.releases import Release, parse_releases
from hotdash_watch.fly.models.samples import Sample, parse_prometheus

__all__ = [
    "APP_EXCLUDED_PROCESS_GROUPS",
    "CheckStatus",
    "ExitInfo",
    "Lease",
    "LogLine",
    "LogPage",
    "Machine",
    "MachineEvent",
    "PayloadError",
    "Release",
    "Sample",
    "parse_events",
    "parse_lease",
    "parse_log_page",
    "parse_machine",
    "parse_machines",
    "parse_prometheus",
    "parse_releases",
    "parse_time",
    "plain",
]
