"""The simulator over real HTTP: Fly's paths, shapes (field by field against tests/fixtures),
status codes and error bodies, leases, rate limits, the proxy and the platform faults."""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotdash_watch.clock import ManualClock
from hotdash_watch.sim import Fault, SimServer
from tests.sim.conftest import StartSim
from tests.sim.helpers import FlyApi, assert_same_shape, drive, fixture, make_scenario

APP = "hotdash-api"
MACHINES = f"/v1/apps/{APP}/machines"
ERROR_SHAPE = {"error": "text", "status": "unknown"}
RELEASES_QUERY = """
query ($appName: String!, $limit: Int!) {
  app(name: $appName) {
    releases: releasesUnprocessed(first: $limit) {
      nodes { id version description reason status imageRef stable
              user { id email name } createdAt }
    }
  }
}
"""  # the fields of fly-go's GetAppReleasesMachines query


def expected_machine(index: int) -> dict[str, Any]:
    """Fixture machine ``index``, with every fixture event as a possible twin for events."""
    machines = fixture("machines-list.json")
    pool = [e for m in machines for e in m["events"]]
    out = copy.deepcopy(machines[index])
    out["events"] = pool
    return out


async def machine_ids(api: FlyApi) -> list[str]:
    status, body, _ = await api.call("GET", MACHINES)
    assert status == 200
    return [m["id"] for m in body]


class TestShapes:
    """Responses have the keys, types and state names of the fixtures."""

    async def test_started_machine(self, api: FlyApi):
        """A started machine in the list is shaped like the fixture's started machine."""
        status, body, _ = await api.call("GET", MACHINES)
        assert status == 200 and len(body) == 3
        for m in body:
            assert m["state"] == "started"
            assert_same_shape(m, expected_machine(0))
            assert [c["name"] for c in m["checks"]] == ["servicecheck-00-http-8080", "db"]
            assert m["config"]["services"][0]["autostop"] is False

    async def test_stopped_machine(self, api: FlyApi, clock: ManualClock):
        """A stopped machine is shaped like the fixture's stopped one (no checks, exit event)."""
        mid = (await machine_ids(api))[0]
        assert (await api.call("POST", f"{MACHINES}/{mid}/stop", json={}))[0] == 200
        clock.advance(3)
        status, body, _ = await api.call("GET", f"{MACHINES}/{mid}")
        assert status == 200 and body["state"] == "stopped"
        assert_same_shape(body, expected_machine(1))
        exit_event = body["events"][0]["request"]["exit_event"]
        assert exit_event["requested_stop"] is True and exit_event["restarting"] is False

    async def test_events_endpoint(self, api: FlyApi, clock: ManualClock):
        """GET …/events: newest first, with ids, like machine-events.json; limit honoured."""
        mid = (await machine_ids(api))[0]
        await api.call("POST", f"{MACHINES}/{mid}/restart")
        clock.advance(4)
        status, body, _ = await api.call("GET", f"{MACHINES}/{mid}/events",
                                         params={"limit": "6"})
        assert status == 200 and len(body) == 6
        assert_same_shape(body, fixture("machine-events.json"))
        assert [e["type"] for e in body[:2]] == ["start", "exit"]
        stamps = [e["timestamp"] for e in body]
        assert stamps == sorted(stamps, reverse=True)
        assert len({e["id"] for e in body}) == 6
        assert (await api.call("GET", f"{MACHINES}/{mid}/events",
                               params={"limit": "0"}))[0] == 400

    async def test_list_filters_and_summary(self, api: FlyApi, clock: ManualClock):
        """state, region and summary are honoured; summary drops config, checks and events."""
        mid = (await machine_ids(api))[0]
        await api.call("POST", f"{MACHINES}/{mid}/stop")
        clock.advance(3)
        _, stopped, _ = await api.call("GET", MACHINES, params={"state": "stopped"})
        assert [m["id"] for m in stopped] == [mid]
        _, both, _ = await api.call("GET", MACHINES, params={"state": "started,stopped"})
        assert len(both) == 3
        _, elsewhere, _ = await api.call("GET", MACHINES, params={"region": "ord"})
        assert elsewhere == []
        _, summary, _ = await api.call("GET", MACHINES, params={"summary": "true"})
        assert not {"config", "checks", "events", "host_status", "nonce"} & set(summary[0])
        assert {"id", "name", "state", "instance_id", "image_ref"} <= set(summary[0])

    async def test_releases(self, api: FlyApi):
        """The releases query is answered like graphql-releases.json."""
        status, body, _ = await api.call("POST", "/graphql", json={
            "query": RELEASES_QUERY, "variables": {"appName": APP, "limit": 25}})
        assert status == 200
        assert_same_shape(body, fixture("graphql-releases.json"))
        nodes = body["data"]["app"]["releases"]["nodes"]
        assert [n["version"] for n in nodes] == [2, 1]
        assert all(n["status"] == "complete" and n["stable"] for n in nodes)

    async def test_logs_page(self, api: FlyApi, clock: ManualClock):
        """A logs page is shaped like logs-page.json; next_token is the last line's ns time."""
        clock.advance(30)
        status, body, _ = await api.call("GET", f"/api/v1/apps/{APP}/logs")
        assert status == 200
        assert_same_shape(body, fixture("logs-page.json"))
        assert 0 < len(body["data"]) <= 100
        last = body["data"][-1]["attributes"]["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", last)
        assert re.fullmatch(r"\d{19}", body["meta"]["next_token"])

    async def test_lease(self, api: FlyApi):
        """Acquiring a lease answers 201 with the data wrapper; GET returns the same."""
        mid = (await machine_ids(api))[0]
        status, body, _ = await api.call("POST", f"{MACHINES}/{mid}/lease",
                                         json={"ttl": 30, "description": "hotdash_watch"})
        assert status == 201
        assert_same_shape(body, {"status": "success", "data": {
            "nonce": "n", "expires_at": 1, "owner": "o", "description": "d", "version": "v"}})
        assert body["data"]["description"] == "hotdash_watch"
        _, machine, _ = await api.call("GET", f"{MACHINES}/{mid}")
        assert body["data"]["version"] == machine["instance_id"]
        assert (await api.call("GET", f"{MACHINES}/{mid}/lease"))[1] == body


