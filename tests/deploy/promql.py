"""What the daemon exports, and which metric names a PromQL expression reads: the shipped rules
and dashboard must only use series that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hotdash_watch.metrics import Metrics
from hotdash_watch.notify.outbox import NotifyMetrics

__all__ = ["DASHBOARD", "PROMETHEUS_SERIES", "dashboard_panels", "dashboard_queries", "exported",
           "metric_names", "substitute"]

PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
"""Series Prometheus makes itself for every target."""

_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
             "histogram": ("_bucket", "_count", "_sum", "_created"),
             "summary": ("", "_count", "_sum", "_created")}


def exported() -> dict[str, frozenset[str]]:
    """Every series name the daemon can expose, with its label names: the collectors made the
    way the daemon makes them (``Metrics`` and the outbox's ``NotifyMetrics`` on one registry),
    read from their descriptions, so a family with no sample yet counts too."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    NotifyMetrics.for_registry(registry)
    out: dict[str, frozenset[str]] = {}
    for collector in _collectors(metrics) + _collectors(NotifyMetrics.for_registry(registry)):
        for family in collector.describe():
            labels = frozenset(getattr(collector, "_labelnames", ()))
            for suffix in _SUFFIXES[family.type]:
                name = family.name + suffix
                out[name] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def _collectors(holder: object) -> list:
    from prometheus_client.metrics import MetricWrapperBase

    return [v for v in vars(holder).values() if isinstance(v, MetricWrapperBase)]


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects: bare identifiers that are not functions, aggregation
    keywords, label names (inside {} or by/without/on/ignoring (...)) or strings."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        word = m.group()
        if word.lower() in _KEYWORDS or s[m.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


# --- the Grafana dashboard ------------------------------------------------------------------------

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hotdash-watch.json"

GRAFANA_VARIABLES = {"$target_app": ".+", "${target_app}": ".+", "$__rate_interval": "1m",
                     "$__range": "6h", "$__interval": "1m"}
"""Template variables, replaced as Grafana would (All = the variable's allValue)."""


def substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL with the template variables substituted) of every panel target and
    annotation query."""
    out = []
    for panel in dashboard_panels(dashboard):
        for t in panel.get("targets", []):
            out.append((f"{panel['title']} [{t['refId']}]", substitute(t["expr"])))
    for a in dashboard["annotations"]["list"]:
        if "expr" in a:
            out.append((f"annotation {a['name']}", substitute(a["expr"])))
    return out
