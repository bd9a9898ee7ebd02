"""A real Alertmanager sends its webhook to the daemon's /hooks/alertmanager with a bearer
token: an alert "data corruption detected" (severity critical) opens a SEV-1, and its
resolution withdraws the signal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from hotdash_watch.clock import ManualClock, SystemClock
from hotdash_watch.daemon import Daemon
from hotdash_watch.model.severity import Severity
from tests.support.alertmanager import running_alertmanager
from tests.support.factories import settings
from tests.support.target import LocalService

TOKEN = "hooks-tok-2b9e61f0"
DELIVERY_S = 15.0  # group_wait and group_interval are 1 s; this is the outer bound

# The receiver an operator configures (README, "Alertmanager -> /hooks/alertmanager").
CONFIG = """
route:
  receiver: hotdash-watch
  group_by: [alertname, target_app]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 5m
receivers:
  - name: hotdash-watch
    webhook_configs:
      - url: {url}/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: {token}
"""


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (real time: Alertmanager is a real process) until ``condition`` holds."""
    for _ in range(int(DELIVERY_S / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"Alertmanager did not deliver within {DELIVERY_S} s: {what}")


async def post_alert(am: str, ends_at: str | None = None) -> None:
    alert: dict[str, Any] = {
        "labels": {"alertname": "DataCorruptionDetected", "target_app": "svc",
                   "severity": "critical"},
        "annotations": {"summary": "data corruption detected"},
        "generatorURL": "http://prometheus.example/graph"}
    if ends_at is not None:
        alert["endsAt"] = ends_at
    async with aiohttp.ClientSession() as http, \
            http.post(f"{am}/api/v2/alerts", json=[alert]) as r:
        assert r.status == 200, await r.text()


class TestAlertmanagerWebhook:
    async def test_data_corruption_alert_opens_a_sev1(self, service: LocalService,
                                                      tmp_path: Path,
                                                      log_events: list[dict[str, Any]]):
        """Alertmanager delivers the firing alert with the token; after the SEV-1 hold the
        incident is open at SEV-1 with the alert as its reason; the resolved alert clears it."""
        clock = ManualClock(SystemClock().now())
        s = settings(apps=[{"name": "svc", "health_url": service.url}],
                     store_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
                     server={"host": "127.0.0.1", "port": 0, "hooks_token": TOKEN},
                     probes={"timeout_s": 2, "reprobe_on_failure": False})
        async with Daemon(s, clock, CollectorRegistry(), schedule=False) as d:
            assert d.pipeline is not None
            app = d.pipeline.apps["svc"]
            config = CONFIG.format(url=d.url, token=TOKEN)
            async with running_alertmanager(tmp_path / "am", config) as am:
                await post_alert(am)
                await until(lambda: bool(app.signals), "firing alert")

                for _ in range(2):  # raise_evals_sev1
                    for probe in d.pipeline.probes:
                        await d.pipeline.intake.run_probe(probe)
                    clock.advance(5)
                    await d.pipeline.evaluate()
                assert app.incident is not None and app.incident.severity is Severity.SEV1
                stored = await d.store.get_incident(app.incident.id)
                assert any("DataCorruptionDetected: data corruption detected" in r
                           for r in stored.timeline[0].reasons)

                ended = (SystemClock().now() - timedelta(seconds=1)).isoformat()
                await post_alert(am, ends_at=ended)
                await until(lambda: not app.signals, "resolved alert")

        hooks = [e for e in log_events if e["event"] == "alertmanager_hook"]
        assert hooks[0]["receiver"] == "hotdash-watch" and hooks[0]["accepted"] == 1
        assert any(e["resolved"] == 1 for e in hooks)
        assert not [e for e in log_events if e["event"] == "request_unauthorized"]