class TestAuthAndErrors:
    """Tokens, error bodies and request ids, as Fly's APIs do them."""

    @pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic sim-token", "sim-token"])
    async def test_bad_token_is_401(self, api: FlyApi, header: str | None):
        """Anything but Bearer/FlyV1 with the token is 401 with Fly's error body."""
        headers = {"Authorization": header} if header else {}
        for method, path in (("GET", MACHINES), ("POST", "/graphql"),
                             ("GET", f"/api/v1/apps/{APP}/logs")):
            status, body, _ = await api.call(method, path, auth=False, headers=headers)
            assert status == 401
            assert_same_shape(body, ERROR_SHAPE)

    async def test_flyv1_scheme_works(self, api: FlyApi):
        """The FlyV1 scheme is accepted like Bearer."""
        status, _, _ = await api.call("GET", MACHINES, auth=False,
                                      headers={"Authorization": "FlyV1 sim-token"})
        assert status == 200

    async def test_request_id_everywhere(self, api: FlyApi, sim: SimServer, clock: ManualClock):
        """Every response, errors and public ones included, carries fly-request-id."""
        paths = [("GET", MACHINES, True), ("GET", MACHINES, False),
                 ("GET", f"{MACHINES}/nope", True), ("GET", "/metrics", False),
                 ("GET", "/v1/nothing/here", True)]
        for method, path, auth in paths:
            _, _, headers = await api.call(method, path, auth=auth)
            assert re.fullmatch(r"[0-9A-Z]{26}-iad", headers["fly-request-id"])
        _, _, headers = await drive(clock, api.call("GET", f"/apps/{APP}/health", auth=False))
        assert "fly-request-id" in headers

    async def test_not_found(self, api: FlyApi):
        """Unknown apps, machines and paths are 404 with Fly's error body."""
        for path in ("/v1/apps/nope/machines", f"{MACHINES}/00000000000000",
                     f"{MACHINES}/x/unknown"):
            status, body, _ = await api.call("GET", path)
            assert status == 404
            assert_same_shape(body, ERROR_SHAPE)


