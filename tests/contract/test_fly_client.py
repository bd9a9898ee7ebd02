"""FlyClient against a fake Fly on a real socket, serving tests/fixtures at real paths.

The backend is reached only through base URLs (``FlyBackend``), so the simulator can be swapped
in by adding a fixture that yields a ``FlyBackend`` for it. Tests in ``TestWire`` also read the
requests the fixture server recorded (method, path, headers, body), which only it provides.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from hotdash_watch.fly import (
    RELEASES_QUERY,
    FlyClient,
    FlyConflict,
    FlyNotFound,
    LeaseHeld,
    auth_header,
)
from tests.support.fixtures import load

APP = "hotdash-api"
ORG = "hotdash"
STARTED, STOPPED, OOM = "6e82d47a1c9058", "d891e35f02b746", "2873b6e4f09d15"
# A made-up macaroon-shaped token; it must never show up anywhere but the Authorization header.
TOKEN = SecretStr("fm2_lJPECAAAAAAAAMN1xkZGVmVUdGVkX3-not-a-real-token-9c1f")
AUTH = "FlyV1 " + TOKEN.get_secret_value()
NONCE = "fly-machine-lease-nonce"


class RecordingClock:
    """A clock whose ``sleep`` records the delay, moves time forward and returns at once."""

    rate = 1.0

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._elapsed = 0.0
        self._start = datetime(2025, 11, 10, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._elapsed += max(0.0, seconds)


@dataclass
class Seen:
    """One request the fixture server received."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    nonce: str | None
    body: Any


@dataclass
class FlyBackend:
    """Where a Fly implementation listens; ``seen`` is filled by the fixture server only."""

    machines_url: str
    api_url: str
    prometheus_url: str
    seen: list[Seen] | None = None


@dataclass
class FixtureFly:
    """A fake Fly answering from the fixtures, enforcing leases and versions."""

    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.machines = {m["id"]: m for m in load("machines-list.json")}

    # -- plumbing --

    @staticmethod
    def error(status: int, text: str) -> web.Response:
        return web.json_response({"error": text}, status=status,
                                 headers={"fly-request-id": "req-fixture"})

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              request.headers.get("Authorization"),
                              request.headers.get(NONCE), body))
        if request.headers.get("Authorization") != AUTH:
            return self.error(401, "unauthorized")
        return await handler(request)

    def machine(self, request: web.Request) -> dict[str, Any]:
        if request.match_info["app"] != APP:
            raise web.HTTPNotFound(text='{"error":"app not found"}',
                                   content_type="application/json")
        found = self.machines.get(request.match_info.get("id", ""))
        if found is None:
            raise web.HTTPNotFound(text='{"error":"machine not found"}',
                                   content_type="application/json")
        return found

    def lease_refusal(self, request: web.Request, machine_id: str) -> web.Response | None:
        held = self.leases.get(machine_id)
        if held is None or request.headers.get(NONCE) == held["nonce"]:
            return None
        return self.error(409, f"aborted: machine ID {machine_id} lease currently held by "
                               f"{held['owner']}, expires at 2025-11-10T12:45:00Z")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record])
        base = "/v1/apps/{app}/machines"
        app.router.add_get(base, self.list_machines)
        app.router.add_get(base + "/{id}", self.get_machine)
        app.router.add_post(base + "/{id}", self.update)
        app.router.add_post(base + "/{id}/{action:start|stop|restart}", self.action)
        app.router.add_get(base + "/{id}/wait", self.wait)
        app.router.add_get(base + "/{id}/events", self.events)
        app.router.add_post(base + "/{id}/lease", self.acquire)
        app.router.add_delete(base + "/{id}/lease", self.release)
        app.router.add_post("/graphql", self.graphql)
        app.router.add_get("/api/v1/apps/{app}/logs", self.logs)
        app.router.add_get("/prometheus/{org}/api/v1/query", self.query)
        return app

    # -- Machines API --

    async def list_machines(self, request: web.Request) -> web.Response:
        if request.match_info["app"] != APP:
            return self.error(404, "app not found")
        return web.json_response(list(self.machines.values()))

    async def get_machine(self, request: web.Request) -> web.Response:
        return web.json_response(self.machine(request))

    async def update(self, request: web.Request) -> web.Response:
        m = self.machine(request)
        if refusal := self.lease_refusal(request, m["id"]):
            return refusal
        body = await request.json()
        if set(body) != {"config", "current_version", "skip_launch"}:
            return self.error(400, f"unexpected update keys {sorted(body)}")
        if not isinstance(body["skip_launch"], bool) or "image" not in body["config"]:
            return self.error(400, "skip_launch must be a bool and config complete")
        if body["current_version"] not in (None, m["instance_id"]):
            return self.error(409, "machine version mismatch: current_version is stale")
        m["config"] = body["config"]
        m["instance_id"] = f"01NEWVERSION{next(self._ids):014d}"
        return web.json_response(m)

    async def action(self, request: web.Request) -> web.Response:
        m = self.machine(request)
        if refusal := self.lease_refusal(request, m["id"]):
            return refusal
        action = request.match_info["action"]
        if action == "restart" and request.query.get("force_stop") != "false":
            return self.error(400, "restart must say force_stop")
        m["state"] = {"start": "started", "stop": "stopped", "restart": "started"}[action]
        return web.json_response({"ok": True})

    async def wait(self, request: web.Request) -> web.Response:
        m = self.machine(request)
        state = request.query.get("state", "started")
        if state == "stopped" and "version" not in request.query:
            return self.error(400, "version is required when waiting for stopped")
        if not 1 <= int(request.query.get("timeout", "60")) <= 60:
            return self.error(400, "timeout out of range")
        if m["state"] != state:
            return self.error(408, "deadline exceeded waiting for state")
        return web.json_response({"ok": True, "state": state, "version": m["instance_id"]})

    async def events(self, request: web.Request) -> web.Response:
        m = self.machine(request)
        limit = int(request.query.get("limit", "20"))
        events = load("machine-events.json") if m["id"] == OOM else m.get("events", [])
        return web.json_response(events[:limit])

    async def acquire(self, request: web.Request) -> web.Response:
        m = self.machine(request)
        if m["id"] in self.leases:
            return self.lease_refusal(request, m["id"]) or self.error(409, "lease exists")
        body = await request.json()
        lease = {"nonce": f"nonce-{next(self._ids)}", "expires_at": 1762778000 + body["ttl"],
                 "owner": "watch@tokens.fly.io", "description": body["description"],
                 "version": m["instance_id"]}
        self.leases[m["id"]] = lease
        return web.json_response({"status": "success", "data": lease}, status=201)

    async def release(self, request: web.Request) -> web.Response:
        m = self.machine(request)
        held = self.leases.get(m["id"])
        if held is None:
            return self.error(404, "no lease")
        if request.headers.get(NONCE) != held["nonce"]:
            return self.error(409, "lease nonce does not match")
        del self.leases[m["id"]]
        return web.json_response({"status": "success"})

    # -- GraphQL, logs, Prometheus --

    async def graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        variables = body.get("variables", {})
        if "releasesUnprocessed(first: $limit)" not in body.get("query", ""):
            return web.json_response({"errors": [{"message": "unknown query"}]})
        if variables.get("appName") != APP:
            return web.json_response({"data": {"app": None}, "errors": [
                {"message": f"Could not find App \"{variables.get('appName')}\"",
                 "extensions": {"code": "NOT_FOUND"}}]})
        answer = load("graphql-releases.json")
        answer["data"]["app"]["releases"]["nodes"] = answer["data"]["app"]["releases"][
            "nodes"][: variables["limit"]]
        return web.json_response(answer)

    async def logs(self, request: web.Request) -> web.Response:
        page = load("logs-page.json")
        if request.query.get("next_token") == page["meta"]["next_token"]:
            page["data"] = []
        if instance := request.query.get("instance"):
            page["data"] = [d for d in page["data"] if d["attributes"]["instance"] == instance]
        return web.json_response(page)

    async def query(self, request: web.Request) -> web.Response:
        if not request.query.get("query"):
            return web.json_response({"status": "error", "errorType": "bad_data",
                                      "error": "missing query"}, status=400)
        return web.json_response(load("prometheus-query-vector.json"))


@pytest.fixture
async def fixture_fly(aiohttp_server) -> AsyncIterator[tuple[FlyBackend, FixtureFly]]:
    fake = FixtureFly()
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("")).rstrip("/")
    yield FlyBackend(url, url, f"{url}/prometheus/{ORG}", fake.seen), fake


