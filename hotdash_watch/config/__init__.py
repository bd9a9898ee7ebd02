"""Configuration: a TOML file plus ``HOTDASH_WATCH_*`` environment overrides.

::

    sections.py   one model per table ([thresholds], [window], [fly], [[apps]], [mitigation]...);
                  imports only pydantic and hotdash_watch.model
    errors.py     InvalidInput, ConfigError, describe_errors: one line per invalid field
    settings.py   the root Settings, [notify] with the paging channels' models, load_settings

Every name is importable from ``hotdash_watch.config``. The names of ``settings.py`` are loaded
on first use: the channels' models live in notify/, whose modules import the sections, so a
stage that reads only its own section (from here or from ``config.sections``) loads nothing of
paging, and importing notify/ first does not loop back through the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hotdash_watch.config.errors import ConfigError, InvalidInput, describe_errors
from hotdash_watch.config.errors import _path as _path  # a name of the former single module
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
from hotdash_watch.config.sections import _Section as _Section  # a name of the former single module

if TYPE_CHECKING:
    from hotdash_watch.config.settings import (
        ENV_PREFIX,
        ChannelSettings,
        NotifySettings,
        Settings,
        load_settings,
    )

_FROM_SETTINGS = frozenset(
    {"ENV_PREFIX", "ChannelSettings", "NotifySettings", "Settings", "load_settings"})

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


_check_http_url = check_http_url  # a name of the former single module


def __getattr__(name: str) -> Any:
    if name in _FROM_SETTINGS:
        from hotdash_watch.config import settings

        value = getattr(settings, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_SETTINGS})
