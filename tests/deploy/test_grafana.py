"""deploy/grafana/hotdash-watch.json: it loads, every panel has a title and queries, every query
reads only series (and labels) the daemon exports, and promtool parses every query once the
template variables are replaced."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.promql import (
    DASHBOARD,
    PROMETHEUS_SERIES,
    dashboard_panels,
    dashboard_queries,
    exported,
    metric_names,
)
from tests.support.prometheus import promtool

DS_REF = "${DS_PROMETHEUS}"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = dashboard_panels(dashboard)
    assert len(found) >= 10
    return found


@pytest.fixture(scope="module")
def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = dashboard_queries(dashboard)
    assert len(found) >= 10
    return found


def test_dashboard_header(dashboard: dict[str, Any]):
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    app = variables["target_app"]
    assert app["type"] == "query" and app["datasource"]["uid"] == DS_REF
    m = re.fullmatch(r"label_values\((\w+),\s*target_app\)", app["query"]["query"])
    assert m, app["query"]
    assert "target_app" in exported()[m.group(1)]
    assert app["includeAll"] and app["multi"] and app["allValue"] == ".+"


def test_every_panel_has_a_title_and_queries(panels: list[dict[str, Any]]):
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in panels:
        assert p.get("title"), p
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == DS_REF, p["title"]
        assert p.get("targets"), f"{p['title']}: no target"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t["datasource"]["uid"] == DS_REF, p["title"]


def test_panels_do_not_overlap(panels: list[dict[str, Any]]):
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_the_asked_for_views_are_there(queries: list[tuple[str, str]]):
    text = "\n".join(q for _, q in queries)
    for needle in ("hotdash_watch_incident_severity", "hotdash_watch_incident_open",
                   "histogram_quantile(0.95, sum by (target_app, le) (rate("
                   "hotdash_watch_probe_duration_seconds_bucket",
                   "hotdash_watch_window_error_ratio", "hotdash_watch_window_latency_p95_seconds",
                   "by (target_app, condition) (hotdash_watch_machines",
                   "by (target_app, action, outcome) (increase(hotdash_watch_actions_total",
                   "by (channel, outcome) (increase(hotdash_watch_pages_total",
                   "hotdash_watch_outbox_depth"):
        assert needle in text, needle


def test_queries_read_only_exported_series_and_labels(queries: list[tuple[str, str]]):
    series = exported()
    known = set(series) | PROMETHEUS_SERIES
    for where, expr in queries:
        used = metric_names(expr)
        assert used, f"{where}: no metric in {expr!r}"
        assert used <= known, f"{where}: unknown series {sorted(used - known)}"
        labels = set().union(*(series.get(n, frozenset()) for n in used))
        for name, matchers in re.findall(r"(\w+)\{([^}]*)\}", expr):
            keys = set(re.findall(r"(\w+)\s*[=!]~?", matchers))
            assert keys <= series.get(name, frozenset()), \
                f"{where}: {name} has no label {sorted(keys - series.get(name, frozenset()))}"
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            keys = {k.strip() for k in grouping.split(",") if k.strip()}
            assert keys <= labels, f"{where}: no label {sorted(keys - labels)}"


def test_legends_name_labels_the_query_keeps(panels: list[dict[str, Any]]):
    series = exported()
    for p in panels:
        for t in p.get("targets", []):
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            groupings = re.findall(r"\bby\s*\(([^)]*)\)", t["expr"])
            if groupings:
                # the outermost aggregation decides: the first `by` in the text
                kept = {k.strip() for k in groupings[0].split(",")}
            else:
                kept = set().union(*(series.get(n, frozenset())
                                     for n in metric_names(t["expr"])))
            assert legend <= kept, f"{p['title']}: legend uses {sorted(legend - kept)}"


def test_promtool_parses_every_query(queries: list[tuple[str, str]], tmp_path: Path):
    """Each query becomes a recording rule; promtool check rules parses them all."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (where, expr) in enumerate(queries):
        assert "$" not in expr, f"{where}: a template variable is left in {expr!r}"
        lines += [f"      - record: dashboard:query_{i}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    done = promtool("check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout
