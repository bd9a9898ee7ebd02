"""``hotdash-watch demo``: the daemon against a local service with a scripted incident.

No credentials, no network: a small HTTP service is started on 127.0.0.1, the daemon watches it
on a clock running ``time_scale`` times faster than real time, and a script breaks the service
and mends it, so the whole incident (detection, SEV grading, monitoring, the runbook's
10-minute stabilization, resolution) plays out in well under a minute.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from hotdash_watch import logs
from hotdash_watch.clock import Clock, ScaledClock
from hotdash_watch.config import load_settings
from hotdash_watch.daemon import Daemon, run_until_signalled
from hotdash_watch.incident_model import incident_as_dict

__all__ = ["DemoService", "run_demo"]

APP = "demo-service"


class DemoService:
    """A local HTTP service whose /health fails a chosen fraction of requests."""

    def __init__(self) -> None:
        self.error_ratio = 0.0
        self.rng = random.Random(7)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _health(self, request: web.Request) -> web.Response:
        if self.rng.random() < self.error_ratio:
            return web.Response(status=503, text="upstream unavailable")
        return web.Response(text="ok")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/health"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _say(clock: Clock, t0: float, text: str) -> None:
    print(f"[demo t={clock.timestamp() - t0:5.0f}s] {text}", flush=True)


async def _script(daemon: Daemon, service: DemoService, stop: asyncio.Event,
                  exit_when_done: bool) -> dict[str, Any] | None:
    clock = daemon.clock
    t0 = clock.timestamp()
    await clock.sleep(60)
    _say(clock, t0, f"breaking {APP}: 100 % of /health requests now answer 503")
    service.error_ratio = 1.0
    await clock.sleep(150)
    _say(clock, t0, f"mending {APP}: /health answers 200 again; the runbook's 10-minute "
                    "stabilization must pass before the incident resolves")
    service.error_ratio = 0.0
    assert daemon.pipeline is not None and daemon.store is not None
    seen_id = None
    while True:
        await clock.sleep(5)
        state = daemon.pipeline.apps[APP]
        if state.incident is not None:
            seen_id = state.incident.id
        elif seen_id is not None:
            break
    inc = await daemon.store.get_incident(seen_id)
    assert inc is not None
    _say(clock, t0, f"{inc.id} resolved after {inc.resolved_at - inc.opened_at:.0f} s "
                    "(scenario time). Timeline:")
    for e in inc.timeline:
        print(f"    +{e.at - inc.opened_at:6.0f}s  {e.event.value:<12} {e.severity.value}  "
              f"{'; '.join(e.reasons)}", flush=True)
    if exit_when_done:
        stop.set()
    else:
        print(f"The daemon keeps watching {APP}. Try: curl {daemon.url}/api/incidents  "
              "(Ctrl-C to stop)", flush=True)
    return incident_as_dict(inc)


async def run_demo(time_scale: float = 40.0, port: int = 9464, exit_when_done: bool = False,
                   log_format: str = "auto") -> int:
    clock = ScaledClock(time_scale)
    logs.configure(log_format, "info", clock=clock)
    service = DemoService()
    url = await service.start()
    workdir = Path(tempfile.mkdtemp(prefix="hotdash-watch-demo-"))
    settings = load_settings(None, overrides={
        "store_url": f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        "server": {"host": "127.0.0.1", "port": port},
        "apps": [{"name": APP, "health_url": url}],
    })
    daemon = Daemon(settings, clock)
    stop = asyncio.Event()
    print(f"hotdash-watch demo: watching {APP} at {url}, time running {time_scale:g}x faster",
          flush=True)
    try:
        script = None

        async def start_script() -> None:
            nonlocal script
            await daemon.started.wait()
            print(f"  metrics:   {daemon.url}/metrics\n  incidents: {daemon.url}/api/incidents\n"
                  f"  health:    {daemon.url}/healthz\n  store:     {workdir / 'demo.db'}",
                  flush=True)
            script = asyncio.create_task(_script(daemon, service, stop, exit_when_done))

        starter = asyncio.create_task(start_script())
        try:
            return await run_until_signalled(daemon, stop)
        except OSError as e:
            print(f"cannot listen on 127.0.0.1:{port}: {e.strerror}; try --port 0",
                  file=sys.stderr)
            return 1
        finally:
            starter.cancel()
            if script is not None:
                script.cancel()
    finally:
        await service.stop()
