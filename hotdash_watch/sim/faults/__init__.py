"""Faults: what a scenario can do to the simulated Fly. Kind -> class registry.

Each kind is one class (one module here) extending ``ActiveFault`` and satisfying ``FaultKind``
(``base.py``); a fired fault is an instance of its kind's class. Adding a kind is a new module
and a line below: the scenario format takes its kinds and their keys from this registry, and
``engine.py`` fires faults and asks the active ones what they do, whatever their kind.
"""

from __future__ import annotations

from hotdash_watch.sim.faults.autostop_broken import AutostopBroken
from hotdash_watch.sim.faults.bad_release import BadRelease
from hotdash_watch.sim.faults.base import ActiveFault, AppRule, FaultContext, FaultKind, Outage
from hotdash_watch.sim.faults.crash import Crash
from hotdash_watch.sim.faults.dependency_down import DependencyDown
from hotdash_watch.sim.faults.errors import Errors
from hotdash_watch.sim.faults.flap import Flap
from hotdash_watch.sim.faults.fly_api_down import FlyApiDown
from hotdash_watch.sim.faults.latency import Latency
from hotdash_watch.sim.faults.oom import Oom
from hotdash_watch.sim.faults.recover import Recover
from hotdash_watch.sim.faults.watcher_partition import WatcherPartition

__all__ = ["FAULTS", "ActiveFault", "AppRule", "FaultContext", "FaultKind", "Outage"]

#: Every kind a scenario may name, in the order its errors list them (a test walks this).
FAULTS: dict[str, type[ActiveFault]] = {
    "crash": Crash,
    "oom": Oom,
    "errors": Errors,
    "latency": Latency,
    "bad_release": BadRelease,
    "dependency_down": DependencyDown,
    "autostop_broken": AutostopBroken,
    "fly_api_down": FlyApiDown,
    "watcher_partition": WatcherPartition,
    "flap": Flap,
    "recover": Recover,
}
