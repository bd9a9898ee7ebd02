"""``hotdash-watch demo`` (and ``make run``): the daemon against the built-in Fly simulator.

No credentials, no network: the simulator plays Fly (Machines API, releases, logs, edge metrics,
the apps' public URLs) for the runbook's two apps, on virtual time paced at ``time_scale``
scenario seconds per real second (``hotdash_watch.virtual_time``: the watcher's own work takes
no scenario time, so a busy machine sees the same incident). One minute in, both machines of
``hotdash-llamaindex-mcp`` crash and stay stopped (autostart is off, as for an always-on
service). The daemon detects the SEV-1 from the Machines API, pages, starts the machines one at
a time under their leases (for real, in the simulator), verifies the recovery through the
runbook's 10-minute stabilization, resolves the incident, and the demo prints the timeline.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import tomllib
from pathlib import Path

from prometheus_client import CollectorRegistry

from hotdash_watch import log_output as logs
from hotdash_watch import virtual_time
from hotdash_watch.daemon import Daemon, run_until_signalled
from hotdash_watch.sim.app import SimServer
from hotdash_watch.sim.runner import PageReceiver, settings_for
from hotdash_watch.sim.scenario import Scenario, parse_scenario

__all__ = ["DEMO_SCENARIO", "demo", "demo_scenario", "run_demo"]

DEMO_SCENARIO = """
name = "demo"
duration_s = 86400

[[apps]]
name = "hotdash-llamaindex-mcp"
machines = 2
autostart = false

[[apps]]
name = "hotdash-agent-service"
machines = 2

[[faults]]
at_s = 60
kind = "crash"
app = "hotdash-llamaindex-mcp"
machines = "all"
"""


def demo_scenario() -> Scenario:
    return parse_scenario(tomllib.loads(DEMO_SCENARIO), "built-in demo scenario")


def _say(t: float, text: str) -> None:
    print(f"[demo {t:6.0f}s] {text}", flush=True)


async def _narrate(daemon: Daemon, sim: SimServer, receiver: PageReceiver,
                   stop: asyncio.Event, exit_when_done: bool) -> None:
    clock, world = daemon.clock, sim.world
    told = 0
    paged = 0
    seen: str | None = None
    while True:
        await clock.sleep(5)
        for entry in world.fault_log[told:]:
            _say(entry["at_s"], f"simulator: {entry['kind']} on {entry.get('app') or 'all apps'} "
                                f"{entry['event']} ({entry.get('how', '')})")
        told = len(world.fault_log)
        for _, page in receiver.pages[paged:]:
            _say(world.t(), f"page received by the on-call webhook: {page.get('subject')}")
            for line in str(page.get("body", "")).splitlines():
                print(f"      {line}", flush=True)
        paged = len(receiver.pages)
        assert daemon.pipeline is not None and daemon.store is not None
        open_now = [s.incident for s in daemon.pipeline.apps.values() if s.incident]
        if open_now:
            seen = open_now[0].id
        elif seen is not None and any(p.get("event") == "resolved" for _, p in receiver.pages):
            inc = await daemon.store.get_incident(seen)
            assert inc is not None and inc.resolved_at is not None
            _say(world.t(), f"{inc.id} resolved, {inc.resolved_at - inc.opened_at:.0f} s after "
                            "it opened. Timeline:")
            for e in inc.timeline:
                print(f"    +{e.at - inc.opened_at:6.0f}s  {e.event.value:<16} "
                      f"{e.severity.value}  {'; '.join(e.reasons)}", flush=True)
            seen = None
            if exit_when_done:
                stop.set()
                return
            print(f"The daemon keeps watching. Try: curl -s {daemon.url}/api/incidents  "
                  "(Ctrl-C to stop)", flush=True)


def demo(time_scale: float = 20.0, port: int = 9464, exit_when_done: bool = False,
         log_format: str = "auto") -> int:
    """``hotdash-watch demo``: ``run_demo`` on a virtual-time loop paced at ``time_scale``."""
    return virtual_time.run(run_demo(time_scale, port, exit_when_done, log_format),
                            pace=time_scale)


async def run_demo(time_scale: float = 20.0, port: int = 9464, exit_when_done: bool = False,
                   log_format: str = "auto") -> int:
    """The demo on the running loop, which must be a ``VirtualTimeLoop`` (``demo``)."""
    clock = virtual_time.VirtualClock.running()
    logs.configure(log_format, "info", clock=clock)
    scenario = demo_scenario()
    sim = SimServer(scenario, clock)
    await sim.start()
    workdir = Path(tempfile.mkdtemp(prefix="hotdash-watch-demo-"))
    receiver = PageReceiver(clock)
    await receiver.start()
    settings = settings_for(scenario, sim, workdir=workdir, dry_run=False, port=port,
                            page_url=receiver.url)
    daemon = Daemon(settings, clock, CollectorRegistry(),
                    rng=random.Random(f"{scenario.seed}:watcher"))
    stop = asyncio.Event()
    narrator: asyncio.Task[None] | None = None

    async def announce() -> None:
        nonlocal narrator
        await daemon.started.wait()
        print(f"hotdash-watch demo: the Fly simulator at {sim.base_url} plays "
              f"{', '.join(a.name for a in scenario.apps)}; time runs {time_scale:g}x faster.\n"
              f"  metrics:   {daemon.url}/metrics\n  incidents: {daemon.url}/api/incidents\n"
              f"  health:    {daemon.url}/healthz\n  store:     {workdir / 'simulate.db'}",
              flush=True)
        narrator = asyncio.create_task(_narrate(daemon, sim, receiver, stop, exit_when_done))

    starter = asyncio.create_task(announce())
    try:
        return await run_until_signalled(daemon, stop)
    except OSError as e:
        print(f"cannot listen on 127.0.0.1:{port}: {e.strerror}; try --port 0", file=sys.stderr)
        return 1
    finally:
        starter.cancel()
        if narrator is not None:
            narrator.cancel()
        await sim.stop()
        await receiver.stop()
