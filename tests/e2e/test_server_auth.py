"""Bearer tokens on the HTTP surface of a running daemon: the mutating /api calls always need
server.api_token, /metrics needs server.metrics_token only when one is set, reads stay open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from hotdash_watch.clock import ManualClock
from hotdash_watch.config import ConfigError
from hotdash_watch.daemon import Daemon
from tests.support.factories import settings
from tests.support.harness import running
from tests.support.target import LocalService

API_TOKEN = "api-tok-3e8d1f0a"
METRICS_TOKEN = "metrics-tok-b52c9e77"


@asynccontextmanager
async def daemon(url: str, clock: ManualClock, **server: Any) -> AsyncIterator[Daemon]:
    s = settings(apps=[{"name": "svc", "health_url": url}],
                 server={"host": "127.0.0.1", "port": 0, **server})
    async with running(s, clock) as d:
        yield d


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def fetch(method: str, url: str, headers: dict[str, str],
                body: Any = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, \
            http.request(method, url, json=body, headers=headers) as r:
        return r.status, await r.text()


MUTATIONS = [
    ("POST", "/api/silences", {"app": "svc", "duration_s": 60, "author": "dana"}),
    ("DELETE", "/api/silences/1", None),
    ("POST", "/api/incidents/INC-20260301-120000/acknowledge", {"author": "dana"}),
]


class TestApiToken:
    @pytest.mark.parametrize(("method", "path", "body"), MUTATIONS,
                             ids=["silence", "end-silence", "acknowledge"])
    async def test_mutations_need_the_token(self, service: LocalService, clock: ManualClock,
                                            method: str, path: str, body: Any):
        """Every mutating /api call answers 401 without the token or with a wrong one, and gets
        past the check with the right one."""
        async with daemon(service.url, clock, api_token=API_TOKEN) as d, \
                aiohttp.ClientSession() as http:
            for token in (None, "wrong-token-0000"):
                async with http.request(method, d.url + path, json=body,
                                        headers=bearer(token)) as r:
                    assert r.status == 401, token
                    assert r.headers["WWW-Authenticate"] == "Bearer"
            async with http.request(method, d.url + path, json=body,
                                    headers=bearer(API_TOKEN)) as r:
                assert r.status not in (401, 403)

    async def test_mutations_are_disabled_without_a_token(self, service: LocalService,
                                                          clock: ManualClock):
        """Without server.api_token a mutation is refused with 403 naming the setting."""
        async with daemon(service.url, clock) as d:
            status, text = await fetch("POST", f"{d.url}/api/silences",
                                       bearer("anything-at-all"), MUTATIONS[0][2])
        assert status == 403
        assert "HOTDASH_WATCH_SERVER__API_TOKEN" in text

    @pytest.mark.parametrize("field", ["api_token", "hooks_token", "metrics_token"])
    def test_empty_tokens_are_refused_by_the_configuration(self, field: str):
        """An empty token (which an empty "Bearer" header would match) is a configuration
        error that names the field, not an open door."""
        with pytest.raises(ConfigError) as info:
            settings(server={field: "  "})
        assert f"server.{field}: must not be empty" in str(info.value)

    async def test_bearer_without_a_value_is_refused(self, service: LocalService,
                                                     clock: ManualClock):
        """An Authorization header with the scheme and nothing after it is a 401."""
        async with daemon(service.url, clock, api_token=API_TOKEN) as d:
            for header in ("Bearer", "Bearer ", "bearer  "):
                status, _ = await fetch("POST", f"{d.url}/api/silences",
                                        {"Authorization": header}, MUTATIONS[0][2])
                assert status == 401, header

    async def test_reads_stay_open(self, service: LocalService, clock: ManualClock):
        """Reading incidents, silences and pages needs no token."""
        async with daemon(service.url, clock, api_token=API_TOKEN) as d, \
                aiohttp.ClientSession() as http:
            for path in ("/api/incidents", "/api/silences", "/api/pages", "/healthz"):
                async with http.get(d.url + path) as r:
                    assert r.status == 200, path


class TestMetricsToken:
    async def test_open_without_a_token(self, service: LocalService, clock: ManualClock):
        """Without server.metrics_token, /metrics answers anyone (Fly's scraper sends no
        credentials)."""
        async with daemon(service.url, clock) as d:
            status, text = await fetch("GET", f"{d.url}/metrics", {})
        assert status == 200
        assert "hotdash_watch_evaluations_total" in text

    async def test_token_required_when_set(self, service: LocalService, clock: ManualClock):
        """With server.metrics_token, /metrics answers 401 without it, with a wrong one or with
        the API token, and the exposition with it; /healthz stays open."""
        async with daemon(service.url, clock, api_token=API_TOKEN,
                          metrics_token=METRICS_TOKEN) as d, aiohttp.ClientSession() as http:
            for token in (None, "wrong-token-0000", API_TOKEN):
                async with http.get(f"{d.url}/metrics", headers=bearer(token)) as r:
                    assert r.status == 401, token
                    assert "hotdash_watch_" not in await r.text()
            async with http.get(f"{d.url}/metrics", headers=bearer(METRICS_TOKEN)) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                assert "hotdash_watch_evaluations_total" in await r.text()
            async with http.get(f"{d.url}/healthz") as r:
                assert r.status == 200

    async def test_failed_scrape_logs_no_token(self, service: LocalService, clock: ManualClock,
                                               log_events: list[dict[str, Any]]):
        """A refused scrape is logged as request_unauthorized with its reason, without the
        token sent or the one configured."""
        async with daemon(service.url, clock, metrics_token=METRICS_TOKEN) as d:
            await fetch("GET", f"{d.url}/metrics", {"Authorization": "Basic dXNlcg=="})
        refused = [e for e in log_events if e["event"] == "request_unauthorized"]
        assert [(e["path"], e["reason"]) for e in refused] == [("/metrics", "scheme")]
        assert METRICS_TOKEN not in repr(log_events) and "dXNlcg==" not in repr(log_events)
