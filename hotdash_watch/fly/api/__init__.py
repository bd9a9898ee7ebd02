"""The Fly APIs the watcher uses, one class each, all built on the shared ``fly.core.FlyCore``.

* ``machines.MachinesApi`` - the Machines REST API: list, get, events, wait, start, stop,
  restart, update, leases.
* ``graphql.GraphQLApi`` - the GraphQL API: an app's releases.
* ``logs.LogsApi`` - the logs polling API: one page of log lines.
* ``prometheus.PrometheusApi`` - instant queries against Fly's managed Prometheus.

``fly.client.FlyClient`` combines them into the one client the daemon holds.
"""

from hotdash_watch.fly.api.graphql import GraphQLApi
from hotdash_watch.fly.api.logs import LogsApi
from hotdash_watch.fly.api.machines import MachinesApi
from hotdash_watch.fly.api.prometheus import PrometheusApi

__all__ = ["GraphQLApi", "LogsApi", "MachinesApi", "PrometheusApi"]
