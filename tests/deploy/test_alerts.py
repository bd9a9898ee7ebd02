"""deploy/prometheus: promtool checks the rules and the example configuration and runs the rules'
unit tests; every alert is tested firing and not firing, and reads only series the daemon
exports."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.promql import PROMETHEUS_SERIES, exported, metric_names
from tests.support.prometheus import promtool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = DEPLOY / "alerts.yml"
ALERTS_TEST = DEPLOY / "alerts_test.yml"
SEVERITIES = {"critical", "warning", "info"}


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    block: str  # the rule's text in alerts.yml

    def label(self, key: str) -> str | None:
        m = re.search(rf"^\s+{key}: (\S+)$", self.block, re.M)
        return m.group(1) if m else None

    def annotation(self, key: str) -> str | None:
        m = re.search(rf"^(\s+){key}: (>-\n(?:\1\s+.*\n?)+|.*)$", self.block, re.M)
        return " ".join(m.group(2).removeprefix(">-").split()) if m else None


def read_alerts(text: str) -> list[Alert]:
    """The rules of alerts.yml (its layout: one `- alert:` block each, `expr:` on one line)."""
    out = []
    for block in re.split(r"^\s+- alert: ", text, flags=re.M)[1:]:
        name = block.split("\n", 1)[0].strip()
        m = re.search(r"^\s+expr: (.+)$", block, re.M)
        assert m, f"{name}: no one-line expr"
        out.append(Alert(name, m.group(1).strip(), block))
    return out


@pytest.fixture(scope="module")
def alerts() -> list[Alert]:
    found = read_alerts(ALERTS.read_text())
    assert len(found) >= 10
    return found


def test_promtool_check_rules():
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_check_example_config():
    done = promtool("check", "config", "prometheus.yml", cwd=DEPLOY)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_unit_tests_pass():
    done = promtool("test", "rules", ALERTS_TEST.name, cwd=DEPLOY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_not_firing(alerts: list[Alert]):
    """In alerts_test.yml each alert has a case expecting it and a case expecting nothing."""
    cases: dict[str, set[str]] = {}
    lines = ALERTS_TEST.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s+alertname: (\S+)", line)
        if not m:
            continue
        following = next(x for x in lines[i + 1:] if "exp_alerts:" in x)
        kind = "silent" if following.split("#")[0].strip().endswith("[]") else "firing"
        cases.setdefault(m.group(1), set()).add(kind)
    for alert in alerts:
        assert cases.get(alert.name) == {"firing", "silent"}, \
            f"{alert.name}: tested {sorted(cases.get(alert.name, ()))}"
    assert set(cases) <= {a.name for a in alerts}, "tests for alerts that do not exist"


def test_each_firing_case_depends_on_its_rule(alerts: list[Alert], tmp_path: Path):
    """Replace one rule's expression by one that never fires: the unit tests must fail."""
    text = ALERTS.read_text()
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    for alert in alerts:
        muted = text.replace(f"expr: {alert.expr}\n", "expr: vector(1) > 2\n", 1)
        assert muted != text
        (tmp_path / ALERTS.name).write_text(muted)
        done = promtool("test", "rules", ALERTS_TEST.name, cwd=tmp_path)
        assert done.returncode != 0, f"{alert.name}: the tests pass without the rule"
        assert f"alertname: {alert.name}," in done.stdout + done.stderr


def test_rules_read_only_exported_series(alerts: list[Alert]):
    names = set(exported()) | PROMETHEUS_SERIES
    for alert in alerts:
        used = metric_names(alert.expr)
        assert used, f"{alert.name}: no metric in {alert.expr!r}"
        assert used <= names, f"{alert.name}: unknown series {sorted(used - names)}"


def test_labels_and_annotations(alerts: list[Alert]):
    """A severity label on each; summary and description; the app named when the series has
    one (target_app), the channel when it is about one channel."""
    series = exported()
    for alert in alerts:
        assert alert.label("severity") in SEVERITIES, alert.name
        summary, description = alert.annotation("summary"), alert.annotation("description")
        assert summary and description, alert.name
        labels = set().union(*(series.get(n, frozenset()) for n in metric_names(alert.expr)))
        for label in ("target_app", "channel"):
            kept = (label in labels and " by (" not in alert.expr
                    and f"without ({label})" not in alert.expr)
            if kept:
                assert f"$labels.{label}" in summary, f"{alert.name}: summary lacks {label}"


def test_the_expected_alerts_are_there(alerts: list[Alert]):
    by_name = {a.name: a for a in alerts}
    expr = {name: a.expr for name, a in by_name.items()}
    assert 'up{job="hotdash-watch"} == 0' in expr.values()
    assert any(e.startswith("absent(up{") for e in expr.values())
    assert any("time() - hotdash_watch_scheduler_last_tick_timestamp_seconds" in e
               for e in expr.values())
    for metric in ("hotdash_watch_outbox_depth", "hotdash_watch_outbox_oldest_age_seconds",
                   "hotdash_watch_paging_broken_seconds"):
        assert any(metric in e for e in expr.values()), metric
    assert any('outcome="failed"' in e and "hotdash_watch_actions_total" in e
               for e in expr.values())
    assert any('outcome="vetoed"' in e for e in expr.values())
    assert 'hotdash_watch_incident_severity{severity="SEV-1"} == 1' in expr.values()
