"""What comes in: probe results into each app's windows, Fly reports, inbound signals.

``Intake`` records every observation in its app's window and in the metrics, re-probes a
service-side failure at once (and then asks the Machines API rather than waiting for its next
poll), keeps the latest Fly reports per app and holds inbound alerts until they expire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import structlog

from hotdash_watch.metrics import Metrics
from hotdash_watch.model.findings import Signal
from hotdash_watch.pipeline.state import AppState
from hotdash_watch.probes.base import Observation, Probe
from hotdash_watch.probes.logs import LogsReport
from hotdash_watch.probes.machines import MachinesReport
from hotdash_watch.probes.prometheus import TrafficReport
from hotdash_watch.probes.releases import ReleasesReport

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = ["FlyProbe", "Intake"]

log = structlog.get_logger("hotdash_watch.pipeline")

FlyReport = MachinesReport | LogsReport | TrafficReport | ReleasesReport


class FlyProbe(Protocol):
    """A probe of the Fly API: ``kind`` is machines, logs, metrics or releases."""

    kind: str

    async def run(self) -> FlyReport | list[FlyReport]: ...


class Intake:
    """Probe results and inbound signals into the per-app state the pass reads."""

    def __init__(self, apps: dict[str, AppState], metrics: Metrics, settings: Settings) -> None:
        self.apps = apps
        self.metrics = metrics
        self.settings = settings

    def observe(self, obs: Observation) -> None:
        """Record one probe result in its app's window and in the metrics."""
        state = self.apps.get(obs.app)
        if state is None:
            log.warning("observation_for_unknown_app", app=obs.app, probe=obs.probe)
            return
        state.window.add(obs)
        result = "ok" if obs.ok else str(obs.failure)
        self.metrics.probe_results.labels(obs.app, obs.probe, result).inc()
        if obs.latency_ms is not None:
            self.metrics.probe_duration.labels(obs.app, obs.probe).observe(obs.latency_ms / 1000)
        if obs.ok:
            self.metrics.probe_last_success.labels(obs.app, obs.probe).set(obs.at)
        previous = state.last_probe.get(obs.probe)
        state.last_probe[obs.probe] = result
        if result != previous:
            ctx = {"app": obs.app, "probe": obs.probe, "status": obs.status,
                   "latency_ms": None if obs.latency_ms is None else round(obs.latency_ms, 1)}
            if obs.ok and previous is None:
                log.info("probe_ok", **ctx)  # first result since start: the target is reached
            elif obs.ok:
                log.info("probe_recovered", **ctx, was=previous)
            elif not obs.ok:
                log.warning("probe_failed", **ctx, failure=result, detail=obs.detail,
                            watcher_side=obs.watcher_side)

    async def run_probe(self, probe: Probe) -> None:
        """Run one probe; a service-side failure is re-probed at once rather than next interval."""
        obs = await probe.run()
        self.observe(obs)
        if not obs.ok and not obs.watcher_side and self.settings.probes.reprobe_on_failure:
            again = await probe.run()
            self.observe(again)
            state = self.apps.get(probe.app)
            if not again.ok and state is not None and state.machines_probe is not None:
                # A failure confirmed by the re-probe: ask the Machines API now, not in 10 s.
                last = state.machines.at if state.machines else None
                if last is None or again.at - last >= self.settings.fly.machines_interval_s / 4:
                    await self.run_fly_probe(state.machines_probe)

    async def run_fly_probe(self, probe: FlyProbe) -> None:
        """Run one Fly probe (machines, logs, metrics, releases) and keep its report."""
        result = await probe.run()
        reports = result if isinstance(result, list) else [result]
        for report in reports:
            state = self.apps.get(report.app)
            if state is None:
                continue
            error = getattr(report, "error", None)
            self.metrics.fly_calls.labels(report.app, probe.kind,
                                          "ok" if error is None else "error").inc()
            if isinstance(report, MachinesReport):
                self._keep_machines(state, report)
            elif isinstance(report, LogsReport):
                state.logs.add(report)
            elif isinstance(report, TrafficReport):
                state.traffic.add(report)
            elif isinstance(report, ReleasesReport) and report.error is None:
                state.releases = report
            if error is not None and error != state.fly_error:
                log.warning("fly_api_unreachable", app=report.app, probe=probe.kind,
                            error=error)
            elif error is None and state.fly_error is not None and probe.kind == "machines":
                log.info("fly_api_reachable_again", app=report.app)
            if probe.kind == "machines" or error is not None:
                state.fly_error = error

    def _keep_machines(self, state: AppState, report: MachinesReport) -> None:
        previous = state.machines.facts if state.machines else None
        if report.facts is not None:
            state.machines = report
            f = report.facts
            self.metrics.machines.labels(state.name, "started_healthy").set(f.started_healthy)
            self.metrics.machines.labels(state.name, "down").set(f.down)
            self.metrics.machines.labels(state.name, "idle_stopped").set(f.idle_stopped)
            if previous is None or (previous.down, previous.started_healthy) != (
                    f.down, f.started_healthy):
                log.info("machines_changed", app=state.name, started_healthy=f.started_healthy,
                         down=f.down, idle=f.idle_stopped, total=f.total,
                         down_ids=list(f.down_ids))
        for machine_id, at, oom in report.new_exits:
            log.warning("machine_exited", app=state.name, machine=machine_id, oom_killed=oom,
                        exited_s_ago=round(report.at - at, 1))
            if oom:
                self.metrics.oom_kills.labels(state.name).inc()

    def put_signal(self, app: str, key: str, signal: Signal, until: float) -> bool:
        """An inbound alert (Alertmanager, operator) about ``app``, in force until ``until``
        (epoch seconds) or until cleared. ``key`` identifies it (an alert's fingerprint): the
        same key replaces, never adds. False when ``app`` is not watched."""
        state = self.apps.get(app)
        if state is None:
            return False
        if key not in state.signals:
            log.warning("signal_received", app=app, severity=signal.severity.value,
                        source=signal.source, summary=signal.summary)
        state.signals[key] = (signal, until)
        return True

    def clear_signal(self, app: str, key: str) -> bool:
        """The alert behind ``key`` resolved. False when it was not in force."""
        state = self.apps.get(app)
        if state is None or state.signals.pop(key, None) is None:
            return False
        log.info("signal_cleared", app=app)
        return True
