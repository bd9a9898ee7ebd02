"""Every ``hotdash_watch_*`` collector, built on a registry that is passed in.

Labels are bounded: the watched app is ``target_app`` (Fly's Prometheus overwrites ``app``,
``region``, ``host`` and ``instance`` with the watcher's own values), then ``probe``,
``severity``, ``event``, ``result`` — never a URL or an incident ID. Label sets of the
configured apps are created at start so they exist at zero.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hotdash_watch.model.action import FLY_ACTIONS
from hotdash_watch.model.incident import Event
from hotdash_watch.model.severity import Severity
from hotdash_watch.probes.base import FailureKind

__all__ = ["ACTIONS", "ACTION_OUTCOMES", "Metrics"]

#: Action kinds and outcomes: the bounded label values of ``hotdash_watch_actions_total``.
ACTIONS = tuple(k.value for k in FLY_ACTIONS)
ACTION_OUTCOMES = ("ok", "failed", "vetoed", "dry_run", "deferred")

_PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """The daemon's collectors. Construct one per registry (tests get a fresh registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.probe_duration = Histogram(
            "hotdash_watch_probe_duration_seconds",
            "Time a probe took, from request to end of body.",
            ["target_app", "probe"], buckets=_PROBE_BUCKETS, registry=registry,
        )
        self.probe_results = Counter(
            "hotdash_watch_probe_results_total",
            "Probe results by outcome: ok, or the failure kind.",
            ["target_app", "probe", "result"], registry=registry,
        )
        self.probe_last_success = Gauge(
            "hotdash_watch_probe_last_success_timestamp_seconds",
            "When a probe of the app last succeeded (Unix time).",
            ["target_app", "probe"], registry=registry,
        )
        self.severity = Gauge(
            "hotdash_watch_incident_severity",
            "1 for the severity of the app's open incident, 0 for the others.",
            ["target_app", "severity"], registry=registry,
        )
        self.incident_open = Gauge(
            "hotdash_watch_incident_open",
            "1 while the app has an open incident.",
            ["target_app"], registry=registry,
        )
        self.incidents_opened = Counter(
            "hotdash_watch_incidents_opened_total",
            "Incidents opened, by their first severity.",
            ["target_app", "severity"], registry=registry,
        )
        self.transitions = Counter(
            "hotdash_watch_incident_transitions_total",
            "Incident timeline events (opened, escalated, monitoring, resolved...).",
            ["target_app", "event"], registry=registry,
        )
        self.error_ratio = Gauge(
            "hotdash_watch_window_error_ratio",
            "Error ratio over the evaluation span (NaN when there is no sample).",
            ["target_app"], registry=registry,
        )
        self.p95 = Gauge(
            "hotdash_watch_window_latency_p95_seconds",
            "p95 latency over the evaluation span (NaN when there is no sample).",
            ["target_app"], registry=registry,
        )
        self.raw_severity = Gauge(
            "hotdash_watch_assessed_severity_rank",
            "Severity of the latest raw assessment before hysteresis: 3 SEV-1, 2 SEV-2, "
            "1 SEV-3, 0 none.",
            ["target_app"], registry=registry,
        )
        self.watcher_side = Gauge(
            "hotdash_watch_watcher_side_blind",
            "1 when the watcher cannot see the app for its own reasons (DNS, route).",
            ["target_app"], registry=registry,
        )
        self.evaluations = Counter(
            "hotdash_watch_evaluations_total", "Classifier passes over all apps.",
            registry=registry,
        )
        self.last_tick = Gauge(
            "hotdash_watch_scheduler_last_tick_timestamp_seconds",
            "When the scheduler last ran an evaluation pass (Unix time).", registry=registry,
        )
        self.fly_calls = Counter(
            "hotdash_watch_fly_calls_total", "Fly API reads by probe kind and outcome.",
            ["target_app", "probe", "outcome"], registry=registry,
        )
        self.machines = Gauge(
            "hotdash_watch_machines",
            "Machines of the app by condition (started_healthy, down, idle_stopped).",
            ["target_app", "condition"], registry=registry,
        )
        self.oom_kills = Counter(
            "hotdash_watch_oom_kills_total", "OOM kills seen in machine exit events.",
            ["target_app"], registry=registry,
        )
        self.actions = Counter(
            "hotdash_watch_actions_total",
            "Mitigation actions by kind and outcome (ok, failed, vetoed, dry_run, deferred: "
            "someone else held the machine's lease).",
            ["target_app", "action", "outcome"], registry=registry,
        )
        self.action_in_progress = Gauge(
            "hotdash_watch_action_in_progress",
            "1 while a mitigation action runs against the app.",
            ["target_app"], registry=registry,
        )
        self.store_errors = Counter(
            "hotdash_watch_store_errors_total", "Failed writes to the incident store.",
            registry=registry,
        )

    def init_apps(self, apps: Iterable[str], probes: Iterable[str] = ("health",)) -> None:
        """Create every label set of the configured apps so each series exists at zero."""
        probes = tuple(probes)
        for app in apps:
            for probe in probes:
                self.probe_duration.labels(app, probe)
                for result in ("ok", *FailureKind):
                    self.probe_results.labels(app, probe, str(result))
            for sev in Severity:
                self.severity.labels(app, sev.value).set(0)
                self.incidents_opened.labels(app, sev.value)
            for event in Event:
                self.transitions.labels(app, event.value)
            self.incident_open.labels(app).set(0)
            self.error_ratio.labels(app).set(float("nan"))
            self.p95.labels(app).set(float("nan"))
            self.raw_severity.labels(app).set(0)
            self.watcher_side.labels(app).set(0)
            self.oom_kills.labels(app)
            self.action_in_progress.labels(app).set(0)
            for action in ACTIONS:
                for outcome in ACTION_OUTCOMES:
                    self.actions.labels(app, action, outcome)

    def set_severity(self, app: str, severity: Severity | None) -> None:
        for sev in Severity:
            self.severity.labels(app, sev.value).set(1 if sev is severity else 0)
        self.incident_open.labels(app).set(0 if severity is None else 1)
