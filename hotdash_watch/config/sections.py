"""The sections of the configuration: one frozen model per TOML table, with the runbook's defaults.

Each model here is a plain pydantic model that rejects unknown keys. Nothing in this module
depends on paging or records, so every stage may read its own section from here: the root
``Settings`` (``hotdash_watch.config.settings``) puts the sections together and reads the file
and the environment.
"""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hotdash_watch.model.action import FLY_ACTIONS
from hotdash_watch.model.severity import Severity

__all__ = [
    "ActionName",
    "AppSettings",
    "FlySettings",
    "HysteresisSettings",
    "LogSettings",
    "MitigationSettings",
    "ProbeDefaults",
    "Seconds",
    "ServerSettings",
    "Thresholds",
    "TimerSettings",
    "WindowSettings",
    "check_http_url",
]


#: The service name in pages and reports when none is configured.
SERVICE_NAME = "Agent SDK"


class _Section(BaseModel):
    # Every table refuses unknown keys (a typo is an error, not a default) and is frozen.
    model_config = ConfigDict(extra="forbid", frozen=True)


Seconds = float
"""A duration in seconds (of the watcher's clock, which a simulation may run faster)."""


class Thresholds(_Section):
    """The runbook's SEV table. Ratios are fractions (0.05 = 5 %).

    Boundaries as the runbook words them: error rate > 50 % is SEV-1, 10-50 % SEV-2 (exactly 10 %
    and exactly 50 % are SEV-2), 5-10 % SEV-3 (exactly 5 % is SEV-3); p95 > 2000 ms is SEV-2,
    1000-2000 ms SEV-3 (exactly 1000 and exactly 2000 ms are SEV-3).
    """

    sev1_error_ratio: float = Field(0.50, gt=0, le=1, description="SEV-1 above this error ratio")
    sev2_error_ratio: float = Field(0.10, gt=0, le=1, description="SEV-2 at or above this ratio")
    sev3_error_ratio: float = Field(0.05, gt=0, le=1, description="SEV-3 at or above this ratio")
    sev2_p95_ms: float = Field(2000.0, gt=0, description="SEV-2 when p95 latency is above this")
    sev3_p95_ms: float = Field(1000.0, gt=0, description="SEV-3 when p95 latency is at or above")
    sev2_oom_kills: int = Field(2, ge=1, description="OOM kills in the window that make SEV-2")
    sev3_oom_kills: int = Field(1, ge=1, description="OOM kills in the window that make SEV-3")
    oom_window_s: Seconds = Field(
        300.0, gt=0, description="OOM kills and Fly's own restarts are counted over this span "
        "(Fly's restart policy uses 5 minutes); kills that stopped clear after it")
    resolve_error_ratio: float = Field(
        0.01, ge=0, le=1, description="error ratio below which recovery is verified (runbook: 1 %)"
    )
    min_samples: int = Field(
        5, ge=1, description="fewest probe samples in the evaluation span for a ratio or p95"
    )
    min_traffic_requests: int = Field(
        20, ge=1, description="fewest edge requests for real traffic to be preferred over probes"
    )
    idle_rps: float = Field(
        1.0, ge=0, description="req/s per started machine below which an app counts as idle"
    )
    idle_stop_after_s: Seconds = Field(
        600.0, gt=0, description="idle this long with autostop on and machines still started: "
        "auto-scaling misbehaving (SEV-3)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        problems = []
        if not self.sev3_error_ratio < self.sev2_error_ratio < self.sev1_error_ratio:
            problems.append(
                "error ratios must rise with severity: sev3_error_ratio "
                f"({self.sev3_error_ratio}) < sev2_error_ratio ({self.sev2_error_ratio}) "
                f"< sev1_error_ratio ({self.sev1_error_ratio})"
            )
        if not self.sev3_p95_ms < self.sev2_p95_ms:
            problems.append(
                f"sev3_p95_ms ({self.sev3_p95_ms}) must be below sev2_p95_ms ({self.sev2_p95_ms})"
            )
        if not self.sev3_oom_kills < self.sev2_oom_kills:
            problems.append(
                f"sev3_oom_kills ({self.sev3_oom_kills}) must be below sev2_oom_kills "
                f"({self.sev2_oom_kills})"
            )
        if not self.resolve_error_ratio < self.sev3_error_ratio:
            problems.append(
                f"resolve_error_ratio ({self.resolve_error_ratio}) must be below "
                f"sev3_error_ratio ({self.sev3_error_ratio})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class WindowSettings(_Section):
    """The rolling window kept per app."""

    bucket_s: Seconds = Field(5.0, gt=0, description="width of one time bucket")
    span_s: Seconds = Field(900.0, gt=0, description="how much history the window keeps")
    eval_s: Seconds = Field(
        60.0, gt=0, description="span the error ratio and p95 are judged over"
    )

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.span_s < self.bucket_s:
            raise ValueError(f"span_s ({self.span_s}) must be at least bucket_s ({self.bucket_s})")
        if self.eval_s > self.span_s:
            raise ValueError(f"eval_s ({self.eval_s}) must not exceed span_s ({self.span_s})")
        return self


class HysteresisSettings(_Section):
    """How long a condition must hold before it counts, and be gone before it clears.

    Counted in evaluations (one every ``timers.evaluation_interval_s``). Confirmation shrinks
    with severity: a total outage needs less of it than a 6 % error rate.
    """

    raise_evals_sev1: int = Field(2, ge=1, description="evaluations a SEV-1 condition must hold")
    raise_evals_sev2: int = Field(3, ge=1, description="evaluations a SEV-2 condition must hold")
    raise_evals_sev3: int = Field(4, ge=1, description="evaluations a SEV-3 condition must hold")
    clear_evals: int = Field(
        12, ge=1, description="evaluations a condition must be absent before it clears"
    )

    def raise_evals(self, severity: Severity) -> int:
        return {
            Severity.SEV1: self.raise_evals_sev1,
            Severity.SEV2: self.raise_evals_sev2,
            Severity.SEV3: self.raise_evals_sev3,
        }[severity]

    @model_validator(mode="after")
    def _clear_longer(self) -> Self:
        longest = max(self.raise_evals_sev1, self.raise_evals_sev2, self.raise_evals_sev3)
        if self.clear_evals <= longest:
            raise ValueError(
                f"clear_evals ({self.clear_evals}) must be greater than the longest raise "
                f"({longest}), or a flapping signal opens and closes incidents"
            )
        return self


class TimerSettings(_Section):
    """The runbook's timers."""

    evaluation_interval_s: Seconds = Field(5.0, gt=0, description="one classifier pass per app")
    sev3_escalate_after_s: Seconds = Field(
        1800.0, gt=0, description="a SEV-3 that lasts this long becomes SEV-2 (runbook: 30 min)"
    )
    stabilization_s: Seconds = Field(
        600.0, ge=0, description="quiet period before an incident may resolve (runbook: 10 min)"
    )
    good_checks_required: int = Field(
        5, ge=1, description="consecutive good health checks needed to resolve (runbook: 5)"
    )
    update_sev1_s: Seconds = Field(900.0, gt=0, description="status update cadence for SEV-1")
    update_sev2_s: Seconds = Field(1800.0, gt=0, description="status update cadence for SEV-2")
    heartbeat_stale_s: Seconds = Field(
        30.0, gt=0, description="/healthz fails when the scheduler has not ticked for this long"
    )
    shutdown_grace_s: Seconds = Field(5.0, gt=0, description="time allowed to drain on SIGTERM")


class ProbeDefaults(_Section):
    """Defaults for every app's HTTP probes."""

    interval_s: Seconds = Field(5.0, gt=0, description="health probe interval")
    timeout_s: Seconds = Field(5.0, gt=0, description="one probe's time limit")
    jitter_s: Seconds = Field(1.0, ge=0, description="random delay added to each run")
    latency_budget_ms: float = Field(
        500.0, gt=0, description="synthetic check budget (runbook: 500 ms)"
    )
    reprobe_on_failure: bool = Field(True, description="probe again at once after a failure")


def check_http_url(value: str | None) -> str | None:
    """``value`` unchanged when it is an http(s) URL with a host (or None); ValueError if not."""
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    return value


class AppSettings(_Section):
    """One watched Fly app."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$", description="Fly app name")
    health_url: str = Field(description="the service's health endpoint")
    synthetic_url: str | None = Field(
        None, description="an extra URL checked against the latency budget"
    )
    interval_s: Seconds | None = Field(None, gt=0, description="overrides probes.interval_s")
    timeout_s: Seconds | None = Field(None, gt=0, description="overrides probes.timeout_s")
    latency_budget_ms: float | None = Field(None, gt=0, description="overrides the budget")
    expect_status: list[int] = Field(default_factory=lambda: [200], min_length=1,
                                     description="HTTP statuses that count as healthy")
    expect_body: str | None = Field(None, description="text the health body must contain")

    _url = field_validator("health_url", "synthetic_url")(check_http_url)

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"HTTP statuses are 100-599, got {bad}")
        return value


class FlySettings(_Section):
    """Where the Fly APIs are and how often they are read. Without a token, only HTTP probes run.

    Inside a Fly machine the Machines API is also at ``http://_api.internal:4280``.
    """

    api_token: SecretStr | None = Field(
        None, description="Fly token (also read from FLY_API_TOKEN); `fly tokens create org`"
    )
    machines_url: str = Field("https://api.machines.dev", description="Machines API base URL")
    api_url: str = Field(
        "https://api.fly.io", description="GraphQL (releases) and logs polling base URL"
    )
    metrics: Literal["off", "scrape", "prometheus"] = Field(
        "off", description="real-traffic source: a /metrics scrape or Fly's managed Prometheus"
    )
    metrics_url: str | None = Field(
        None, description="scrape: the /metrics URL; prometheus: "
        "https://api.fly.io/prometheus/<org-slug>"
    )
    timeout_s: Seconds = Field(10.0, gt=0, description="time limit of one Fly API call")
    machines_interval_s: Seconds = Field(10.0, gt=0, description="machines poll interval")
    logs_interval_s: Seconds = Field(15.0, gt=0, description="logs poll interval")
    metrics_interval_s: Seconds = Field(15.0, gt=0, description="metrics poll interval")
    releases_interval_s: Seconds = Field(60.0, gt=0, description="releases poll interval")
    recent_release_s: Seconds = Field(
        7200.0, gt=0, description="a release younger than this is a suspect (deploy correlation)"
    )
    check_grace_s: Seconds = Field(
        30.0, ge=0, description="a started machine's checks must fail this long before it "
        "counts as down (one flapping check is not an outage)"
    )
    stale_after_polls: int = Field(
        3, ge=1, description="machine facts older than this many polls are not used"
    )

    _urls = field_validator("machines_url", "api_url", "metrics_url")(check_http_url)

    @property
    def enabled(self) -> bool:
        return self.api_token is not None

    @model_validator(mode="after")
    def _metrics_url(self) -> Self:
        if self.metrics != "off" and not self.metrics_url:
            raise ValueError(f"metrics = {self.metrics!r} needs metrics_url")
        return self


#: The actions a setting may name: every kind that changes something on Fly.
ActionName = Literal[tuple(k.value for k in FLY_ACTIONS)]  # type: ignore[valid-type]


class MitigationSettings(_Section):
    """Auto-mitigation (runbook Phase 2) and the guards around it; every guard is on by default.

    ``allowed_actions`` is the runbook's Level-1 authority (restart, start, rollback); memory
    raises and scale-out are switched on here. ``stop`` (scale to zero) is never planned unless
    ``allow_scale_to_zero`` is true; otherwise the page proposes it.
    """

    allowed_actions: list[ActionName] = Field(
        default_factory=lambda: ["restart", "start", "rollback"],
        description="action kinds the watcher may take by itself (runbook Level 1: restart, "
        "start, rollback; add raise_memory, scale_out, stop to allow more)")
    restart_budget_machine: int = Field(
        3, ge=0, description="restarts/starts of one machine per budget window, Fly's own "
        "supervisor restarts included; beyond it the loop stops and pages")
    restart_budget_app: int = Field(
        6, ge=0, description="restarts/starts of an app's machines per budget window")
    budget_window_s: Seconds = Field(3600.0, gt=0, description="the restart budgets' window")
    cooldown_s: Seconds = Field(
        60.0, ge=0, description="least time between two actions on the same target")
    max_unavailable_fraction: float = Field(
        0.5, gt=0, le=1, description="never take more than this fraction of an app's machines "
        "out of service at once (at least one; never the last healthy machine)")
    release_healthy_after_s: Seconds = Field(
        60.0, gt=0, description="a release counts as known healthy once the watcher saw the "
        "app healthy this long while it was current (rollback targets only such releases)")
    memory_factor: float = Field(
        2.0, gt=1, description="raise_memory multiplies a machine's memory by this (512 -> 1024)")
    memory_cap_mb: int = Field(2048, ge=256, description="raise_memory never goes above this")
    settle_s: Seconds = Field(
        10.0, ge=0, description="a machine started by an action must stay up this long with "
        "its checks passing before the action counts as done")
    action_timeout_s: Seconds = Field(
        120.0, gt=0, description="longest wait for a machine to start and pass its checks")
    recovery_check_s: Seconds = Field(
        120.0, gt=0, description="after a mitigation, a SEV-2 still present this long later "
        "becomes SEV-1 (runbook: if not resolved, escalate)")
    lease_ttl_s: Seconds = Field(60.0, ge=10, description="Fly lease held around each action")
    lease_backoff_s: Seconds = Field(
        30.0, gt=0, description="after finding a lease held by someone else (a deploy), wait "
        "this long and re-assess")
    allow_scale_to_zero: bool = Field(
        False, description="let the watcher stop every machine of an app (never by default)")


class ServerSettings(_Section):
    """The watcher's HTTP server: /metrics, /healthz, /readyz, /api and /hooks/alertmanager.

    Tokens are compared in constant time and never logged. Without ``api_token`` the mutating
    /api calls are refused (403); without ``hooks_token`` or ``api_token`` the Alertmanager hook
    is refused too. /metrics is open unless ``metrics_token`` is set.
    """

    host: str = Field("0.0.0.0", description="address the HTTP server listens on")
    port: int = Field(9464, ge=0, le=65535, description="port of /metrics, /healthz and /api")
    api_token: SecretStr | None = Field(
        None, description="bearer token for the mutating /api calls (silences, acknowledge); "
        "unset: they are refused")
    hooks_token: SecretStr | None = Field(
        None, description="bearer token Alertmanager must send to /hooks/alertmanager "
        "(http_config.authorization.credentials); unset: api_token is used")
    hook_signal_ttl_s: Seconds = Field(
        900.0, gt=0, le=86400, description="a firing alert from /hooks/alertmanager counts this "
        "long unless re-sent or resolved; keep Alertmanager's repeat_interval well below it")
    metrics_token: SecretStr | None = Field(
        None, description="when set, /metrics requires Authorization: Bearer <token>; unset: "
        "open (Fly's managed Prometheus scrapes without credentials)")

    @field_validator("api_token", "hooks_token", "metrics_token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token would match an empty "Authorization: Bearer" header.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty; leave it unset instead")
        return value


class LogSettings(_Section):
    """The daemon's own log: structlog events, secrets removed before output."""

    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON lines otherwise"
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="lowest level written")
