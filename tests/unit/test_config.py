"""Settings: the runbook's defaults, environment overrides and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotdash_watch.cli import main
from hotdash_watch.config import ConfigError, Settings, load_settings
from hotdash_watch.notify.alertmanager import AlertmanagerChannel
from hotdash_watch.notify.pagerduty import PagerDutyChannel
from hotdash_watch.notify.slack import SlackChannel
from hotdash_watch.notify.webhook import WebhookChannel

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "watch.toml"
    p.write_text(text)
    return p


class TestDefaults:
    def test_runbook_values(self):
        """Every default is the runbook's value."""
        s = Settings()
        t = s.thresholds
        assert (t.sev1_error_ratio, t.sev2_error_ratio, t.sev3_error_ratio) == (0.5, 0.1, 0.05)
        assert (t.sev2_p95_ms, t.sev3_p95_ms, t.resolve_error_ratio) == (2000, 1000, 0.01)
        assert s.timers.sev3_escalate_after_s == 1800
        assert s.timers.stabilization_s == 600
        assert s.timers.good_checks_required == 5
        assert (s.timers.update_sev1_s, s.timers.update_sev2_s) == (900, 1800)
        assert s.probes.latency_budget_ms == 500

    def test_example_file_is_valid(self):
        """config/watch.toml is valid and watches the runbook's two apps."""
        s = load_settings(ROOT / "config" / "watch.toml")
        assert [a.name for a in s.apps] == ["hotdash-llamaindex-mcp", "hotdash-agent-service"]