class TestMutations:
    """Writes: state rules, optimistic locking, leases, rate limits, and the mutation record."""

    async def test_restart_of_stopped_machine_is_refused(self, api: FlyApi, clock: ManualClock):
        """Restart is for started machines only: 409 with the chosen message."""
        mid = (await machine_ids(api))[0]
        await api.call("POST", f"{MACHINES}/{mid}/stop")
        clock.advance(3)
        status, body, _ = await api.call("POST", f"{MACHINES}/{mid}/restart")
        assert (status, body) == (409, {"error": "unable to restart machine, not currently "
                                                 "started", "status": "unknown"})
        status, body, _ = await api.call("POST", f"{MACHINES}/{mid}/start")
        assert (status, body["previous_state"]) == (200, "stopped")

    async def test_update_rules(self, api: FlyApi, clock: ManualClock):
        """Update needs the full config (400) and the current version (409); it answers the
        machine with a new instance_id."""
        mid = (await machine_ids(api))[0]
        url = f"{MACHINES}/{mid}"
        _, machine, _ = await api.call("GET", url)
        assert (await api.call("POST", url, json={"skip_launch": False}))[0] == 400
        stale = {"config": machine["config"], "current_version": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
        status, body, _ = await api.call("POST", url, json=stale)
        assert status == 409 and "current_version" in body["error"]
        cfg = copy.deepcopy(machine["config"])
        cfg["guest"]["memory_mb"] = 1024
        status, body, _ = await api.call("POST", url, json={
            "config": cfg, "current_version": machine["instance_id"], "skip_launch": False})
        assert status == 200 and body["instance_id"] != machine["instance_id"]
        assert body["state"] == "replacing" and body["config"]["guest"]["memory_mb"] == 1024
        status, waited, _ = await drive(clock, api.call(
            "GET", f"{url}/wait", params={"state": "started", "version": body["instance_id"],
                                          "timeout": "30"}))
        assert status == 200
        assert waited == {"ok": True, "state": "started", "event_id": waited["event_id"],
                          "version": body["instance_id"]}

    async def test_rate_limit(self, api: FlyApi, clock: ManualClock):
        """Mutations are limited per machine and action: 1/s, burst 3, then 429 + Retry-After."""
        mid = (await machine_ids(api))[0]
        url = f"{MACHINES}/{mid}/start"
        statuses = [(await api.call("POST", url))[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        status, body, headers = await api.call("POST", url)
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert_same_shape(body, ERROR_SHAPE)
        clock.advance(1.0)
        assert (await api.call("POST", url))[0] == 200
        assert (await api.call("POST", f"{MACHINES}/{mid}/lease", json={"ttl": 5}))[0] == 201

    async def test_lease_held_by_someone_else(self, api: FlyApi, sim: SimServer):
        """A deploy's lease: writes without its nonce and a second acquire get 409."""
        mid = (await machine_ids(api))[0]
        sim.world.hold_lease(APP, mid, owner="deploy@ci", ttl_s=120)
        status, body, _ = await api.call("POST", f"{MACHINES}/{mid}/restart")
        assert status == 409
        assert re.fullmatch(rf"aborted: machine ID {mid} lease currently held by deploy@ci, "
                            r"expires at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["error"])
        status, body, _ = await api.call("POST", f"{MACHINES}/{mid}/lease", json={"ttl": 30})
        assert status == 409 and "deploy@ci" in body["error"]
        assert (await api.call("GET", f"{MACHINES}/{mid}/lease"))[1]["data"]["owner"] == (
            "deploy@ci")

    async def test_nonce_required_and_release(self, api: FlyApi):
        """With our lease, writes need our nonce; releasing needs it too."""
        mid = (await machine_ids(api))[0]
        _, lease, _ = await api.call("POST", f"{MACHINES}/{mid}/lease", json={"ttl": 60})
        nonce = {"fly-machine-lease-nonce": lease["data"]["nonce"]}
        assert (await api.call("POST", f"{MACHINES}/{mid}/restart"))[0] == 409
        assert (await api.call("POST", f"{MACHINES}/{mid}/restart", headers=nonce))[0] == 200
        assert (await api.call("DELETE", f"{MACHINES}/{mid}/lease"))[0] == 400
        wrong = {"fly-machine-lease-nonce": "0123456789ab"}
        assert (await api.call("DELETE", f"{MACHINES}/{mid}/lease", headers=wrong))[0] == 409
        assert (await api.call("DELETE", f"{MACHINES}/{mid}/lease", headers=nonce))[0] == 200
        assert (await api.call("GET", f"{MACHINES}/{mid}/lease"))[0] == 404

    async def test_lease_expires(self, api: FlyApi, clock: ManualClock):
        """A lease lapses after its ttl; a refresh with the nonce keeps the same nonce."""
        mid = (await machine_ids(api))[0]
        _, lease, _ = await api.call("POST", f"{MACHINES}/{mid}/lease", json={"ttl": 10})
        nonce = {"fly-machine-lease-nonce": lease["data"]["nonce"]}
        clock.advance(5)
        status, again, _ = await api.call("POST", f"{MACHINES}/{mid}/lease", json={"ttl": 10},
                                          headers=nonce)
        assert status == 201 and again["data"]["nonce"] == lease["data"]["nonce"]
        assert again["data"]["expires_at"] == lease["data"]["expires_at"] + 5
        clock.advance(11)
        assert (await api.call("GET", f"{MACHINES}/{mid}/lease"))[0] == 404

    async def test_mutations_are_recorded(self, api: FlyApi, sim: SimServer):
        """Every mutation received is recorded with its answer; reads are not."""
        mid = (await machine_ids(api))[0]
        await api.call("GET", f"{MACHINES}/{mid}")
        await api.call("GET", f"{MACHINES}/{mid}/events")
        assert sim.world.mutations == []
        await api.call("POST", f"{MACHINES}/{mid}/restart")
        await api.call("POST", f"{MACHINES}/{mid}/restart", auth=False)
        await api.call("POST", f"{MACHINES}/{mid}/lease", json={"ttl": 5})
        assert [(m["machine"], m["call"], m["status"]) for m in sim.world.mutations] == [
            (mid, "restart", 200), (mid, "restart", 401), (mid, "lease_acquire", 201)]
        assert {m["app"] for m in sim.world.mutations} == {APP}


class TestWait:
    """GET …/wait long-polls on the clock."""

    async def test_wait_for_started(self, api: FlyApi, clock: ManualClock):
        """After a start, wait returns once the machine is started."""
        mid = (await machine_ids(api))[0]
        await api.call("POST", f"{MACHINES}/{mid}/stop")
        clock.advance(3)
        await api.call("POST", f"{MACHINES}/{mid}/start")
        status, body, _ = await drive(clock, api.call("GET", f"{MACHINES}/{mid}/wait",
                                                      params={"state": "started"}))
        assert status == 200 and body["state"] == "started" and body["ok"] is True

    async def test_wait_times_out(self, api: FlyApi, clock: ManualClock):
        """A state that does not come answers 408 after the timeout (clock seconds)."""
        mid = (await machine_ids(api))[0]
        await api.call("POST", f"{MACHINES}/{mid}/stop")
        clock.advance(3)
        _, m, _ = await api.call("GET", f"{MACHINES}/{mid}")
        before = clock.monotonic()
        status, body, _ = await drive(clock, api.call(
            "GET", f"{MACHINES}/{mid}/wait", params={"state": "started", "timeout": "5"}))
        assert status == 408 and clock.monotonic() - before >= 5
        assert_same_shape(body, ERROR_SHAPE)
        params = {"state": "stopped", "version": m["instance_id"]}
        assert (await api.call("GET", f"{MACHINES}/{mid}/wait", params=params))[0] == 200

    @pytest.mark.parametrize(("params", "status"), [
        ({"state": "stopped"}, 400),
        ({"state": "exploded"}, 400),
        ({"state": "started", "timeout": "soon"}, 400),
        ({"state": "started", "version": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 404),
    ])
    async def test_wait_validation(self, api: FlyApi, params: dict[str, str], status: int):
        """stopped needs a version; unknown states, timeouts and versions are refused."""
        mid = (await machine_ids(api))[0]
        got, body, _ = await api.call("GET", f"{MACHINES}/{mid}/wait", params=params)
        assert got == status
        assert_same_shape(body, ERROR_SHAPE)


class TestGraphQL:
    """The releases query, errors the GraphQL way."""

    async def test_unknown_app(self, api: FlyApi):
        """An unknown app is data.app = null with an error, HTTP 200."""
        status, body, _ = await api.call("POST", "/graphql", json={
            "query": RELEASES_QUERY, "variables": {"appName": "nope", "limit": 5}})
        assert (status, body) == (200, {"data": {"app": None},
                                        "errors": [{"message": "Could not find App"}]})

    async def test_only_requested_fields(self, api: FlyApi):
        """Aliases, literals and currentReleaseUnprocessed work; unasked fields are absent."""
        query = ('{ app(name: "hotdash-api") { current: currentReleaseUnprocessed { version } '
                 "releasesUnprocessed(first: 1) { totalCount nodes { imageRef } } } }")
        _, body, _ = await api.call("POST", "/graphql", json={"query": query})
        app = body["data"]["app"]
        assert app["current"] == {"version": 2}
        assert app["releasesUnprocessed"]["totalCount"] == 2
        assert list(app["releasesUnprocessed"]["nodes"][0]) == ["imageRef"]

    async def test_bad_field(self, api: FlyApi):
        """An unknown field is a GraphQL error."""
        _, body, _ = await api.call("POST", "/graphql", json={
            "query": '{ app(name: "hotdash-api") { colour } }'})
        assert body["data"] is None and "colour" in body["errors"][0]["message"]

    async def test_bad_release_is_the_newest(self, api: FlyApi, sim: SimServer,
                                             clock: ManualClock):
        """A bad_release shows up as the next version, running then complete."""
        sim.world.inject(Fault(at_s=0, kind="bad_release", app=APP, rate=0.8))
        _, body, _ = await api.call("POST", "/graphql", json={
            "query": RELEASES_QUERY, "variables": {"appName": APP, "limit": 5}})
        nodes = body["data"]["app"]["releases"]["nodes"]
        assert [(n["version"], n["status"]) for n in nodes] == [
            (3, "running"), (2, "complete"), (1, "complete")]
        clock.advance(10)
        _, body, _ = await api.call("POST", "/graphql", json={
            "query": RELEASES_QUERY, "variables": {"appName": APP, "limit": 5}})
        assert body["data"]["app"]["releases"]["nodes"][0]["status"] == "complete"
        _, machines, _ = await api.call("GET", MACHINES)
        assert {m["config"]["image"] for m in machines} == {nodes[0]["imageRef"]}
        assert {m["config"]["metadata"]["fly_release_version"] for m in machines} == {"3"}


class TestLogs:
    """The logs polling API: cursor in ns, at/after semantics, instance filter, fault lines."""

    async def test_cursor(self, api: FlyApi, clock: ManualClock):
        """With next_token the page starts at that time: the last line is seen again."""
        url = f"/api/v1/apps/{APP}/logs"
        clock.advance(60)
        _, first, _ = await api.call("GET", url)
        token = first["meta"]["next_token"]
        _, again, _ = await api.call("GET", url, params={"next_token": token})
        assert again["data"][0]["id"] == first["data"][-1]["id"]
        assert again["meta"]["next_token"] == token
        clock.advance(60)
        _, later, _ = await api.call("GET", url, params={"next_token": token})
        assert len(later["data"]) > 1 and int(later["meta"]["next_token"]) > int(token)
        assert (await api.call("GET", url, params={"next_token": "yesterday"}))[0] == 400

    async def test_instance_filter_and_oom_lines(self, api: FlyApi, sim: SimServer,
                                                 clock: ManualClock):
        """instance= keeps one machine's lines; an OOM kill logs the kernel and init lines."""
        mid = (await machine_ids(api))[0]
        sim.world.inject(Fault(at_s=0, kind="oom", app=APP, machines=1, need_mb=1024))
        clock.advance(12)
        _, page, _ = await api.call("GET", f"/api/v1/apps/{APP}/logs",
                                    params={"instance": mid})
        assert {d["attributes"]["instance"] for d in page["data"]} == {mid}
        messages = [d["attributes"]["message"] for d in page["data"]]
        assert any("Out of memory: Killed process" in m for m in messages)
        assert any(m.endswith("Process appears to have been OOM killed!") for m in messages)
        assert any(d["attributes"]["meta"]["event"]["provider"] == "runner"
                   for d in page["data"])


class TestMetrics:
    """/metrics: Prometheus text format with Fly's edge and instance series."""

    async def test_parseable_and_monotonic(self, api: FlyApi, clock: ManualClock):
        """A real parser reads it; counters only go up as traffic flows."""
        clock.advance(10)
        _, text, headers = await api.call("GET", "/metrics", auth=False)
        assert headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["fly_edge_http_response_time_seconds"].type == "histogram"
        assert families["fly_instance_up"].type == "gauge"
        assert "fly_instance_exit_oom" in families

        def responses(text: str) -> dict[str, float]:
            return {m.group(1): float(m.group(2)) for m in re.finditer(
                rf'^fly_edge_http_responses_count\{{app="{APP}",status="(\d+)"\}} (\S+)$',
                text, re.M)}

        before = responses(text)
        assert before["200"] == 50.0
        clock.advance(10)
        _, text2, _ = await api.call("GET", "/metrics", auth=False)
        after = responses(text2)
        assert after["200"] == 100.0 and all(after[k] >= v for k, v in before.items())
        buckets = [float(v) for v in re.findall(
            rf'^fly_edge_http_response_time_seconds_bucket\{{app="{APP}",le="[^"]+"\}} (\S+)$',
            text2, re.M)]
        assert buckets == sorted(buckets) and buckets[-1] == 100.0
        assert len(re.findall(r"^fly_instance_up\{", text2, re.M)) == 3


class TestProxy:
    """The app's public URL through Fly's proxy: routing, latency, autostart, edge counts."""

    async def test_health_ok(self, api: FlyApi, sim: SimServer, clock: ManualClock):
        """/health answers 200 "ok" and counts at the edge."""
        status, body, _ = await drive(clock, api.call("GET", f"/apps/{APP}/health", auth=False))
        assert (status, body) == (200, "ok")
        assert sim.health_url(APP) == f"{sim.base_url}/apps/{APP}/health"
        assert (await api.call("GET", "/apps/nope/health", auth=False))[0] == 404

    async def test_latency_really_waits(self, api: FlyApi, sim: SimServer, clock: ManualClock):
        """With a latency fault the request waits on the clock before answering."""
        sim.world.inject(Fault(at_s=0, kind="latency", app=APP, p95_ms=8000))
        before = clock.monotonic()
        status, _, _ = await drive(clock, api.call("GET", f"/apps/{APP}/health", auth=False),
                                   step_s=0.1)
        assert status == 200 and clock.monotonic() - before >= 1.0

    async def test_autostart(self, api: FlyApi, sim: SimServer, clock: ManualClock):
        """With every machine stopped, a request makes the proxy start one and waits for it."""
        for mid in await machine_ids(api):
            await api.call("POST", f"{MACHINES}/{mid}/stop")
        clock.advance(3)
        status, body, _ = await drive(clock, api.call("GET", f"/apps/{APP}/health", auth=False))
        assert (status, body) == (200, "ok")
        _, machines, _ = await api.call("GET", MACHINES)
        assert sorted(m["state"] for m in machines) == ["started", "stopped", "stopped"]
        assert [m["call"] for m in sim.world.mutations] == ["stop"] * 3

    async def test_no_machine_no_autostart(self, start_sim: StartSim,
                                           session: aiohttp.ClientSession, clock: ManualClock):
        """Without autostart and no started machine the edge answers 503."""
        sim = await start_sim(make_scenario({"name": APP, "autostart": False},
                                            faults=({"at_s": 0, "kind": "crash"},)))
        api = FlyApi(session, sim)
        clock.advance(5)
        status, _, _ = await api.call("GET", f"/apps/{APP}/health", auth=False)
        assert status == 503

    async def test_watcher_partition(self, api: FlyApi, sim: SimServer,
                                     session: aiohttp.ClientSession, clock: ManualClock):
        """Under watcher_partition the watcher's requests fail at the connection level."""
        sim.world.inject(Fault(at_s=0, kind="watcher_partition", until_s=100))
        edge_before = sum(sim.world.apps[APP].responses.values())
        outcomes = []
        for _ in range(3):
            clock.advance(30)  # hang or drop is decided per 30 s window
            try:
                async with session.get(sim.health_url(APP),
                                       timeout=aiohttp.ClientTimeout(total=0.3)) as r:
                    outcomes.append(r.status)
            except aiohttp.ServerDisconnectedError:
                outcomes.append("disconnected")
            except TimeoutError:
                outcomes.append("timeout")
        assert set(outcomes) == {"disconnected", "timeout"}
        edge = sim.world.apps[APP].responses
        assert set(+edge) == {"200"} and edge["200"] > edge_before  # traffic itself is fine
        assert sim.world.healthy(APP)
        clock.advance(11)
        assert (await drive(clock, api.call("GET", f"/apps/{APP}/health", auth=False)))[0] == 200

    async def test_fly_api_down(self, api: FlyApi, sim: SimServer,
                                session: aiohttp.ClientSession, clock: ManualClock):
        """During fly_api_down the APIs answer 503 (JSON) or hang; the services are fine."""
        sim.world.inject(Fault(at_s=0, kind="fly_api_down", until_s=200))
        outcomes = []
        for _ in range(10):
            try:
                async with session.get(sim.base_url + MACHINES, headers=api.auth,
                                       timeout=aiohttp.ClientTimeout(total=0.3)) as r:
                    body = await r.json()
                    assert_same_shape(body, ERROR_SHAPE)
                    outcomes.append(r.status)
            except TimeoutError:
                outcomes.append("timeout")
        assert set(outcomes) == {503, "timeout"}
        status, _, _ = await drive(clock, api.call("GET", f"/apps/{APP}/health", auth=False))
        assert status == 200
        clock.advance(200)
        assert (await api.call("GET", MACHINES))[0] == 200


class TestSimServer:
    """The runner's interface: URLs, start/stop, the world behind it."""

    async def test_urls_and_idempotent_stop(self, start_sim: StartSim):
        """All APIs share the base URL; stop may be called twice."""
        sim = await start_sim(make_scenario())
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
        assert sim.machines_url == sim.api_url == sim.base_url
        assert sim.metrics_url == f"{sim.base_url}/metrics"
        assert sim.token == "sim-token" and sim.world.t() == 0.0
        await sim.stop()
        await sim.stop()

    async def test_stop_releases_waiting_requests(self, start_sim: StartSim,
                                                  session: aiohttp.ClientSession):
        """A request hanging on the world (wait long-poll) ends when the server stops."""
        sim = await start_sim(make_scenario())
        api = FlyApi(session, sim)
        mid = sim.world.machine_ids(APP)[0]
        waiting = asyncio.ensure_future(api.call("GET", f"{MACHINES}/{mid}/wait",
                                                 params={"state": "suspended"}))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await sim.stop()
        status, _, _ = await asyncio.wait_for(waiting, 5)
        assert status == 408