@pytest.fixture
async def backend(fixture_fly) -> FlyBackend:
    """The Fly implementation under test (the fixture server; the simulator can be added)."""
    return fixture_fly[0]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def client(session, clock, backend) -> FlyClient:
    return FlyClient(session, clock, token=TOKEN, machines_url=backend.machines_url,
                     api_url=backend.api_url, prometheus_url=backend.prometheus_url,
                     timeout_s=5.0)


class TestAuthHeader:
    @pytest.mark.parametrize(
        ("secret", "header"),
        [("FlyV1 fm2_abc,fm2_def", "FlyV1 fm2_abc,fm2_def"),
         ("fm2_abc", "FlyV1 fm2_abc"),
         ("fm1r_abc", "FlyV1 fm1r_abc"),
         ("fm1a_abc", "FlyV1 fm1a_abc"),
         ("oauth-token-123", "Bearer oauth-token-123"),
         ("Bearer oauth-token-123", "Bearer oauth-token-123"),
         ("  fm2_abc\n", "FlyV1 fm2_abc")],
    )
    def test_scheme(self, secret, header):
        """FlyV1 tokens go as is, bare macaroons get FlyV1, anything else Bearer."""
        assert auth_header(SecretStr(secret)) == header

    def test_repr_hides_token(self, session, clock):
        """Neither the client's repr nor its attributes' reprs show the token."""
        c = FlyClient(session, clock, token=TOKEN)
        assert TOKEN.get_secret_value() not in repr(c)
        assert all(TOKEN.get_secret_value() not in repr(v) for v in vars(c).values())

    def test_bad_configuration(self, session, clock):
        """A plain-str token, an empty token or a relative base URL are refused at once."""
        with pytest.raises(TypeError):
            FlyClient(session, clock, token="fm2_abc")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            FlyClient(session, clock, token=SecretStr("  "))
        with pytest.raises(ValueError):
            FlyClient(session, clock, token=TOKEN, machines_url="/v1")


class TestMachines:
    async def test_list_machines(self, client):
        """list_machines returns the app's three machines parsed from the API."""
        machines = await client.list_machines(APP)
        assert [m.id for m in machines] == [STARTED, STOPPED, OOM]
        assert machines[1].autostopped and machines[2].latest_exit.exit.oom_killed

    async def test_unknown_app_is_not_found(self, client):
        """An app the API does not know raises FlyNotFound."""
        with pytest.raises(FlyNotFound) as info:
            await client.list_machines("no-such-app")
        assert info.value.app == "no-such-app" and info.value.request_id == "req-fixture"

    async def test_get_machine(self, client):
        """get_machine returns one machine with its instance id and checks."""
        m = await client.get_machine(APP, OOM)
        assert m.instance_id == "01KKXFBEKGCHAJ7X8BVHS42E4Z" and m.checks_passing is False

    async def test_events(self, client):
        """events returns at most ``limit`` events, newest first, in seconds."""
        events = await client.events(APP, OOM, limit=3)
        assert [e.type for e in events] == ["exit", "start", "exit"]
        assert events[0].timestamp == 1773757569.0 and events[0].restart_count == 1

    async def test_start_stop_restart(self, client):
        """start, stop and restart succeed and move the machine's state."""
        await client.stop(APP, STARTED, signal="SIGTERM", timeout_s=30)
        assert (await client.get_machine(APP, STARTED)).state == "stopped"
        await client.start(APP, STARTED)
        await client.restart(APP, STARTED)
        assert (await client.get_machine(APP, STARTED)).state == "started"

    async def test_update_returns_new_version(self, client):
        """update sends the edited full config and returns the machine's new instance id."""
        m = await client.get_machine(APP, STARTED)
        config = m.config_copy()
        config["guest"]["memory_mb"] = 1024
        updated = await client.update(APP, STARTED, config=config,
                                      current_version=m.instance_id, skip_launch=False)
        assert updated.memory_mb == 1024 and updated.instance_id != m.instance_id

    async def test_update_with_stale_version_conflicts(self, client):
        """A stale current_version is refused with FlyConflict and not retried."""
        m = await client.get_machine(APP, STARTED)
        with pytest.raises(FlyConflict):
            await client.update(APP, STARTED, config=m.config, current_version="01STALE",
                                skip_launch=True)

    async def test_wait(self, client):
        """wait is True once the state is reached and False when the poll times out (408)."""
        assert await client.wait(APP, STARTED, state="started") is True
        assert await client.wait(APP, STOPPED, state="started", timeout_s=5) is False
        assert await client.wait(APP, STOPPED, state="stopped",
                                 version="01KKXFAS40NED9ETHZJZSCV7HG")

    async def test_wait_stopped_needs_version(self, client):
        """Waiting for 'stopped' without a version is refused before any request."""
        with pytest.raises(ValueError):
            await client.wait(APP, STOPPED, state="stopped")

    async def test_bad_arguments(self, client):
        """Invalid names, limits and signals are refused before any request."""
        with pytest.raises(ValueError):
            await client.get_machine(APP, "../../v1/apps")
        with pytest.raises(ValueError):
            await client.events(APP, OOM, limit=51)
        with pytest.raises(ValueError):
            await client.stop(APP, OOM, signal="SIGSEGV")


