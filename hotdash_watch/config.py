"""Configuration: a TOML file plus ``HOTDASH_WATCH_*`` environment overrides.

Every threshold of the runbook's SEV table, every window, interval, timeout and timer is a
setting whose default is the runbook's value. Environment variables win over the file; nested
keys use ``__`` (``HOTDASH_WATCH_THRESHOLDS__SEV2_P95_MS=1500``). Secrets are ``SecretStr``.

Invalid input never produces a traceback: ``load_settings`` raises ``ConfigError`` whose
``problems`` name each field by its path (``apps[0].health_url``) with what is allowed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hotdash_watch.model.severity import Severity

__all__ = ["AppSettings", "ConfigError", "Settings", "load_settings"]

ENV_PREFIX = "HOTDASH_WATCH_"


class InvalidInput(Exception):
    """A file a person wrote cannot be used; ``problems`` holds one line per invalid field."""

    what = "input"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"invalid {self.what} ({self.source}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class ConfigError(InvalidInput):
    """The configuration cannot be used."""

    what = "configuration"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Seconds = float


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


def _check_http_url(value: str | None) -> str | None:
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

    _url = field_validator("health_url", "synthetic_url")(_check_http_url)

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

    _urls = field_validator("machines_url", "api_url", "metrics_url")(_check_http_url)

    @property
    def enabled(self) -> bool:
        return self.api_token is not None

    @model_validator(mode="after")
    def _metrics_url(self) -> Self:
        if self.metrics != "off" and not self.metrics_url:
            raise ValueError(f"metrics = {self.metrics!r} needs metrics_url")
        return self


class ChannelSettings(_Section):
    """One paging channel. Secrets (URL, routing key, HMAC key) are never logged or paged."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                      description="label of the channel in metrics and the API")
    kind: Literal["webhook", "slack", "pagerduty", "alertmanager"] = Field(
        description="generic JSON webhook, Slack incoming webhook, PagerDuty Events v2, or "
        "Alertmanager v2 /api/v2/alerts")
    url: SecretStr | None = Field(
        None, description="webhook/Slack URL, Alertmanager base URL, or the PagerDuty events "
        "endpoint (default https://events.pagerduty.com/v2/enqueue)")
    routing_key: SecretStr | None = Field(None, description="PagerDuty integration key")
    hmac_secret: SecretStr | None = Field(
        None, description="webhook: sign bodies with HMAC-SHA256 (X-Hotdash-Signature)")
    min_severity: Literal["SEV-1", "SEV-2", "SEV-3"] = Field(
        "SEV-3", description="pages below this severity are not sent on this channel")
    timeout_s: Seconds = Field(10.0, gt=0, description="time limit of one delivery")

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.kind == "pagerduty" and self.routing_key is None:
            raise ValueError("a pagerduty channel needs routing_key")
        if self.kind != "pagerduty" and self.url is None:
            raise ValueError(f"a {self.kind} channel needs url")
        if self.url is not None:
            _check_http_url(self.url.get_secret_value().split("?")[0] or "x")
        return self


class NotifySettings(_Section):
    """Paging: channels in failover order, retries, and what pages say."""

    channels: list[ChannelSettings] = Field(
        default_factory=list, description="paging channels, in failover order")
    affected: str = Field(
        "Agent SDK services (LlamaIndex MCP, Agent Service)",
        description="the AFFECTED line of SEV-1 pages")
    retry_initial_s: Seconds = Field(5.0, gt=0, description="first retry delay of a page")
    retry_max_s: Seconds = Field(300.0, gt=0, description="longest retry delay of a page")
    failover_after_s: Seconds = Field(
        120.0, gt=0, description="a channel failing this long hands its pages to the next one")
    journal_path: str = Field("feedback/reliability.md", description="the runbook's journal")
    artifacts_dir: str = Field(
        "artifacts/reliability", description="diagnostics and reports, one folder per incident")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {', '.join(dupes)}")
        return self


ActionName = Literal["restart", "start", "rollback", "raise_memory", "scale_out", "stop"]


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


class Settings(BaseSettings):
    """Everything the daemon reads at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    service_name: str = Field("Agent SDK", description="service name used in pages and reports")
    team: str = Field("Reliability Team", description="contact named in pages")
    store_url: str = Field(
        "sqlite+aiosqlite:///var/hotdash-watch.db",
        description="sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB",
    )
    dry_run: bool = Field(
        False, description="plan and record what would be done, change nothing on Fly")
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    thresholds: Thresholds = Thresholds()
    window: WindowSettings = WindowSettings()
    hysteresis: HysteresisSettings = HysteresisSettings()
    timers: TimerSettings = TimerSettings()
    probes: ProbeDefaults = ProbeDefaults()
    fly: FlySettings = FlySettings()
    notify: NotifySettings = NotifySettings()
    mitigation: MitigationSettings = MitigationSettings()
    apps: list[AppSettings] = Field(default_factory=list, description="the watched apps")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (the file's values arrive as init kwargs).
        return (env_settings, init_settings)

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        allowed = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg")
        if scheme not in allowed:
            raise ValueError(
                "must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB "
                f"(scheme {scheme or 'missing'!r} is not supported)"
            )
        return value

    @model_validator(mode="after")
    def _unique_apps(self) -> Self:
        names = [a.name for a in self.apps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"apps: each app may be listed once; repeated: {', '.join(dupes)}")
        return self

    def app(self, name: str) -> AppSettings:
        for a in self.apps:
            if a.name == name:
                return a
        raise KeyError(name)

    def interval_for(self, app: AppSettings) -> float:
        return app.interval_s or self.probes.interval_s

    def timeout_for(self, app: AppSettings) -> float:
        return app.timeout_s or self.probes.timeout_s

    def budget_for(self, app: AppSettings) -> float:
        return app.latency_budget_ms or self.probes.latency_budget_ms


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where an unknown key was found, by walking the model along ``loc``."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
                     None)
        if model is None:
            return []
    return sorted(model.model_fields)


def describe_errors(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        where = _path(loc)
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
            problems.append(f"{where}: unknown key{hint}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        shown = e.get("input")
        if isinstance(shown, (str, int, float, bool)) and e["type"] != "value_error":
            msg = f"{msg} (got {shown!r})"
        problems.append(f"{where}: {msg}")
    return problems


def load_settings(
    path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read ``path`` (TOML) under the environment's overrides; raise ConfigError when invalid.

    ``overrides`` replace top-level keys of the file (the demo and ``simulate`` use them).
    """
    source = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, [f"{path}: no such file"]) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(source, [f"{path}: not valid TOML: {e}"]) from None
        except OSError as e:
            raise ConfigError(source, [f"{path}: cannot be read: {e.strerror}"]) from None
    if overrides:
        data = {**data, **overrides}
    token = os.environ.get("FLY_API_TOKEN")
    if token and not os.environ.get(f"{ENV_PREFIX}FLY__API_TOKEN"):
        fly = dict(data.get("fly") or {})
        fly.setdefault("api_token", token)
        data = {**data, "fly": fly}
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(source, describe_errors(e)) from None
    except ValueError as e:  # malformed JSON in a complex environment override
        raise ConfigError(source, [f"environment ({ENV_PREFIX}*): {e}"]) from None
