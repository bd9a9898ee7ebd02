"""``simulate``: the simulator and the daemon together on one virtual clock, and the report.

Both sides run in one process on a ``VirtualTimeLoop`` (``hotdash_watch.virtual_time``): time
moves only when every task waits, straight to the next timer. Latency the simulator injects is
latency; the CPU time of the watcher and the simulator is none, so a scenario gives the same
report on an idle machine and on a busy one, and runs as fast as the work allows.
``--time-scale N`` paces the jumps for a person watching (N scenario seconds per real second).
The daemon is configured exactly as a user would configure it (defaults, or ``--config`` with
its targets pointed at the simulator); only base URLs and the token differ from production.

``--workdir DIR`` keeps the run's records: the store, the journal, the diagnostics and a
``report.md`` per incident, and ``DIR/records.toml``, a settings file that points ``hotdash-watch
report`` and ``incidents`` at them. Without it they live in a temporary folder removed at the end.

Report times are scenario seconds from the scenario's start. The summary's durations are
measured from the first fault's ``at_s``: ``detection_latency_s`` (first incident opened),
``time_to_first_action_s``, ``time_to_recover_s`` (the simulator's own truth: every fault cured
or ended and every app healthy again) and ``time_to_resolve_s`` (the daemon resolved the last
incident). A scenario with no fault must produce no incident, no action and no page.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from hotdash_watch import virtual_time
from hotdash_watch.clock import Clock
from hotdash_watch.config import Settings, load_settings
from hotdash_watch.daemon import Daemon
from hotdash_watch.model.action import ActionRecord
from hotdash_watch.model.incident import Incident
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.report import write_report as write_incident_report
from hotdash_watch.sim.app import SimServer
from hotdash_watch.sim.scenario import Scenario, load_scenario

__all__ = ["Kept", "build_report", "run_scenario", "settings_for", "simulate", "simulate_scenario",
           "write_report"]

log = structlog.get_logger("hotdash_watch.simulate")


class PageReceiver:
    """A local webhook receiver standing in for the people: records every page it gets."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pages: list[tuple[float, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400)
        self.pages.append((self.clock.timestamp(), body))
        return web.Response(status=200)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/pages", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/pages"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def settings_for(scenario: Scenario, sim: SimServer, *, config: str | Path | None = None,
                 workdir: Path, dry_run: bool | None = None, port: int = 0,
                 page_url: str | None = None) -> Settings:
    """The daemon's settings for a scenario: the user's (or default) settings, with every
    target pointed at the simulator, pages sent to ``page_url`` (never to the configured
    channels) and the journal and artifacts kept in ``workdir``."""
    base = load_settings(config) if config is not None else None
    known = {a.name: a.model_dump(exclude={"name", "health_url"}) for a in base.apps} \
        if base is not None else {}
    apps = [{**known.get(a.name, {}), "name": a.name, "health_url": sim.health_url(a.name)}
            for a in scenario.apps]
    fly: dict[str, Any] = {
        "api_token": sim.token, "machines_url": sim.machines_url, "api_url": sim.api_url,
        "metrics": "scrape", "metrics_url": sim.metrics_url,
    }
    if base is not None:
        fly = {**base.fly.model_dump(exclude={"api_token"}), **fly}
    notify: dict[str, Any] = base.notify.model_dump(exclude={"channels"}) if base else {}
    notify.update({
        "channels": [{"name": "simulate", "kind": "webhook", "url": page_url}] if page_url
        else [],
        "journal_path": str(workdir / "feedback" / "reliability.md"),
        "artifacts_dir": str(workdir / "artifacts" / "reliability"),
    })
    return load_settings(config, overrides={
        "apps": apps,
        "fly": fly,
        "notify": notify,
        "store_url": f"sqlite+aiosqlite:///{workdir / 'simulate.db'}",
        "server": {"host": "127.0.0.1", "port": port},
        "dry_run": dry_run if dry_run is not None else bool(base and base.dry_run),
    })


#: Outcomes that count as an action taken in the summary (a dry-run counts what it would do).
TAKEN = frozenset({"ok", "failed", "started", "dry_run"})