class TestLeases:
    async def test_lease_context_releases(self, client):
        """Inside ``lease()`` writes carry the nonce; the lease is gone afterwards."""
        async with client.lease(APP, OOM, ttl_s=30) as lease:
            assert lease.nonce and lease.version == "01KKXFBEKGCHAJ7X8BVHS42E4Z"
            await client.restart(APP, OOM, nonce=lease.nonce)
        lease2 = await client.acquire_lease(APP, OOM)  # free again
        await client.release_lease(APP, OOM, lease2.nonce)

    async def test_lease_released_when_body_fails(self, client, fixture_fly):
        """The lease is released when the body raises, and the body's error propagates."""
        with pytest.raises(RuntimeError, match="boom"):
            async with client.lease(APP, OOM):
                raise RuntimeError("boom")
        assert fixture_fly[1].leases == {}

    async def test_write_without_nonce_is_refused(self, client):
        """A write to a leased machine without its nonce raises LeaseHeld naming the owner."""
        lease = await client.acquire_lease(APP, OOM)
        with pytest.raises(LeaseHeld) as info:
            await client.restart(APP, OOM)
        assert info.value.owner == "watch@tokens.fly.io"
        await client.release_lease(APP, OOM, lease.nonce)

    async def test_second_acquire_is_lease_held(self, client):
        """Acquiring a lease someone holds raises LeaseHeld."""
        await client.acquire_lease(APP, STOPPED)
        with pytest.raises(LeaseHeld):
            await client.acquire_lease(APP, STOPPED)


class TestReleasesLogsMetrics:
    async def test_releases(self, client):
        """releases returns the app's releases newest first, v57 the previous stable one."""
        releases = await client.releases(APP, limit=10)
        assert [r.version for r in releases] == [58, 57, 56]
        assert releases[1].stable and releases[1].status == "complete"

    async def test_releases_unknown_app(self, client):
        """A GraphQL NOT_FOUND error (HTTP 200) raises FlyNotFound."""
        with pytest.raises(FlyNotFound):
            await client.releases("no-such-app")

    async def test_logs(self, client):
        """logs returns a page of lines and its next token."""
        page = await client.logs(APP)
        assert len(page.lines) == 7 and page.next_token == "1773757580193847000"
        only = await client.logs(APP, instance=STARTED)
        assert [line.instance for line in only.lines] == [STARTED]

    async def test_query(self, client):
        """query returns the vector's samples as floats with their labels."""
        samples = await client.query(
            'sum by (status) (rate(fly_edge_http_responses_count{app="hotdash-api"}[5m]))')
        assert {s.labels["status"] for s in samples} == {"200", "301", "404", "500", "502",
                                                         "503"}


