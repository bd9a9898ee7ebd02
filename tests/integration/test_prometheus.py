"""A real Prometheus scrapes the daemon: the target is up, what Prometheus stored is exactly what
the daemon's registry holds, the shipped alert rules and dashboard queries evaluate on it;
promtool finds nothing to say about the exposition."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

from hotdash_watch.clock import ManualClock
from hotdash_watch.daemon import Daemon
from hotdash_watch.metrics import ACTION_OUTCOMES, ACTIONS
from hotdash_watch.model.severity import Severity
from tests.deploy.promql import DASHBOARD, dashboard_queries
from tests.support.factories import settings
from tests.support.harness import running, tick
from tests.support.prometheus import JOB, Prometheus, promtool, running_prometheus
from tests.support.services import free_port
from tests.support.target import LocalService

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@asynccontextmanager
async def daemon(url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Daemon]:
    # Nothing listens on the channel's port: the pages stay in the outbox, so the outbox and
    # paging series have values other than zero.
    dead = f"http://127.0.0.1:{free_port()}/hook"
    s = settings(apps=[{"name": "svc", "health_url": url}],
                 store_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
                 server={"host": "127.0.0.1", "port": 0},
                 probes={"timeout_s": 2, "reprobe_on_failure": False},
                 notify={"channels": [{"name": "oncall", "kind": "webhook", "url": dead}],
                         "journal_path": str(tmp_path / "feedback" / "reliability.md"),
                         "artifacts_dir": str(tmp_path / "artifacts")})
    async with running(s, clock) as d:
        yield d


async def settle(d: Daemon) -> None:
    """Let background work finish so the registry stops changing (the clock stands still)."""
    assert d.responder is not None and d.outbox is not None
    await d.responder.drain(10)
    await d.outbox.deliver_due()
    await d.outbox.wait_idle()


def registry_series(registry: CollectorRegistry) -> dict[SeriesKey, float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in registry.collect() for s in family.samples}


async def stored_series(prom: Prometheus) -> dict[SeriesKey, float]:
    """Every hotdash_watch_* series Prometheus holds now, without the labels it adds."""
    out = {}
    for row in await prom.query('{__name__=~"hotdash_watch_.+"}'):
        labels = dict(row["metric"])
        name = labels.pop("__name__")
        assert labels.pop("job") == JOB
        labels.pop("instance")
        out[(name, frozenset(labels.items()))] = float(row["value"][1])
    return out


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def value(series: dict[SeriesKey, float], name: str, **labels: str) -> float:
    return series[(name, frozenset(labels.items()))]


class TestPrometheusScrape:
    async def test_prometheus_stores_what_the_daemon_reports(
        self, service: LocalService, tmp_path: Path, clock: ManualClock
    ):
        """After an outage has opened a SEV-1 whose pages cannot be delivered, a real Prometheus
        scraping /metrics every second has the target up, and holds every hotdash_watch_*
        series with exactly the value in the daemon's registry; deploy/prometheus/alerts.yml
        evaluates without error and fires HotdashSev1Open for the app; every query of the
        Grafana dashboard runs, and its severity panel shows SEV-1."""
        async with daemon(service.url, tmp_path, clock) as d:
            await tick(d, clock, 4, deliver=True)
            service.error_ratio = 1.0
            for _ in range(20):
                await tick(d, clock, deliver=True)
                inc = d.pipeline.apps["svc"].incident
                if inc is not None and inc.severity is Severity.SEV1:
                    break
            assert inc is not None and inc.severity is Severity.SEV1
            await settle(d)
            expected = registry_series(d.metrics.registry)

            async with running_prometheus(tmp_path / "prom", [f"127.0.0.1:{d.port}"],
                                          rule_files=[ALERTS]) as prom:
                async def target_up():
                    found = [t for t in await prom.targets()
                             if t["labels"]["job"] == JOB and t["health"] == "up"]
                    return found or None

                [target] = await prom.wait_until(target_up, "the daemon's target up")
                assert target["scrapeUrl"] == f"{d.url}/metrics"
                assert target["lastError"] == ""
                [up] = await prom.query(f'up{{job="{JOB}"}}')
                assert up["value"][1] == "1"
                [scraped] = await prom.query(f'scrape_samples_scraped{{job="{JOB}"}}')
                assert int(scraped["value"][1]) == len(expected)

                stored = await stored_series(prom)

                # The shipped alert rules evaluate without error on the live series, and the
                # open SEV-1 fires HotdashSev1Open for the app.
                async def evaluated():
                    rules = [r for g in (await prom.api("rules"))["groups"] for r in g["rules"]]
                    return rules if all(r["health"] != "unknown" for r in rules) else None

                rules = await prom.wait_until(evaluated, "every rule evaluated")
                assert {r["name"]: r["health"] for r in rules} == {
                    r["name"]: "ok" for r in rules}, [r.get("lastError") for r in rules]

                async def sev1_firing():
                    return [a for a in (await prom.api("alerts"))["alerts"]
                            if a["labels"]["alertname"] == "HotdashSev1Open"
                            and a["state"] == "firing"] or None

                [alert] = await prom.wait_until(sev1_firing, "HotdashSev1Open firing")
                assert alert["labels"]["target_app"] == "svc"
                assert alert["annotations"]["summary"] == "SEV-1 open on svc"

                # Every query of the Grafana dashboard runs here; the severity panel says SEV-1.
                dashboard = json.loads(DASHBOARD.read_text())
                answers = {where: await prom.query(expr)
                           for where, expr in dashboard_queries(dashboard)}
                [severity] = answers["Current severity per app [A]"]
                assert (severity["metric"], severity["value"][1]) == ({"target_app": "svc"}, "3")
                [open_now] = answers["Open incidents [A]"]
                assert open_now["value"][1] == "1"

            # Nothing moved while Prometheus scraped: the comparison is against a fixed state.
            assert registry_series(d.metrics.registry) == expected

        assert stored.keys() == expected.keys()
        differ = {k: (stored[k], expected[k]) for k in expected if not same(stored[k],
                                                                             expected[k])}
        assert differ == {}

        # The key series, by name, with the values the incident implies.
        assert value(stored, "hotdash_watch_incident_open", target_app="svc") == 1
        assert value(stored, "hotdash_watch_incident_severity",
                     target_app="svc", severity="SEV-1") == 1
        assert value(stored, "hotdash_watch_incident_severity",
                     target_app="svc", severity="SEV-3") == 0
        probe_ok = value(stored, "hotdash_watch_probe_results_total",
                         target_app="svc", probe="health", result="ok")
        assert probe_ok == 4  # the four healthy passes before the outage
        assert value(stored, "hotdash_watch_probe_results_total",
                     target_app="svc", probe="health", result="http_5xx") > 0
        actions = {dict(labels)["action"] + "/" + dict(labels)["outcome"]
                   for name, labels in stored if name == "hotdash_watch_actions_total"}
        assert actions == {f"{a}/{o}" for a in ACTIONS for o in ACTION_OUTCOMES}
        assert value(stored, "hotdash_watch_outbox_depth") > 0
        assert value(stored, "hotdash_watch_pages_total", channel="oncall", outcome="retry") > 0

    async def test_promtool_check_metrics_finds_nothing(
        self, service: LocalService, tmp_path: Path, clock: ManualClock
    ):
        """``promtool check metrics`` on the live exposition (with an incident and paging
        series in it) reports no error and no lint problem."""
        async with daemon(service.url, tmp_path, clock) as d:
            service.error_ratio = 1.0
            await tick(d, clock, 6, deliver=True)
            await settle(d)
            async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as r:
                assert r.status == 200
                exposition = await r.read()
        assert b"hotdash_watch_incident_open" in exposition
        done = promtool("check", "metrics", stdin=exposition)
        assert (done.returncode, done.stdout + done.stderr) == (0, "")