def _action_row(a: ActionRecord, t0: float) -> dict[str, Any]:
    return {"at_s": round(a.at - t0, 1), "app": a.app, "kind": a.kind.value,
            "target": a.target, "outcome": a.outcome.value, "reason": a.text, "why": a.reason,
            "guard": a.guard, "ended_at_s": _at(a.ended_at, t0),
            "incident_id": a.incident_id}


def _at(ts: float | None, t0: float) -> float | None:
    return None if ts is None else round(ts - t0, 1)


def build_report(scenario: Scenario, time_scale: float | None, t0: float,
                 incidents: Sequence[Incident], actions: Sequence[dict[str, Any]],
                 pages: Sequence[dict[str, Any]], recovered_at_s: float | None) -> dict[str, Any]:
    """The simulate report: scenario, time_scale, incidents, actions, pages and the summary the
    module docstring describes. Pure: every time is already known."""
    incs = sorted(incidents, key=lambda i: i.opened_at)
    first_fault = min((f.at_s for f in scenario.faults if f.kind != "recover"), default=None)
    inc_rows = [{
        "id": i.id, "app": i.app, "opened_at_s": _at(i.opened_at, t0),
        "resolved_at_s": _at(i.resolved_at, t0), "max_severity": i.max_severity.value,
        "timeline": [{"at_s": _at(e.at, t0), "event": e.event.value,
                      "severity": e.severity.value, "reasons": list(e.reasons)}
                     for e in i.timeline],
    } for i in incs]

    def since_fault(value: float | None) -> float | None:
        if value is None or first_fault is None:
            return None
        return round(value - first_fault, 1)

    taken = [a for a in actions if a.get("outcome") in TAKEN]
    after = [r for r in inc_rows if first_fault is not None
             and r["opened_at_s"] is not None and r["opened_at_s"] >= first_fault]
    resolved = [r["resolved_at_s"] for r in inc_rows]
    max_sev = Severity.worst(*(i.max_severity for i in incs))
    summary = {
        "detected": bool(after),
        "detection_latency_s": since_fault(after[0]["opened_at_s"]) if after else None,
        "time_to_first_action_s": since_fault(min((a["at_s"] for a in taken), default=None)),
        "time_to_recover_s": since_fault(recovered_at_s),
        "time_to_resolve_s": since_fault(max(resolved)) if resolved and None not in resolved
        else None,
        "max_severity": max_sev.value if max_sev else None,
        "actions": len(taken),
    }
    return {"scenario": scenario.name, "time_scale": time_scale, "incidents": inc_rows,
            "actions": list(actions), "pages": list(pages), "summary": summary}


@dataclass
class Kept:
    """What a ``--workdir`` run left on disk, for the user to read afterwards."""

    workdir: Path
    settings_file: Path
    store_url: str
    journal: Path
    reports: dict[str, Path] = field(default_factory=dict)  # incident ID -> report.md


async def run_scenario(scenario: Scenario, clock: Clock, *, config: str | Path | None = None,
                       dry_run: bool | None = None,
                       registry: CollectorRegistry | None = None,
                       workdir: Path | None = None,
                       stop_at_s: float | None = None,
                       keep: list[Any] | None = None,
                       kept: list[Kept] | None = None) -> dict[str, Any]:
    """Run ``scenario`` to its end (or to ``stop_at_s``) on ``clock``; return the report.
    ``workdir`` keeps the records there (else a temporary folder, removed at the end);
    ``kept`` receives where they are. ``keep`` (tests) receives the simulated world."""
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="hotdash-simulate-")))
        return await _run(scenario, clock, config=config, dry_run=dry_run, registry=registry,
                          workdir=Path(workdir), stop_at_s=stop_at_s, keep=keep, kept=kept)