class TestWire:
    """What went over the wire, as recorded by the fixture server."""

    @staticmethod
    def last(backend: FlyBackend, method: str, suffix: str) -> Seen:
        assert backend.seen is not None
        return [s for s in backend.seen if s.method == method and s.path.endswith(suffix)][-1]

    async def test_every_request_authorised(self, client, backend):
        """Every call sends the FlyV1 Authorization header, and only there the token."""
        await client.list_machines(APP)
        await client.releases(APP)
        await client.logs(APP)
        await client.query("up")
        assert backend.seen and all(s.authorization == AUTH for s in backend.seen)
        assert [s.path for s in backend.seen] == [
            f"/v1/apps/{APP}/machines", "/graphql", f"/api/v1/apps/{APP}/logs",
            f"/prometheus/{ORG}/api/v1/query"]
        assert all(TOKEN.get_secret_value() not in json.dumps(s.query) for s in backend.seen)

    async def test_actions_paths_nonce_and_query(self, client, backend):
        """Actions POST to their paths with the lease nonce; restart says force_stop=false."""
        async with client.lease(APP, STARTED, ttl_s=45, description="test") as lease:
            await client.restart(APP, STARTED, nonce=lease.nonce)
            await client.stop(APP, STARTED, nonce=lease.nonce, signal="SIGTERM", timeout_s=30)
            await client.start(APP, STARTED, nonce=lease.nonce)
        acquire = self.last(backend, "POST", "/lease")
        assert acquire.body == {"ttl": 45, "description": "test"} and acquire.query["ttl"] == "45"
        restart = self.last(backend, "POST", "/restart")
        assert restart.query == {"force_stop": "false"} and restart.nonce == lease.nonce
        stop = self.last(backend, "POST", "/stop")
        assert stop.body == {"signal": "SIGTERM", "timeout": "30s"} and stop.nonce == lease.nonce
        assert self.last(backend, "POST", "/start").nonce == lease.nonce
        release = self.last(backend, "DELETE", "/lease")
        assert release.nonce == lease.nonce

    async def test_update_body(self, client, backend):
        """update POSTs the full config, current_version and skip_launch, with the nonce."""
        m = await client.get_machine(APP, STOPPED)
        config = m.config_copy()
        config["image"] = "registry.fly.io/hotdash-api:deployment-01KKHMDW1R5B26FRTHH0N7RKZ9"
        async with client.lease(APP, STOPPED) as lease:
            await client.update(APP, STOPPED, config=config, current_version=m.instance_id,
                                nonce=lease.nonce, skip_launch=True)
        sent = self.last(backend, "POST", f"/machines/{STOPPED}")
        assert sent.body == {"config": config, "current_version": m.instance_id,
                             "skip_launch": True}
        assert sent.body["config"]["services"] == copy.deepcopy(dict(m.config)["services"])
        assert sent.nonce == lease.nonce

    async def test_update_without_version_sends_null(self, client, backend):
        """Without current_version the key is still sent, as null."""
        m = await client.get_machine(APP, STARTED)
        await client.update(APP, STARTED, config=m.config, current_version=None,
                            skip_launch=False)
        sent = self.last(backend, "POST", f"/machines/{STARTED}")
        assert sent.body["current_version"] is None and sent.body["skip_launch"] is False

    async def test_wait_query(self, client, backend):
        """wait sends state, version and an integer timeout of at most 60 s."""
        await client.wait(APP, STARTED, state="started", version="01KKXFA4KRCN2EBW437DZKA1XF",
                          timeout_s=90)
        sent = self.last(backend, "GET", "/wait")
        assert sent.query == {"state": "started", "timeout": "60",
                              "version": "01KKXFA4KRCN2EBW437DZKA1XF"}

    async def test_wait_loops_within_total(self, client, backend, clock):
        """A 408 leads to another poll only while the total timeout allows."""
        assert await client.wait(APP, STOPPED, state="started", timeout_s=90) is False
        assert backend.seen is not None
        polls = [s.query["timeout"] for s in backend.seen if s.path.endswith("/wait")]
        assert polls == ["60", "60"]  # the clock does not move: bounded by count

    async def test_events_and_logs_query(self, client, backend):
        """events sends limit; logs sends next_token and instance."""
        await client.events(APP, OOM, limit=6)
        assert self.last(backend, "GET", "/events").query == {"limit": "6"}
        await client.logs(APP, next_token="1773757580193847000", instance=OOM)
        assert self.last(backend, "GET", "/logs").query == {
            "next_token": "1773757580193847000", "instance": OOM}

    async def test_graphql_body(self, client, backend):
        """releases POSTs the exact releases query with appName and limit variables."""
        await client.releases(APP, limit=25)
        sent = self.last(backend, "POST", "/graphql")
        assert sent.body == {"query": RELEASES_QUERY,
                             "variables": {"appName": APP, "limit": 25}}

    async def test_prometheus_query_param(self, client, backend):
        """query sends the PromQL as the query parameter of /api/v1/query."""
        await client.query('up{app="hotdash-api"}')
        assert self.last(backend, "GET", "/api/v1/query").query == {
            "query": 'up{app="hotdash-api"}'}
