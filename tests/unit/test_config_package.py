"""hotdash_watch.config is a package: every name of the former single module stays importable
from it, and its sections and errors import nothing of paging."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hotdash_watch.config as config

#: Every name the single ``hotdash_watch/config.py`` defined (private helpers included).
FORMER_NAMES = [
    "ENV_PREFIX", "ActionName", "AppSettings", "ChannelSettings", "ConfigError", "FlySettings",
    "HysteresisSettings", "InvalidInput", "LogSettings", "MitigationSettings", "NotifySettings",
    "ProbeDefaults", "Seconds", "ServerSettings", "Settings", "Thresholds", "TimerSettings",
    "WindowSettings", "_Section", "_check_http_url", "_path", "describe_errors", "load_settings",
]


@pytest.mark.parametrize("name", FORMER_NAMES)
def test_former_names_stay_importable(name: str):
    """``from hotdash_watch.config import <name>`` works for every name of the old module."""
    assert getattr(config, name) is not None


def test_public_names_are_listed():
    """``__all__`` names only what the package has."""
    assert all(hasattr(config, n) for n in config.__all__)


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


LOADED_NOTIFY = ("import sys; print(sorted(m for m in sys.modules "
                 "if m.startswith('hotdash_watch.notify')))")


@pytest.mark.parametrize("module", ["hotdash_watch.config.sections",
                                    "hotdash_watch.config.errors"])
def test_sections_and_errors_load_no_paging(module: str):
    """A stage reading its section from the submodules loads nothing of notify/, even in a
    fresh interpreter (the package's own __init__ included)."""
    assert _fresh(f"import {module}; {LOADED_NOTIFY}") == "[]"


@pytest.mark.parametrize("module", ["hotdash_watch.config.sections", "hotdash_watch.config",
                                    "hotdash_watch.config.settings", "hotdash_watch.notify",
                                    "hotdash_watch.classify"])
def test_imports_without_a_cycle(module: str):
    """Each module imports first in a fresh interpreter: no import cycle between config and
    notify, whichever is imported first."""
    _fresh(f"import {module}; from hotdash_watch.config import Settings; Settings()")


def test_channel_settings_builds_the_kind_model():
    """``ChannelSettings(name=..., kind=..., ...)`` builds the model of that kind, and refuses
    what that kind's model refuses."""
    from pydantic import ValidationError

    from hotdash_watch.notify.base import ChannelBase
    from hotdash_watch.notify.webhook import WebhookChannel

    c = config.ChannelSettings(name="pager", kind="webhook", url="http://127.0.0.1:9/p",
                               min_severity="SEV-1")
    assert type(c) is WebhookChannel and isinstance(c, ChannelBase)
    assert (c.name, c.min_severity, c.url.get_secret_value()) == (
        "pager", "SEV-1", "http://127.0.0.1:9/p")
    with pytest.raises(ValidationError):
        config.ChannelSettings(name="pager", kind="webhook")
    with pytest.raises(ValidationError):
        config.ChannelSettings(name="pager", kind="slack", url="http://h/x", routing_key="k")
