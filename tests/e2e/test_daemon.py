"""End to end: the daemon probes a real local service, opens, verifies and resolves incidents,
and survives a restart mid-incident on both store backends. Time is a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from hotdash_watch.clock import ManualClock
from hotdash_watch.daemon import Daemon
from hotdash_watch.model.incident import Event, State
from hotdash_watch.model.severity import Severity
from tests.support.factories import settings
from tests.support.harness import running, tick
from tests.support.target import LocalService


@asynccontextmanager
async def daemon(url: str, store_url: str, clock: ManualClock) -> AsyncIterator[Daemon]:
    s = settings(apps=[{"name": "svc", "health_url": url}], store_url=store_url,
                 server={"host": "127.0.0.1", "port": 0},
                 probes={"timeout_s": 2, "reprobe_on_failure": False})
    async with running(s, clock) as d:
        yield d


def incident(d: Daemon):
    assert d.pipeline is not None
    return d.pipeline.apps["svc"].incident


class TestIncidentLifecycle:
    async def test_outage_opens_escalates_verifies_and_resolves(
        self, service: LocalService, store_url: str, clock: ManualClock
    ):
        """A service failing every request opens an incident that escalates to SEV-1, and it
        resolves only after the 10-minute stabilization with good checks and < 1 % errors."""
        async with daemon(service.url, store_url, clock) as d:
            await tick(d, clock, 12)
            assert incident(d) is None

            service.error_ratio = 1.0
            await tick(d, clock, 4)
            inc = incident(d)
            assert inc is not None and inc.state is State.INVESTIGATING
            opened_at = inc.opened_at
            await tick(d, clock, 6)
            assert incident(d).severity is Severity.SEV1

            service.error_ratio = 0.0
            # The failures leave the 60-s evaluation span (12 passes), then the condition must
            # stay absent for clear_evals (12 more) before verification starts.
            passes = 0
            while incident(d).state is not State.MONITORING:
                await tick(d, clock)
                passes += 1
                assert passes <= 26, "no move to monitoring within 26 passes"
            assert passes >= 12
            inc = incident(d)
            await tick(d, clock, 119)  # 595 s of the 600-s stabilization
            assert incident(d) is not None
            await tick(d, clock, 2)
            assert incident(d) is None

            stored = await d.store.get_incident(inc.id)
            assert stored.state is State.RESOLVED
            assert stored.max_severity is Severity.SEV1
            assert stored.resolved_at - stored.monitoring_since >= 600
            events = [e.event for e in stored.timeline]
            assert events[0] is Event.OPENED and events[-1] is Event.RESOLVED
            assert Event.ESCALATED in events and Event.MONITORING in events
            assert stored.opened_at == opened_at

    async def test_flapping_service_is_one_incident_not_one_per_cycle(
        self, service: LocalService, store_url: str, clock: ManualClock
    ):
        """A health check failing every other pass for 10 minutes is half the probes failing:
        the 60-s window grades that a steady SEV-2 (error rate 10-50 %), so one incident opens
        and stays open; it never closes and reopens with the flaps."""
        async with daemon(service.url, store_url, clock) as d:
            seen: list[str | None] = []
            for i in range(120):
                service.error_ratio = 1.0 if i % 2 else 0.0
                await tick(d, clock)
                inc = incident(d)
                seen.append(None if inc is None else inc.id)
            first = next((n for n, x in enumerate(seen) if x is not None), None)
            assert first is not None and first < 12, "no incident within the first minute"
            assert set(seen[first:]) == {seen[first]}, "the incident closed or was replaced"
            stored = await d.store.list_incidents(limit=10)
            assert [i.id for i in stored] == [seen[first]]
            one = await d.store.get_incident(seen[first])
            events = [e.event for e in one.timeline]
            assert events.count(Event.OPENED) == 1
            assert Event.MONITORING not in events and Event.RESOLVED not in events
            assert one.state is State.INVESTIGATING and one.max_severity is Severity.SEV2


class TestRestart:
    async def test_restart_mid_incident_resumes_it(
        self, service: LocalService, store_url: str, clock: ManualClock
    ):
        """Killed and started again mid-incident, the daemon resumes the open incident instead
        of opening a second one, and resolves it later."""
        service.error_ratio = 1.0
        async with daemon(service.url, store_url, clock) as d:
            await tick(d, clock, 8)
            first = incident(d)
            assert first is not None and first.severity is Severity.SEV1

        async with daemon(service.url, store_url, clock) as d:
            resumed = incident(d)
            assert resumed is not None and resumed.id == first.id
            await tick(d, clock, 10)
            assert incident(d).id == first.id
            service.error_ratio = 0.0
            await tick(d, clock, 26 + 121)
            assert incident(d) is None
            everything = await d.store.list_incidents(limit=10)
            assert [i.id for i in everything] == [first.id]
            stored = await d.store.get_incident(first.id)
            assert Event.RESUMED in [e.event for e in stored.timeline]
            assert stored.state is State.RESOLVED


class TestHttpSurface:
    async def test_endpoints(self, service: LocalService, tmp_path, clock: ManualClock):
        """/metrics, /healthz, /readyz and /api/incidents answer as documented."""
        url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
        async with daemon(service.url, url, clock) as d, aiohttp.ClientSession() as http:
            async with http.get(f"{d.url}/healthz") as r:
                assert r.status == 200  # within the start-up grace
            service.error_ratio = 1.0
            await tick(d, clock, 8)
            async with http.get(f"{d.url}/metrics") as r:
                text = await r.text()
            assert r.status == 200
            assert 'hotdash_watch_incident_severity{severity="SEV-1",target_app="svc"} 1.0' in text
            assert 'hotdash_watch_probe_results_total{probe="health",result="http_5xx",' \
                   'target_app="svc"} 8.0' in text
            assert 'hotdash_watch_window_error_ratio{target_app="svc"}' in text
            async with http.get(f"{d.url}/api/incidents") as r:
                listed = (await r.json())["incidents"]
            assert [i["severity"] for i in listed] == ["SEV-1"]
            async with http.get(f"{d.url}/api/incidents/{listed[0]['id']}") as r:
                one = await r.json()
            assert one["timeline"][0]["event"] == "opened"
            async with http.get(f"{d.url}/api/incidents/INC-nope") as r:
                assert r.status == 404
            async with http.get(f"{d.url}/api/incidents?limit=zero") as r:
                assert r.status == 400 and "limit" in (await r.json())["error"]
            async with http.get(f"{d.url}/readyz") as r:
                assert r.status == 200
            clock.advance(31)  # no evaluation for longer than heartbeat_stale_s
            async with http.get(f"{d.url}/healthz") as r:
                assert r.status == 503 and (await r.json())["status"] == "stale"


class TestLogs:
    async def test_lines_about_an_app_carry_app_and_incident(
        self, service: LocalService, tmp_path, clock: ManualClock, log_events
    ):
        """Every log line about an app carries ``app``; during an incident, ``incident_id``."""
        url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
        async with daemon(service.url, url, clock) as d:
            await tick(d, clock, 3)
            service.error_ratio = 1.0
            await tick(d, clock, 8)
        inc_id = incident(d).id
        events = {e["event"]: e for e in log_events}
        assert {"probe_ok", "probe_failed", "condition_detected", "incident_opened",
                "incident_escalated"} <= events.keys()
        for e in log_events:
            if e["event"].startswith(("probe_", "condition_", "incident_")):
                assert e.get("app") == "svc", e
            if e["event"].startswith("incident_"):
                assert e.get("incident_id") == inc_id, e
        opened = events["incident_opened"]
        assert opened["severity"] == "SEV-2" and opened["reasons"]  # incident_escalated follows


class TestAdminApi:
    async def test_mutations_need_the_bearer_token(self, service: LocalService, tmp_path,
                                                   clock: ManualClock):
        """Silences and acknowledgements need the configured bearer token; a silence has an
        author and an end; an acknowledgement lands on the incident's timeline."""
        url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
        s = settings(apps=[{"name": "svc", "health_url": service.url}], store_url=url,
                     server={"host": "127.0.0.1", "port": 0, "api_token": "t0ken-s3cret"},
                     probes={"timeout_s": 2, "reprobe_on_failure": False})
        async with running(s, clock) as d, aiohttp.ClientSession() as http:
            body = {"app": "svc", "duration_s": 3600, "author": "dana", "reason": "deploy"}
            async with http.post(f"{d.url}/api/silences", json=body) as r:
                assert r.status == 401
            async with http.post(f"{d.url}/api/silences", json=body,
                                 headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            auth = {"Authorization": "Bearer t0ken-s3cret"}
            async with http.post(f"{d.url}/api/silences", json={**body, "author": ""},
                                 headers=auth) as r:
                assert r.status == 400 and "author" in (await r.json())["error"]
            async with http.post(f"{d.url}/api/silences", json={**body, "app": "nope"},
                                 headers=auth) as r:
                assert r.status == 400 and "svc" in (await r.json())["error"]
            async with http.post(f"{d.url}/api/silences", json=body, headers=auth) as r:
                assert r.status == 201
                created = await r.json()
            assert created["active"] and created["author"] == "dana"
            async with http.get(f"{d.url}/api/silences") as r:
                assert [x["id"] for x in (await r.json())["silences"]] == [created["id"]]
            async with http.delete(f"{d.url}/api/silences/{created['id']}",
                                   headers=auth) as r:
                assert r.status == 200 and not (await r.json())["active"]

            service.error_ratio = 1.0
            await tick(d, clock, 8)
            inc = incident(d)
            async with http.post(f"{d.url}/api/incidents/{inc.id}/acknowledge",
                                 json={"author": "dana"}, headers=auth) as r:
                assert r.status == 200
                timeline = (await r.json())["timeline"]
            assert timeline[-1]["reasons"] == ["acknowledged by dana"]