class TestEnvironment:
    def test_env_overrides_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        """HOTDASH_WATCH_<SECTION>__<KEY> wins over the file."""
        p = _write(tmp_path, "[thresholds]\nsev2_p95_ms = 3000\n")
        monkeypatch.setenv("HOTDASH_WATCH_THRESHOLDS__SEV2_P95_MS", "2500")
        assert load_settings(p).thresholds.sev2_p95_ms == 2500

    def test_secret_is_not_printed(self, monkeypatch: pytest.MonkeyPatch):
        """The API token is a SecretStr: its repr and the settings' repr hide it."""
        monkeypatch.setenv("HOTDASH_WATCH_SERVER__API_TOKEN", "s3cr3t-token")
        s = load_settings(None)
        assert s.server.api_token.get_secret_value() == "s3cr3t-token"
        assert "s3cr3t-token" not in repr(s) and "s3cr3t-token" not in str(s.model_dump())


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[probes]\ninterval_s = -5\n", "probes.interval_s: Input should be greater than 0"),
            ("[thresholds]\nsev3_error_ratio = 0.2\n",
             "sev3_error_ratio (0.2) < sev2_error_ratio (0.1)"),
            ("[thresholds]\nsev3_p95_ms = 2500\n", "sev3_p95_ms (2500.0) must be below"),
            ("[window]\nbukket_s = 5\n", "window.bukket_s: unknown key; allowed here: bucket_s"),
            ("colour = 1\n", "colour: unknown key"),
            ('[[apps]]\nname = "a"\nhealth_url = "ftp://x/health"\n',
             "apps[0].health_url: must be an http:// or https:// URL"),
            ('store_url = "mysql://x"\n', "store_url: must be sqlite+aiosqlite"),
            ("[hysteresis]\nclear_evals = 2\n", "clear_evals (2) must be greater"),
            ("[thresholds\n", "not valid TOML"),
        ],
    )
    def test_message_names_the_field(self, tmp_path: Path, text: str, expected: str):
        """Invalid input raises ConfigError whose lines name the field and what is allowed."""
        with pytest.raises(ConfigError) as err:
            load_settings(_write(tmp_path, text))
        assert expected in err.value.render()

    def test_every_problem_is_reported(self, tmp_path: Path):
        """All invalid fields are reported at once, not only the first."""
        p = _write(tmp_path, "[probes]\ninterval_s = 0\ntimeout_s = -1\n[window]\nspan_s = 0\n")
        with pytest.raises(ConfigError) as err:
            load_settings(p)
        assert len(err.value.problems) == 3

    def test_check_config_cli(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """check-config exits 2 and prints each problem, with no traceback."""
        p = _write(tmp_path, "[probes]\ninterval_s = -1\n")
        assert main(["check-config", str(p)]) == 2
        err = capsys.readouterr().err
        assert "probes.interval_s" in err and "Traceback" not in err
        assert main(["check-config", str(ROOT / "config" / "watch.toml")]) == 0

    def test_run_refuses_invalid_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """run refuses to start on invalid config with the same message as check-config."""
        p = _write(tmp_path, '[[apps]]\nname = "a"\nhealth_url = "nope"\n')
        assert main(["run", "--config", str(p)]) == 2
        assert "apps[0].health_url" in capsys.readouterr().err

    def test_run_needs_an_app(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """run without any app explains what to add."""
        assert main(["run", "--config", str(_write(tmp_path, ""))]) == 2
        assert "[[apps]]" in capsys.readouterr().err

    def test_missing_file(self, capsys: pytest.CaptureFixture[str]):
        """A missing file is named."""
        assert main(["check-config", "/nonexistent/watch.toml"]) == 2
        assert "/nonexistent/watch.toml: no such file" in capsys.readouterr().err


CHANNELS_TOML = """
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "https://hooks.example/T0PSECRET"
hmac_secret = "HMAC-key"

[[notify.channels]]
name = "chat"
kind = "slack"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
min_severity = "SEV-2"

[[notify.channels]]
name = "oncall"
kind = "pagerduty"
routing_key = "R0UTING"

[[notify.channels]]
name = "am"
kind = "alertmanager"
url = "http://hotdash:pw@alertmanager:9093"
timeout_s = 3
"""


def _channel(body: str) -> str:
    return '[[notify.channels]]\nname = "x"\n' + body


class TestChannels:
    def test_each_kind_loads_as_its_model(self, tmp_path: Path):
        """A channel table becomes its kind's model, with the same values as written."""
        chans = load_settings(_write(tmp_path, CHANNELS_TOML)).notify.channels
        assert [type(c) for c in chans] == [WebhookChannel, SlackChannel, PagerDutyChannel,
                                            AlertmanagerChannel]
        hook, chat, oncall, am = chans
        assert hook.hmac_secret is not None and hook.hmac_secret.get_secret_value() == "HMAC-key"
        assert (chat.min_severity, chat.timeout_s) == ("SEV-2", 10.0)
        assert oncall.routing_key.get_secret_value() == "R0UTING" and oncall.url is None
        assert am.url.get_secret_value() == "http://hotdash:pw@alertmanager:9093"
        assert am.timeout_s == 3

    def test_environment_list_loads_the_same(self, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
        """HOTDASH_WATCH_NOTIFY__CHANNELS (the whole list as JSON) gives the same channels as
        the file."""
        from_file = load_settings(_write(tmp_path, CHANNELS_TOML)).notify.channels
        monkeypatch.setenv("HOTDASH_WATCH_NOTIFY__CHANNELS", json.dumps([
            {"name": "hook", "kind": "webhook", "url": "https://hooks.example/T0PSECRET",
             "hmac_secret": "HMAC-key"},
            {"name": "chat", "kind": "slack", "min_severity": "SEV-2",
             "url": "https://hooks.slack.com/services/T000/B000/XXXX"},
            {"name": "oncall", "kind": "pagerduty", "routing_key": "R0UTING"},
            {"name": "am", "kind": "alertmanager", "url": "http://hotdash:pw@alertmanager:9093",
             "timeout_s": 3},
        ]))
        assert load_settings(None).notify.channels == from_file

    @pytest.mark.parametrize(("body", "expected"), [
        ('kind = "email"\nurl = "https://h/x"\n',
         "notify.channels[0].kind: Input should be 'webhook', 'slack', 'pagerduty' or "
         "'alertmanager' (got 'email')"),
        ('url = "https://h/x"\n',
         "notify.channels[0].kind: Field required (one of 'webhook', 'slack', 'pagerduty' or "
         "'alertmanager')"),
        ('kind = "slack"\n', "notify.channels[0].url: Field required (a slack channel needs url)"),
        ('kind = "pagerduty"\n',
         "notify.channels[0].routing_key: Field required (a pagerduty channel needs "
         "routing_key)"),
        ('kind = "slack"\nurl = "https://h/x"\ncolour = "red"\n',
         "notify.channels[0].colour: unknown key for a slack channel; allowed here: kind, "
         "min_severity, name, timeout_s, url"),
        ('kind = "slack"\nurl = "https://h/x"\nrouting_key = "k"\n',
         "notify.channels[0].routing_key: unknown key for a slack channel (a pagerduty channel "
         "takes it); allowed here: kind, min_severity, name, timeout_s, url"),
        ('kind = "webhook"\nurl = "https://h/x"\ntimeout_s = -1\n',
         "notify.channels[0].timeout_s: Input should be greater than 0 (got -1)"),
    ])
    def test_message_names_the_field_and_what_is_valid(self, tmp_path: Path, body: str,
                                                        expected: str):
        """A bad channel table gets one line naming the field (never the kind's tag as if
        it were a key), its kind, and what is allowed."""
        with pytest.raises(ConfigError) as err:
            load_settings(_write(tmp_path, _channel(body)))
        assert err.value.problems == [expected]

    def test_not_a_table(self, tmp_path: Path):
        """A channel written as a plain value says a table with a kind is needed."""
        with pytest.raises(ConfigError) as err:
            load_settings(_write(tmp_path, 'notify.channels = ["slack"]\n'))
        assert err.value.problems == [
            "notify.channels[0]: Input should be a table, one channel with kind = 'webhook', "
            "'slack', 'pagerduty' or 'alertmanager' (got 'slack')"]

    def test_bad_url_is_not_shown(self, tmp_path: Path):
        """An unusable channel URL is refused without printing it (it is a credential)."""
        body = 'kind = "slack"\nurl = "hooks.slack.com/services/T0/B0/S3CRET-PATH"\n'
        with pytest.raises(ConfigError) as err:
            load_settings(_write(tmp_path, _channel(body)))
        assert err.value.problems == [
            "notify.channels[0].url: must be an http:// or https:// URL with a host (the value "
            "is not shown: it is a secret)"]
        assert "S3CRET" not in err.value.render()

    def test_every_channel_problem_is_reported(self, tmp_path: Path):
        """Problems of several channels come together, each under its own index."""
        text = _channel('kind = "slack"\n') + _channel('kind = "pager"\n').replace(
            'name = "x"', 'name = "y"')
        with pytest.raises(ConfigError) as err:
            load_settings(_write(tmp_path, text))
        assert [p.split(":")[0] for p in err.value.problems] == [
            "notify.channels[0].url", "notify.channels[1].kind"]
