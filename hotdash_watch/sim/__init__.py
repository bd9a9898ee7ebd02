"""A faithful Fly.io simulator: the Machines API, GraphQL releases, logs, edge metrics and each
app's public URL behind a proxy, served by a real aiohttp server and driven by a ``Clock``.

The daemon runs against it unmodified; only base URLs and the token differ. ``python -m
hotdash_watch.sim SCENARIO.toml`` runs it alone. Its parts, each in its own module:

* ``scenario.py`` reads scenario files into the values of ``spec.py`` (apps and a fault timeline).
* ``world.py`` is the simulated state: the registry of apps and machines (records in
  ``model.py``), the queue of scheduled changes and the stepping, composing ``flyd.py`` (machine
  lifecycles and health checks), ``proxy.py`` (routing, answers, edge counters, traffic,
  autostop), ``machines_api.py`` (the Machines API's verbs), ``logs.py``, ``metrics.py`` and
  ``faults/`` (one class per fault kind in a registry, and the engine that fires them).
* ``app.py`` is the HTTP server (``SimServer``), serving the routes of ``routes/``;
  ``graphql.py`` executes GraphQL queries.

Choices made where Fly's documentation leaves the behaviour open (or says nothing):

* Autostop: Fly's proxy checks every 300 s; with spare capacity and more started machines than
  ``min_machines_running`` it stops one (the one that served the fewest requests in the period).
  The stop shows as an ``exit`` event with source ``flyd``, ``requested_stop=true`` and
  ``exit_code`` 0, as the Machines API shows an autostopped machine; there is no separate event
  with a ``proxy`` source (a ``proxy``-provider log line says why it stopped).
* Events use only the four types Fly's examples show (launch, update, start, exit). A restart
  is an exit event with ``requested_stop=true, restarting=true`` followed by start/started; a
  stop an exit with ``requested_stop=true, restarting=false``. The ``events`` embedded in a
  machine (newest 5) carry no ``id``; the items of ``GET …/events`` do.
* While flyd restarts a crashed machine the state stays ``started`` (its checks go critical at
  their next run), as the Machines API shows a machine restarting after an OOM kill.
* ``checks`` is left out for stopped machines; a started machine's checks run on Fly's schedule
  and keep their last status until the first run after the grace period.
* Restart of a machine that is not ``started``: 409
  ``{"error": "unable to restart machine, not currently started"}``. Stop of a stopped machine:
  409 ``unable to stop machine, not currently started`` (as an older Fly docs example shows).
  Start of a started or starting machine: 200 (no-op); start, stop or update while
  replacing/restarting/stopping: 412.
* Update of a stopped machine without ``skip_launch`` starts it (the documented behaviour).
  A config without ``guest`` gets Fly's default (shared, 1 CPU, 256 MB) and without ``services``
  the machine gets no traffic: partial configs are punished as on Fly. Memory must follow
  flyctl's rules (shared: multiples of 256 MB, 256-2048 MB per CPU), else 422.
* Rate limits: mutations 1/s sustained, burst 3, per machine and per action (start, stop,
  restart, update, lease); get 5/s burst 10; list, wait and events are not limited. 429 carries
  ``Retry-After`` in (scenario) seconds.
* Leases: ``POST …/lease`` → 201 ``{"status": "success", "data": {…}}`` (``expires_at`` in unix
  seconds, owner ``sim-user@hotdash.example``); a refresh needs the current nonce; ``DELETE``
  needs the nonce (400 without, 409 if wrong, 404 if there is no lease).
* ``wait`` for an older ``version`` → 400 "… currently replaced"; an unknown version → 404.
* Edge status label: full codes ("200", "503"). The edge histogram has labels ``app`` and ``le``
  only. ``fly_instance_up`` is 0 while a machine is not running.
* fly_api_down: 30 % of API requests hang (until the outage ends, at most 300 s), the rest get 503
  with the JSON error body. watcher_partition: the health URL hangs or drops the connection
  without a response, decided per 30 s window (a client's automatic retry meets the same fate).
* Logs: items have ``id`` and ``attributes`` only (no ``type``); ``meta.next_token`` is the last
  line's time in ns, so the next poll sees that line again (clients dedup by id).
* An unknown GraphQL app: ``{"data": {"app": null}, "errors": [{"message": "Could not find
  App"}]}`` with HTTP 200.
* A service check also fails for a latency fault with p95 >= the check timeout (5 s).
* The proxy does not route to a machine whose service check is critical (after its grace
  period); when no started machine passes it answers 503 at the edge.
"""

from hotdash_watch.sim.app import SimServer
from hotdash_watch.sim.scenario import (
    AppSpec,
    Fault,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from hotdash_watch.sim.world import World

__all__ = [
    "AppSpec",
    "Fault",
    "Scenario",
    "ScenarioError",
    "SimServer",
    "World",
    "load_scenario",
    "parse_scenario",
]
