"""People in the loop, end to end: a real Alertmanager receives the pages, the journal, the
diagnostics and the report are written, all on a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from hotdash_watch.cli import main
from hotdash_watch.clock import ManualClock, SystemClock
from hotdash_watch.daemon import Daemon
from hotdash_watch.model.incident import State
from hotdash_watch.records.report import parse_report
from tests.support.alertmanager import running_alertmanager
from tests.support.factories import settings
from tests.support.harness import running, tick
from tests.support.target import LocalService


@asynccontextmanager
async def daemon(url: str, tmp_path: Path, clock: ManualClock,
                 channels: list[dict[str, object]], **extra: object) -> AsyncIterator[Daemon]:
    s = settings(**extra, apps=[{"name": "svc", "health_url": url}],
                 store_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
                 server={"host": "127.0.0.1", "port": 0},
                 probes={"timeout_s": 2, "reprobe_on_failure": False},
                 notify={"channels": channels,
                         "journal_path": str(tmp_path / "feedback" / "reliability.md"),
                         "artifacts_dir": str(tmp_path / "artifacts" / "reliability")})
    async with running(s, clock) as d:
        yield d


async def _alerts(http: aiohttp.ClientSession, am: str) -> list[dict[str, object]]:
    async with http.get(f"{am}/api/v2/alerts", params={"active": "true"}) as r:
        return [a for a in await r.json()
                if a["labels"].get("alertname") == "HotdashIncident"]


class TestAlertmanager:
    async def test_alert_fires_and_resolves(self, service: LocalService, tmp_path: Path):
        """The incident's page arrives in a real Alertmanager as a firing alert labelled with
        the app and severity, and the resolution page ends it there."""
        # Alertmanager judges startsAt/endsAt by its own (real) time, so this test keeps the
        # manual clock just behind it, as a watcher's clock would be beside Alertmanager's: it
        # starts a minute before the real now and the runbook's timers are shrunk to seconds.
        clock = ManualClock(SystemClock().now() - timedelta(seconds=60))
        quick = {"window": {"bucket_s": 0.5, "span_s": 60, "eval_s": 5},
                 "hysteresis": {"raise_evals_sev1": 1, "raise_evals_sev2": 1,
                                "raise_evals_sev3": 1, "clear_evals": 2},
                 "timers": {"stabilization_s": 2, "good_checks_required": 2,
                            "evaluation_interval_s": 0.5},
                 "thresholds": {"min_samples": 2}}
        async with running_alertmanager(tmp_path / "am") as am, \
                daemon(service.url, tmp_path, clock,
                       [{"name": "am", "kind": "alertmanager", "url": am}], **quick) as d, \
                aiohttp.ClientSession() as http:
            await tick(d, clock, 4, step=0.5, deliver=True)
            service.error_ratio = 1.0
            await tick(d, clock, 4, step=0.5, deliver=True)
            inc = d.pipeline.apps["svc"].incident
            assert inc is not None
            firing = [a for a in await _alerts(http, am)
                      if a["labels"]["severity"] == inc.severity.value]
            assert [a["labels"]["incident_id"] for a in firing] == [inc.id]
            assert firing[0]["labels"]["target_app"] == "svc"
            assert "Agent SDK" in firing[0]["annotations"]["summary"]

            service.error_ratio = 0.0
            for _ in range(200):
                if d.pipeline.apps["svc"].incident is None:
                    break
                await tick(d, clock, step=0.5, deliver=True)
            assert d.pipeline.apps["svc"].incident is None
            # endsAt is the resolution time on our clock, a little ahead of Alertmanager's.
            assert await _alerts(http, am) == []


class TestRecords:
    async def test_journal_diagnostics_and_report(self, service: LocalService, tmp_path: Path,
                                                  clock: ManualClock,
                                                  capsys: pytest.CaptureFixture[str]):
        """An incident leaves the runbook's journal lines, a diagnostics folder named after it,
        and a report whose timeline matches the store."""
        async with daemon(service.url, tmp_path, clock, []) as d:
            await tick(d, clock, 3, deliver=True)
            service.error_ratio = 1.0
            await tick(d, clock, 8, deliver=True)
            inc_id = d.pipeline.apps["svc"].incident.id
            service.error_ratio = 0.0
            # Clearing (12 passes out of the span, 12 more absent) and the 600-s stabilization.
            for _ in range(26 + 121):
                await tick(d, clock, deliver=True)
                if d.pipeline.apps["svc"].incident is None:
                    break
            assert d.pipeline.apps["svc"].incident is None, "not resolved within 147 passes"
            await d.responder.drain(10)
            stored = await d.store.get_incident(inc_id)
        assert stored.state is State.RESOLVED
        journal = (tmp_path / "feedback" / "reliability.md").read_text()
        assert "SEV-" in journal and "INCIDENT RESOLVED" in journal and "Root Cause:" in journal
        folder = tmp_path / "artifacts" / "reliability" / ("incident-" + inc_id[4:])
        assert (folder / "machines.txt").exists()
        report = parse_report((folder / "report.md").read_text())
        assert report["incident_id"] == inc_id
        assert len(report["timeline"]) >= len(stored.timeline)

        config = tmp_path / "watch.toml"
        config.write_text(f'store_url = "sqlite+aiosqlite:///{tmp_path / "w.db"}"\n')
        assert await asyncio.to_thread(main, ["report", inc_id, "--config", str(config)]) == 0
        printed = capsys.readouterr().out
        assert parse_report(printed)["incident_id"] == inc_id
        assert await asyncio.to_thread(main, ["report", "INC-nope", "--config",
                                              str(config)]) == 1
        assert await asyncio.to_thread(main, ["incidents", "--config", str(config)]) == 0
        listed = capsys.readouterr().out
        assert inc_id in listed and "Resolved" in listed
        assert await asyncio.to_thread(main, ["incidents", inc_id, "--config", str(config)]) == 0
        assert "opened" in capsys.readouterr().out
