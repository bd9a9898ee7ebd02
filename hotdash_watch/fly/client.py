"""``FlyClient``: the Machines API, GraphQL releases, logs polling and Prometheus queries.

``FlyClient`` is every API surface of ``fly.api`` in one object, over the one HTTP core
(``fly.core.FlyCore``) that holds the session, the token, the deadlines, the error
translation and the retries. Each call is documented where it is defined:
``fly.api.machines``, ``fly.api.graphql``, ``fly.api.logs``, ``fly.api.prometheus``.
"""

from __future__ import annotations

from hotdash_watch.fly.api.graphql import RELEASES_QUERY, GraphQLApi
from hotdash_watch.fly.api.logs import LogsApi
from hotdash_watch.fly.api.machines import MACHINE_SIGNALS, MachinesApi
from hotdash_watch.fly.api.prometheus import PrometheusApi
from hotdash_watch.fly.core import NONCE_HEADER, REQUEST_ID_HEADER, auth_header

__all__ = [
    "MACHINE_SIGNALS",
    "NONCE_HEADER",
    "RELEASES_QUERY",
    "REQUEST_ID_HEADER",
    "FlyClient",
    "auth_header",
]


class FlyClient(MachinesApi, GraphQLApi, LogsApi, PrometheusApi):
    """One client for every Fly API the watcher reads or acts through.

    Base URLs are configuration, so tests and the simulator point it at a local server. The
    ``session`` is the caller's (not closed here). ``timeout_s`` bounds each request in clock
    seconds (``clock.rate`` scales it to real time); ``attempts`` and ``deadline_s`` bound the
    retries of one call.
    """
