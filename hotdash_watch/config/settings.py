"""The whole configuration: a TOML file plus ``HOTDASH_WATCH_*`` environment overrides.

Every threshold of the runbook's SEV table, every window, interval, timeout and timer is a
setting whose default is the runbook's value. Environment variables win over the file; nested
keys use ``__`` (``HOTDASH_WATCH_THRESHOLDS__SEV2_P95_MS=1500``). Secrets are ``SecretStr``.

Invalid input never produces a traceback: ``load_settings`` raises ``ConfigError`` whose
``problems`` name each field by its path (``apps[0].health_url``) with what is allowed.

The sections come from ``sections.py``; ``[notify]``'s channels are the paging channels' own
models (``hotdash_watch.notify.channels``), so this module, unlike the sections, depends on
notify/.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hotdash_watch.config.errors import ConfigError, describe_errors, read_toml
from hotdash_watch.config.sections import (
    SERVICE_NAME,
    AppSettings,
    FlySettings,
    HysteresisSettings,
    LogSettings,
    MitigationSettings,
    ProbeDefaults,
    Seconds,
    ServerSettings,
    Thresholds,
    TimerSettings,
    WindowSettings,
    _Section,
)
from hotdash_watch.notify.channels import AnyChannel, ChannelSettings

__all__ = ["ENV_PREFIX", "ChannelSettings", "NotifySettings", "Settings", "load_settings"]

ENV_PREFIX = "HOTDASH_WATCH_"


class NotifySettings(_Section):
    """Paging: channels in failover order, retries, and what pages say."""

    channels: list[AnyChannel] = Field(
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


class Settings(BaseSettings):
    """Everything the daemon reads at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    service_name: str = Field(SERVICE_NAME, description="service name used in pages and reports")
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


def load_settings(
    path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read ``path`` (TOML) under the environment's overrides; raise ConfigError when invalid.

    ``overrides`` replace top-level keys of the file (the demo and ``simulate`` use them).
    """
    source = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        data = read_toml(path, ConfigError)
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
        raise ConfigError(source, describe_errors(e, Settings)) from None
    except ValueError as e:  # malformed JSON in a complex environment override
        raise ConfigError(source, [f"environment ({ENV_PREFIX}*): {e}"]) from None
