"""Lifecycle only: build the components from config, run them, drain on SIGTERM/SIGINT.

Start order: store (schema created) -> HTTP session -> pipeline (resumes open incidents) ->
HTTP server -> scheduler. Stop order is the reverse; in-flight probes get
``timers.shutdown_grace_s`` to finish, then are cancelled, and the store is closed last so
every transition already computed is on disk.
"""

from __future__ import annotations

import asyncio
import random
import signal
from contextlib import suppress
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from hotdash_watch import log_output as logs
from hotdash_watch.clock import Clock, SystemClock
from hotdash_watch.config import Settings
from hotdash_watch.metrics import Metrics
from hotdash_watch.mitigate import Mitigator
from hotdash_watch.pipeline import Pipeline, build
from hotdash_watch.records.store import Store
from hotdash_watch.respond import Responder
from hotdash_watch.scheduler import ClockScheduler, Scheduler
from hotdash_watch.server import make_app
from hotdash_watch.virtual_time import VirtualClock

__all__ = ["Daemon", "run_until_signalled"]

log = structlog.get_logger("hotdash_watch.daemon")


class Daemon:
    """The running watcher. ``start()`` then ``stop()``; usable as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        *,
        schedule: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        """``rng`` draws every random delay (Fly retry jitter, page retry jitter); simulation
        passes a seeded one so that the same scenario gives the same run. ``None``: unseeded."""
        self.settings = settings
        self.rng = rng
        self.clock = clock or SystemClock()
        self.metrics = Metrics(registry or CollectorRegistry())
        self.schedule = schedule
        self.store: Store | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pipeline: Pipeline | None = None
        self.scheduler: Scheduler | ClockScheduler | None = None
        self.outbox: Any = None  # notify.outbox.Outbox when channels are configured
        self.responder: Responder | None = None
        self.mitigator: Mitigator | None = None
        self._outbox_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.started = asyncio.Event()

    @property
    def url(self) -> str:
        host = self.settings.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        s = self.settings
        logs.scrubber.register(logs.secret_values(s))  # every SecretStr of the settings
        self.store = await Store.open(s.store_url)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=60),
            headers={"User-Agent": "hotdash-watch"},
        )
        self.pipeline = build(s, self.clock, self.store, self.metrics, self.session,
                              rng=self.rng)
        if s.notify.channels:
            # Imported only when paging is configured: the channel modules cost memory.
            from hotdash_watch.notify import build_notifiers
            from hotdash_watch.notify.outbox import Outbox

            self.outbox = Outbox(self.store, build_notifiers(s), self.session, self.clock,
                                 self.metrics, s, rng=self.rng)
            self._outbox_task = asyncio.create_task(self.outbox.run(), name="outbox")
        self.responder = Responder(s, self.clock, self.store, self.metrics, outbox=self.outbox,
                                   fly_client=self.pipeline.fly_client)
        self.pipeline.responder = self.responder
        if self.pipeline.fly_client is not None:
            self.mitigator = Mitigator(s, self.clock, self.store, self.metrics,
                                       self.pipeline.fly_client, self.pipeline.timeline)
            self.pipeline.mitigator = self.mitigator
        await self.pipeline.resume()
        if self.mitigator is not None:
            await self.mitigator.load()
            await self.mitigator.resume()
        self._runner = web.AppRunner(make_app(self.pipeline), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.server.host, s.server.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else s.server.port
        if self.schedule:
            # APScheduler reads the wall clock, which does not move on virtual time.
            virtual = isinstance(self.clock, VirtualClock)
            self.scheduler = (ClockScheduler if virtual else Scheduler)(self.pipeline)
            self.scheduler.start()
        self.started.set()
        _release_startup_memory()
        log.info("watcher_started", apps=[a.name for a in s.apps], url=self.url,
                 store=_store_kind(s.store_url), dry_run=s.dry_run)

    async def stop(self) -> None:
        grace = self.settings.timers.shutdown_grace_s
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        if self.mitigator is not None:
            await self.mitigator.drain(grace)
        if self.responder is not None:
            await self.responder.drain(grace)
        if self.outbox is not None and self._outbox_task is not None:
            with suppress(Exception):
                await asyncio.wait_for(self.outbox.deliver_due(), timeout=grace)
            self._outbox_task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._outbox_task
        if self._runner is not None:
            await self._runner.cleanup()
        if self.session is not None:
            await self.session.close()
        if self.store is not None:
            await self.store.close()
        log.info("watcher_stopped")

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _release_startup_memory() -> None:
    """Give the heap that start-up used and freed back to the system: imports and schema set-up
    leave glibc holding free pages that a daemon idle for days would otherwise keep."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): nothing to trim


def _store_kind(url: str) -> str:
    return "postgresql" if url.startswith("postgres") else "sqlite"


async def run_until_signalled(daemon: Daemon, stop: asyncio.Event | None = None) -> int:
    """Run ``daemon`` until SIGTERM or SIGINT (Fly sends either on stop), then drain. Exit 0."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.start()
        await stop.wait()
        log.info("shutdown_requested")
    finally:
        await daemon.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0
