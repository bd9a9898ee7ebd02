"""Configuration: a TOML file plus ``HOTDASH_WATCH_*`` environment overrides.

::

    sections.py   one model per table ([thresholds], [window], [fly], [[apps]], [mitigation]...)
    errors.py     InvalidInput, ConfigError, describe_errors: one line per invalid field
    settings.py   the root Settings, [notify] and its channels, load_settings

Every name is importable from ``hotdash_watch.config``; a stage that needs only its own section
imports it from ``hotdash_watch.config.sections``.
"""

from __future__ import annotations

from hotdash_watch.config.errors import ConfigError, InvalidInput, describe_errors
from hotdash_watch.config.sections import (
    ActionName,
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
    check_http_url,
)
from hotdash_watch.config.settings import (
    ENV_PREFIX,
    ChannelSettings,
    NotifySettings,
    Settings,
    load_settings,
)

__all__ = [
    "ENV_PREFIX",
    "ActionName",
    "AppSettings",
    "ChannelSettings",
    "ConfigError",
    "FlySettings",
    "HysteresisSettings",
    "InvalidInput",
    "LogSettings",
    "MitigationSettings",
    "NotifySettings",
    "ProbeDefaults",
    "Seconds",
    "ServerSettings",
    "Settings",
    "Thresholds",
    "TimerSettings",
    "WindowSettings",
    "check_http_url",
    "describe_errors",
    "load_settings",
]


# Private names of the former single module, kept importable from here.
from hotdash_watch.config.errors import _path as _path
from hotdash_watch.config.sections import _Section as _Section

_check_http_url = check_http_url