async def _run(scenario: Scenario, clock: Clock, *, config: str | Path | None,
               dry_run: bool | None, registry: CollectorRegistry | None, workdir: Path,
               stop_at_s: float | None, keep: list[Any] | None,
               kept: list[Kept] | None) -> dict[str, Any]:
    sim = SimServer(scenario, clock)
    receiver = PageReceiver(clock)
    await receiver.start()
    await sim.start()
    if keep is not None:
        keep.append(sim.world)
    t0 = clock.timestamp() - sim.world.t()
    daemon: Daemon | None = None
    try:
        settings = settings_for(scenario, sim, config=config, workdir=workdir, dry_run=dry_run,
                                page_url=receiver.url)
        # A seeded generator for the watcher's random delays (retry jitter): same seed, same run.
        daemon = Daemon(settings, clock, registry or CollectorRegistry(),
                        rng=random.Random(f"{scenario.seed}:watcher"))
        await daemon.start()
        end = scenario.duration_s if stop_at_s is None else min(stop_at_s, scenario.duration_s)
        remaining = end - sim.world.t()
        await clock.sleep(max(0.0, remaining))
        sim.world.step_to()  # every change due by the end, before its truth is read
        assert daemon.store is not None
        incidents = []
        for row in await daemon.store.list_incidents(limit=1000):
            full = await daemon.store.get_incident(row.id)
            if full is not None:
                incidents.append(full)
        actions = [_action_row(a, t0) for a in await daemon.store.actions_since(0.0)
                   if a.kind.touches_fly]
        pages = [{"at_s": round(at - t0, 1), "channel": "simulate",
                  "severity": body.get("severity"), "status": body.get("status"),
                  "event": body.get("event"), "incident_id": body.get("incident_id"),
                  "subject": body.get("subject")}
                 for at, body in receiver.pages]
        if kept is not None:
            kept.append(await _keep_records(daemon, settings, workdir, incidents))
        pace = getattr(clock, "pace", clock.rate)
        return build_report(scenario, pace, t0, incidents, actions, pages,
                            sim.world.recovered_at_s)
    finally:
        if daemon is not None:
            await daemon.stop()
        await sim.stop()
        await receiver.stop()


async def _keep_records(daemon: Daemon, settings: Settings, workdir: Path,
                        incidents: Sequence[Incident]) -> Kept:
    """Write every incident's report.md (open ones too, with its pages) and the settings file
    that points ``report``/``incidents`` at this run's store."""
    assert daemon.store is not None
    store = daemon.store
    out = Path(settings.notify.artifacts_dir)
    reports: dict[str, Path] = {}
    now = daemon.clock.timestamp()
    for inc in incidents:
        pages = await store.list_pages(incident_id=inc.id, limit=1000)
        reports[inc.id] = await write_incident_report(store, inc.id, out, settings=settings,
                                                      now=now, pages=pages)
    settings_file = workdir / "records.toml"
    text = (
        "# The records of one `hotdash-watch simulate` run. Read them with\n"
        f"#   hotdash-watch incidents --config {settings_file}\n"
        f"#   hotdash-watch report INC-... --config {settings_file}\n"
        f"store_url = {json.dumps(settings.store_url)}\n\n[notify]\n"
        f"journal_path = {json.dumps(settings.notify.journal_path)}\n"
        f"artifacts_dir = {json.dumps(settings.notify.artifacts_dir)}\n")
    await asyncio.to_thread(settings_file.write_text, text, encoding="utf-8")
    return Kept(workdir=workdir, settings_file=settings_file, store_url=settings.store_url,
                journal=Path(settings.notify.journal_path), reports=reports)


def simulate_scenario(scenario: Scenario, *, time_scale: float | None = None,
                      on_clock: Callable[[Clock], None] | None = None,
                      **kwargs: Any) -> dict[str, Any]:
    """Run ``scenario`` on a fresh virtual-time loop (``time_scale``: paced for watching, else
    as fast as the work allows) and return the report. ``on_clock`` is called with the clock
    before the run (to log its time); other keyword arguments go to ``run_scenario``. Not
    from inside a running event loop: it runs its own."""

    async def main() -> dict[str, Any]:
        clock = virtual_time.VirtualClock.running()
        if on_clock is not None:
            on_clock(clock)
        return await run_scenario(scenario, clock, **kwargs)

    return virtual_time.run(main(), pace=time_scale)


def simulate(path: str | Path, *, time_scale: float | None = None,
             config: str | Path | None = None, dry_run: bool | None = None,
             workdir: Path | None = None, kept: list[Kept] | None = None,
             on_clock: Callable[[Clock], None] | None = None) -> dict[str, Any]:
    """The ``simulate`` command: load the scenario, run it, return the report."""
    return simulate_scenario(load_scenario(path), time_scale=time_scale, config=config,
                             dry_run=dry_run, workdir=workdir, kept=kept, on_clock=on_clock)


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
