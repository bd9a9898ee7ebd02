"""fly.toml, read as TOML: the essentials of a watcher on Fly, and every setting it names (in
[env] and in the secrets it documents) is one the daemon really loads."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from hotdash_watch.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
FLY_TOML = ROOT / "fly.toml"
IMAGE_CONFIG = ROOT / "config" / "watch.toml"  # what the image runs with (Dockerfile CMD)
IDLE_RSS_MB = 80  # bench/footprint.py, 20 apps every 15 s


@pytest.fixture(scope="module")
def fly() -> dict[str, Any]:
    return tomllib.loads(FLY_TOML.read_text())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "FLY_API_TOKEN":
            monkeypatch.delenv(name)
    return monkeypatch


def _field_path(env_name: str) -> list[str]:
    """HOTDASH_WATCH_SERVER__PORT -> ["server", "port"], checked against the settings model."""
    assert env_name.startswith(ENV_PREFIX), env_name
    parts = env_name.removeprefix(ENV_PREFIX).lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        assert part in model.model_fields, f"{env_name}: no setting {'.'.join(parts[:i + 1])}"
        annotation = model.model_fields[part].annotation
        if i < len(parts) - 1:
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), \
                f"{env_name}: {'.'.join(parts[:i + 1])} is not a section"
            model = annotation
    return parts


def _get(settings: Settings, path: list[str]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def _memory_mb(value: str | int) -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)\s*(mb|gb)", value.strip().lower())
    assert m, f"memory {value!r}"
    return int(m.group(1)) * (1024 if m.group(2) == "gb" else 1)


class TestEssentials:
    def test_metrics_are_exposed_to_flys_prometheus(self, fly: dict[str, Any]):
        assert fly["metrics"] == {"port": 9464, "path": "/metrics"}
        assert fly["env"]["HOTDASH_WATCH_SERVER__PORT"] == str(fly["metrics"]["port"])
        assert fly["env"]["HOTDASH_WATCH_SERVER__HOST"] == "0.0.0.0"

    def test_service_checks_healthz_and_never_sleeps(self, fly: dict[str, Any]):
        svc = fly["http_service"]
        assert svc["internal_port"] == fly["metrics"]["port"]
        assert svc["auto_stop_machines"] == "off"
        assert svc["min_machines_running"] >= 1
        checks = svc["checks"]
        assert any(c["path"] == "/healthz" and c.get("method", "GET").upper() == "GET"
                   for c in checks), checks
        for c in checks:
            assert {"grace_period", "interval", "timeout"} <= c.keys()

    def test_stops_with_sigterm_and_time_to_drain(self, fly: dict[str, Any]):
        assert fly["kill_signal"] == "SIGTERM"
        grace = Settings.model_fields["timers"].default.shutdown_grace_s
        # scheduler, responder and outbox each get the grace in turn, then the store closes
        assert 3 * grace < fly["kill_timeout"] <= 300

    def test_memory_fits_the_measured_footprint(self, fly: dict[str, Any]):
        [vm] = fly["vm"]
        memory = _memory_mb(vm["memory"])
        assert memory >= 3 * IDLE_RSS_MB
        assert memory <= 1024, "the footprint does not need more; say why if it changes"

    def test_store_journal_and_artifacts_are_on_the_volume(self, fly: dict[str, Any]):
        mounts = fly["mounts"]
        mounts = mounts[0] if isinstance(mounts, list) else mounts
        assert mounts["source"] and mounts["destination"] == "/data"
        env = fly["env"]
        store = env["HOTDASH_WATCH_STORE_URL"]
        assert store.startswith("sqlite+aiosqlite:///" + mounts["destination"] + "/")
        for key in ("HOTDASH_WATCH_NOTIFY__JOURNAL_PATH", "HOTDASH_WATCH_NOTIFY__ARTIFACTS_DIR"):
            assert env[key].startswith(mounts["destination"] + "/"), key

    def test_env_holds_no_secret(self, fly: dict[str, Any]):
        env = fly["env"]
        for name, value in env.items():
            assert isinstance(value, str), f"{name}: Fly env values are strings"
            assert not name.startswith("FLY_"), f"{name}: Fly reserves FLY_*"
            path = _field_path(name)
            field = _field_info(path)
            assert field.annotation not in (SecretStr, SecretStr | None), \
                f"{name} is a secret: set it with fly secrets set, not in [env]"
            assert "channels" not in path, "channels carry webhook URLs and keys: a secret"


def _field_info(path: list[str]) -> Any:
    model: Any = Settings
    for part in path[:-1]:
        model = model.model_fields[part].annotation
    return model.model_fields[path[-1]]


class TestSettingsNamed:
    def test_every_env_key_is_a_setting_and_loads(self, fly: dict[str, Any],
                                                  clean_env: pytest.MonkeyPatch):
        """The environment of fly.toml over the image's configuration file loads, and each
        variable really sets the setting it names (an unknown top-level HOTDASH_WATCH_* name
        would be ignored silently, so the value is read back)."""
        env = fly["env"]
        assert env
        for name, value in env.items():
            clean_env.setenv(name, value)
        loaded = load_settings(IMAGE_CONFIG)
        for name, value in env.items():
            got = _get(loaded, _field_path(name))
            shown = str(got).lower() if isinstance(got, bool) else str(got)
            assert shown == value, f"{name}={value!r} loaded as {got!r}"
        assert loaded.dry_run is True, "ship in dry-run: the operator turns mitigation on"

    def test_documented_secrets_load(self, clean_env: pytest.MonkeyPatch):
        """The secrets the comments tell the operator to set, with the example values shown
        there (the channels' JSON included), load into the settings they are meant for."""
        text = FLY_TOML.read_text()
        comments = "\n".join(line.split("#", 1)[1] for line in text.splitlines()
                             if "#" in line)
        named = set(re.findall(r"\b(?:HOTDASH_WATCH_[A-Z_]+|FLY_API_TOKEN)\b", comments))
        assert {"FLY_API_TOKEN", "HOTDASH_WATCH_SERVER__API_TOKEN",
                "HOTDASH_WATCH_NOTIFY__CHANNELS", "HOTDASH_WATCH_STORE_URL"} <= named
        for name in named - {"FLY_API_TOKEN"}:
            _field_path(name)

        m = re.search(r"HOTDASH_WATCH_NOTIFY__CHANNELS='(.*?)'", comments, re.S)
        assert m, "no example value for HOTDASH_WATCH_NOTIFY__CHANNELS"
        channels = " ".join(m.group(1).split())
        example = json.loads(channels)
        m = re.search(r"HOTDASH_WATCH_STORE_URL='(.*?)'", comments)
        assert m, "no example PostgreSQL URL"
        store_url = m.group(1)

        clean_env.setenv("FLY_API_TOKEN", "fo1_example")
        clean_env.setenv("HOTDASH_WATCH_SERVER__API_TOKEN", "s3cret")
        clean_env.setenv("HOTDASH_WATCH_NOTIFY__CHANNELS", channels)
        clean_env.setenv("HOTDASH_WATCH_STORE_URL", store_url)
        loaded = load_settings(IMAGE_CONFIG)
        assert loaded.fly.api_token is not None
        assert loaded.fly.api_token.get_secret_value() == "fo1_example"
        assert loaded.server.api_token is not None
        assert loaded.server.api_token.get_secret_value() == "s3cret"
        assert [c.name for c in loaded.notify.channels] == [c["name"] for c in example]
        assert loaded.notify.channels[0].min_severity == example[0]["min_severity"]
        assert loaded.store_url == store_url
