"""Probes for every configured app, wired into a pipeline (``build``)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import aiohttp

from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient
from hotdash_watch.metrics import Metrics
from hotdash_watch.pipeline.evaluate import Pipeline
from hotdash_watch.pipeline.intake import FlyProbe
from hotdash_watch.pipeline.ports import IncidentStore
from hotdash_watch.probes.base import Probe
from hotdash_watch.probes.http import HttpProbe
from hotdash_watch.probes.logs import LogsProbe
from hotdash_watch.probes.machines import MachinesProbe
from hotdash_watch.probes.prometheus import QueryTraffic, ScrapeTraffic
from hotdash_watch.probes.releases import ReleasesProbe

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = ["build"]


def build(
    settings: Settings,
    clock: Clock,
    store: IncidentStore,
    metrics: Metrics,
    session: aiohttp.ClientSession,
    rng: random.Random | None = None,
) -> Pipeline:
    """Wire probes for every configured app into a pipeline. ``rng`` draws the Fly client's
    retry jitter (simulation passes a seeded one, so that a run can be repeated exactly). The
    daemon adds the responder and the mitigation stage, which live downstream of it."""
    fly = settings.fly
    fly_probes: list[FlyProbe] = []
    client: FlyClient | None = None
    if fly.enabled:
        assert fly.api_token is not None
        client = FlyClient(session, clock, token=fly.api_token, machines_url=fly.machines_url,
                           api_url=fly.api_url,
                           prometheus_url=fly.metrics_url if fly.metrics == "prometheus"
                           else None, timeout_s=fly.timeout_s, rng=rng)
        for app in settings.apps:
            fly_probes += [
                MachinesProbe(app.name, client, clock, span_s=settings.thresholds.oom_window_s,
                              check_grace_s=fly.check_grace_s,
                              keep_s=settings.mitigation.budget_window_s),
                LogsProbe(app.name, client, clock),
                ReleasesProbe(app.name, client, clock),
            ]
            if fly.metrics == "prometheus":
                fly_probes.append(QueryTraffic(app.name, client, clock,
                                               over_s=settings.window.eval_s))
    if fly.metrics == "scrape" and fly.metrics_url:
        fly_probes.append(ScrapeTraffic(fly.metrics_url, [a.name for a in settings.apps],
                                        session, clock, timeout_s=fly.timeout_s))
    probes: list[Probe] = []
    for app in settings.apps:
        budget = settings.budget_for(app)
        common: dict[str, Any] = {"session": session, "clock": clock,
                                  "timeout_s": settings.timeout_for(app)}
        probes.append(HttpProbe(app.name, "health", app.health_url,
                                expect_status=tuple(app.expect_status),
                                expect_body=app.expect_body, latency_budget_ms=budget, **common))
        if app.synthetic_url:
            probes.append(HttpProbe(app.name, "synthetic", app.synthetic_url,
                                    latency_budget_ms=budget, **common))
    pipeline = Pipeline(settings, clock, store, metrics, probes, fly_probes)
    pipeline.fly_client = client
    return pipeline
