"""FlyClient under faults: a scripted server on a real socket answers each path from a script.

Each test scripts the replies of the paths it uses (the last reply repeats), then checks what
the client raised or returned, how many requests the server counted, what the clock was asked
to sleep (the clock records sleeps and returns at once), and that no error path leaks the token
(``assert_leaks_no_secret``: not in ``str``/``repr`` of the error or its cause, nor in any
structlog entry).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from hotdash_watch.fly import (
    FlyClient,
    FlyError,
    FlyMalformed,
    FlyNotFound,
    FlyRateLimited,
    FlyRejected,
    FlyUnauthorized,
    FlyUnavailable,
    LeaseHeld,
    LogFollower,
)
from hotdash_watch.fly.retry import RetryPolicy, call_with_retry
from tests.contract.test_fly_client import AUTH, TOKEN, RecordingClock
from tests.support.fixtures import load

APP = "hotdash-api"
MID = "6e82d47a1c9058"
MACHINES = f"/v1/apps/{APP}/machines"
MACHINE = f"{MACHINES}/{MID}"
LOGS = f"/api/v1/apps/{APP}/logs"
SECRET = TOKEN.get_secret_value()

LogEntries = list[MutableMapping[str, Any]]


@dataclass
class Reply:
    """One scripted answer; ``hang`` never answers (until the test ends)."""

    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]


class ScriptedFly:
    """Answers ``(method, path)`` with its scripted replies in order; the last one repeats."""

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], list[Reply]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.requests: list[Request] = []
        self.release = asyncio.Event()
        self.url = ""

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.scripts[(method, path)] = list(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path)
        self.calls[key] += 1
        self.requests.append(Request(request.method, request.path, dict(request.query)))
        assert request.headers.get("Authorization") == AUTH
        replies = self.scripts.get(key)
        if not replies:
            return web.json_response({"error": f"no script for {key}"}, status=599)
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.hang:
            await self.release.wait()
        headers = {"fly-request-id": f"req-{sum(self.calls.values())}", **reply.headers}
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=headers)
        return web.json_response(reply.json, status=reply.status, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def fly(aiohttp_server) -> AsyncIterator[ScriptedFly]:
    fake = ScriptedFly()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.release.set()  # let hung handlers finish so the server closes at once


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def make_client(session, clock, fly) -> Callable[..., FlyClient]:
    def make(**kw: Any) -> FlyClient:
        kw.setdefault("timeout_s", 2.0)
        url = kw.pop("url", fly.url)
        return FlyClient(session, kw.pop("clock", clock), token=TOKEN, machines_url=url,
                         api_url=url, prometheus_url=f"{url}/prometheus/hotdash", **kw)

    return make


@pytest.fixture
def client(make_client) -> FlyClient:
    return make_client()


@pytest.fixture
def captured() -> Iterator[LogEntries]:
    with structlog.testing.capture_logs() as entries:
        yield entries


def assert_leaks_no_secret(exc: BaseException | None, entries: LogEntries) -> None:
    """The token (or its header form) is in no error text or repr, cause included, nor logs."""
    texts = [repr(entries)]
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts += [str(exc), repr(exc), repr(getattr(exc, "__dict__", {}))]
        exc = exc.__cause__ or exc.__context__
    for text in texts:
        assert SECRET not in text
        assert AUTH not in text


def machine_json(**overrides: Any) -> dict[str, Any]:
    m = load("machines-list.json")[0]
    m.update(overrides)
    return m


def retries(entries: LogEntries) -> list[MutableMapping[str, Any]]:
    return [e for e in entries if e["event"] == "fly_call_retry"]


class TestRetries:
    async def test_429_honours_retry_after(self, fly, client, clock, captured):
        """A 429 with Retry-After: 7 waits 7 s (not the short backoff), then succeeds."""
        fly.on("GET", MACHINE, Reply(429, {"error": "rate limited"}, headers={"Retry-After": "7"}),
               Reply(200, machine_json()))
        m = await client.get_machine(APP, MID)
        assert m.id == MID
        assert clock.slept == [7.0]
        assert fly.calls["GET", MACHINE] == 2
        (entry,) = retries(captured)
        assert {k: entry[k] for k in ("app", "machine", "call", "attempt", "status", "wait_s")} == {
            "app": APP, "machine": MID, "call": "get_machine", "attempt": 1, "status": 429,
            "wait_s": 7.0}
        assert_leaks_no_secret(None, captured)

    async def test_rate_limited_error_carries_retry_after(self, make_client, fly, captured):
        """When 429s outlast the attempts, FlyRateLimited carries the last Retry-After."""
        fly.on("GET", MACHINES, Reply(429, {"error": "slow down"}, headers={"Retry-After": "2"}))
        with pytest.raises(FlyRateLimited) as info:
            await make_client(attempts=2).list_machines(APP)
        assert info.value.retry_after == 2.0 and info.value.retryable
        assert fly.calls["GET", MACHINES] == 2
        assert_leaks_no_secret(info.value, captured)

    async def test_burst_of_500s_then_success(self, fly, client, clock, captured):
        """Three 500s then a 200 succeed on the fourth attempt after growing jittered waits."""
        fly.on("GET", MACHINE, *[Reply(500, {"error": "internal"})] * 3, Reply(200, machine_json()))
        assert (await client.get_machine(APP, MID)).id == MID
        assert fly.calls["GET", MACHINE] == 4
        assert len(clock.slept) == 3
        for n, wait in enumerate(clock.slept):
            ceiling = 0.2 * 2**n
            assert ceiling / 2 <= wait <= ceiling
        assert [e["attempt"] for e in retries(captured)] == [1, 2, 3]
        assert_leaks_no_secret(None, captured)

    async def test_500_forever(self, fly, client, captured):
        """A 500 on every attempt raises FlyUnavailable after 4 attempts, naming the call."""
        fly.on("POST", f"{MACHINE}/restart", Reply(500, {"error": "flyd is sad"}))
        with pytest.raises(FlyUnavailable) as info:
            await client.restart(APP, MID)
        assert fly.calls["POST", f"{MACHINE}/restart"] == 4
        exc = info.value
        assert (exc.status, exc.call, exc.app, exc.machine) == (500, "restart", APP, MID)
        assert exc.request_id == "req-4"
        assert str(exc) == (
            f"restart of machine {MID} in app {APP} failed: HTTP 500: flyd is sad")
        assert_leaks_no_secret(exc, captured)

    async def test_retry_after_past_deadline_gives_up(self, make_client, fly, clock, captured):
        """A Retry-After longer than the call's deadline is not waited out."""
        fly.on("GET", MACHINES, Reply(503, {"error": "later"}, headers={"Retry-After": "120"}))
        with pytest.raises(FlyUnavailable) as info:
            await make_client(deadline_s=30).list_machines(APP)
        assert fly.calls["GET", MACHINES] == 1 and clock.slept == []
        assert info.value.retry_after == 120.0
        assert_leaks_no_secret(info.value, captured)

    async def test_hung_connection_times_out(self, make_client, fly, captured):
        """A server that never answers gives FlyUnavailable after the attempts time out."""
        fly.on("GET", MACHINES, Reply(hang=True))
        with pytest.raises(FlyUnavailable) as info:
            await make_client(timeout_s=0.2, attempts=2).list_machines(APP)
        assert fly.calls["GET", MACHINES] == 2
        assert "no answer within 0.2 s" in str(info.value)
        assert info.value.maybe_applied and info.value.status is None
        assert isinstance(info.value.__cause__, TimeoutError)
        assert_leaks_no_secret(info.value, captured)

    async def test_connection_refused(self, make_client, captured):
        """A closed port gives FlyUnavailable after every attempt, from a connector error."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(FlyUnavailable) as info:
            await make_client(url=f"http://127.0.0.1:{port}", attempts=2).list_machines(APP)
        assert "could not connect" in str(info.value) and not info.value.maybe_applied
        assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
        assert len(retries(captured)) == 1
        assert_leaks_no_secret(info.value, captured)


class TestNoRetry:
    @pytest.mark.parametrize(
        "reply",
        [Reply(200, text="{not json"), Reply(200, {"machines": []}),
         Reply(200, [{"id": 7, "state": ["started"]}])],
        ids=["not-json", "not-an-array", "wrong-types"],
    )
    async def test_malformed(self, fly, client, reply, captured):
        """A body that is not the JSON expected raises FlyMalformed at once."""
        fly.on("GET", MACHINES, reply)
        with pytest.raises(FlyMalformed) as info:
            await client.list_machines(APP)
        assert fly.calls["GET", MACHINES] == 1 and not info.value.retryable
        assert_leaks_no_secret(info.value, captured)

    async def test_machine_vanishes_before_restart(self, fly, client, captured):
        """A machine listed, then gone when restarted, raises FlyNotFound without a retry."""
        fly.on("GET", MACHINES, Reply(200, [machine_json()]))
        fly.on("POST", f"{MACHINE}/restart", Reply(404, {"error": "machine not found"}))
        (m,) = await client.list_machines(APP)
        with pytest.raises(FlyNotFound) as info:
            await client.restart(APP, m.id)
        assert fly.calls["POST", f"{MACHINE}/restart"] == 1
        assert info.value.machine == MID and info.value.status == 404
        assert_leaks_no_secret(info.value, captured)

    async def test_lease_held_by_someone_else(self, fly, client, captured):
        """A 409 naming another lease holder raises LeaseHeld with owner and expiry, no retry."""
        fly.on("POST", f"{MACHINE}/restart", Reply(409, {
            "error": f"aborted: machine ID {MID} lease currently held by "
                     "9af60c27-ee17-55df-bb0a-4f369e59839a@tokens.fly.io, "
                     "expires at 2026-05-14T10:41:08Z"}))
        with pytest.raises(LeaseHeld) as info:
            await client.restart(APP, MID, nonce="mine")
        assert fly.calls["POST", f"{MACHINE}/restart"] == 1
        assert info.value.owner == "9af60c27-ee17-55df-bb0a-4f369e59839a@tokens.fly.io"
        assert info.value.expires_at == 1778755268.0
        assert_leaks_no_secret(info.value, captured)

    async def test_acquire_lease_conflict_old_shape(self, fly, client, captured):
        """A lease acquisition refused in the older {status, message, code} shape is LeaseHeld."""
        fly.on("POST", f"{MACHINE}/lease", Reply(409, {
            "status": "error", "message": "machine already leased", "code": "lease_conflict"}))
        with pytest.raises(LeaseHeld) as info:
            await client.acquire_lease(APP, MID)
        assert info.value.code == "lease_conflict" and info.value.owner is None
        assert fly.calls["POST", f"{MACHINE}/lease"] == 1
        assert_leaks_no_secret(info.value, captured)

    async def test_unauthorized_scrubs_echoed_token(self, fly, client, captured):
        """A 401 raises FlyUnauthorized at once; a token echoed in the body is removed."""
        fly.on("GET", MACHINES, Reply(401, {"error": f"token {AUTH} is not valid"}))
        with pytest.raises(FlyUnauthorized) as info:
            await client.list_machines(APP)
        assert fly.calls["GET", MACHINES] == 1
        assert "[REDACTED]" in str(info.value)
        assert_leaks_no_secret(info.value, captured)

    async def test_start_from_wrong_state(self, fly, client, captured):
        """A 412 "unable to start machine from current state" is a FlyConflict, not retried."""
        fly.on("POST", f"{MACHINE}/start",
               Reply(412, {"error": "unable to start machine from current state"}))
        with pytest.raises(FlyRejected) as info:
            await client.start(APP, MID)
        assert type(info.value).__name__ == "FlyConflict"
        assert fly.calls["POST", f"{MACHINE}/start"] == 1
        assert_leaks_no_secret(info.value, captured)


class TestEmptyList:
    async def test_empty_list_read_twice(self, fly, client, clock, captured):
        """An empty machine list is read a second time, a second apart, before it is believed."""
        fly.on("GET", MACHINES, Reply(200, []))
        assert await client.list_machines(APP) == []
        assert fly.calls["GET", MACHINES] == 2
        assert clock.slept == [1.0]
        assert [e["event"] for e in captured] == ["fly_machine_list_empty"]

    async def test_second_read_wins(self, fly, client):
        """When the second read finds machines, they are returned."""
        fly.on("GET", MACHINES, Reply(200, []), Reply(200, [machine_json()]))
        assert [m.id for m in await client.list_machines(APP)] == [MID]

    async def test_only_release_machines_counts_as_empty(self, fly, client):
        """A list of only release-command machines is empty for the app, and re-read too."""
        release = machine_json()
        release["config"]["metadata"]["fly_process_group"] = "fly_app_release_command"
        fly.on("GET", MACHINES, Reply(200, [release]))
        assert await client.list_machines(APP) == []
        assert fly.calls["GET", MACHINES] == 2

    async def test_confirm_empty_off(self, fly, client, clock):
        """With confirm_empty=False an empty list is believed at once."""
        fly.on("GET", MACHINES, Reply(200, []))
        assert await client.list_machines(APP, confirm_empty=False) == []
        assert fly.calls["GET", MACHINES] == 1 and clock.slept == []


class TestUpdateHazard:
    def config(self) -> dict[str, Any]:
        return machine_json()["config"]

    async def test_408_then_new_instance_returns_without_second_post(self, fly, client,
                                                                     captured):
        """After a 408, a re-read showing a new instance_id is the result: no second POST."""
        fly.on("POST", MACHINE, Reply(408, {"error": "request timeout"}))
        fly.on("GET", MACHINE, Reply(200, machine_json(instance_id="01JNEWVERSION0000000000000")))
        m = await client.update(APP, MID, config=self.config(),
                                current_version="01KKXFA4KRCN2EBW437DZKA1XF", skip_launch=False)
        assert m.instance_id == "01JNEWVERSION0000000000000"
        assert fly.calls["POST", MACHINE] == 1 and fly.calls["GET", MACHINE] == 1
        assert "fly_update_already_applied" in [e["event"] for e in captured]
        assert_leaks_no_secret(None, captured)

    async def test_408_then_same_instance_posts_again(self, fly, client):
        """After a 408, a re-read showing the old instance_id lets the update be sent again."""
        fly.on("POST", MACHINE, Reply(408, {"error": "request timeout"}),
               Reply(200, machine_json(instance_id="01JNEWVERSION0000000000000")))
        fly.on("GET", MACHINE, Reply(200, machine_json()))
        m = await client.update(APP, MID, config=self.config(),
                                current_version="01KKXFA4KRCN2EBW437DZKA1XF", skip_launch=False)
        assert m.instance_id == "01JNEWVERSION0000000000000"
        assert fly.calls["POST", MACHINE] == 2 and fly.calls["GET", MACHINE] == 1

    async def test_timeout_without_version_uses_read_baseline(self, make_client, fly):
        """Without current_version the machine is read first, so a timeout can be judged."""
        fly.on("POST", MACHINE, Reply(hang=True))
        fly.on("GET", MACHINE, Reply(200, machine_json()),
               Reply(200, machine_json(instance_id="01JNEWVERSION0000000000000")))
        m = await make_client(timeout_s=0.2).update(APP, MID, config=self.config(),
                                                    current_version=None, skip_launch=True)
        assert m.instance_id == "01JNEWVERSION0000000000000"
        assert fly.calls["POST", MACHINE] == 1 and fly.calls["GET", MACHINE] == 2

    async def test_503_is_retried_without_reread(self, fly, client):
        """A 503 (the request never reached the API) is retried without a re-read."""
        fly.on("POST", MACHINE, Reply(503, {"error": "unavailable"}),
               Reply(200, machine_json(instance_id="01JNEWVERSION0000000000000")))
        await client.update(APP, MID, config=self.config(),
                            current_version="01KKXFA4KRCN2EBW437DZKA1XF", skip_launch=False)
        assert fly.calls["POST", MACHINE] == 2 and fly.calls["GET", MACHINE] == 0


class TestLeaseRelease:
    async def test_release_failure_is_logged_not_raised(self, fly, client, captured):
        """A failing release after a successful body is logged, and the body's result stands."""
        fly.on("POST", f"{MACHINE}/lease", Reply(201, {"status": "success", "data": {
            "nonce": "n-1", "expires_at": 1762778000, "owner": "me", "version": "v"}}))
        fly.on("DELETE", f"{MACHINE}/lease", Reply(500, {"error": "nope"}))
        async with client.lease(APP, MID) as lease:
            assert lease.nonce == "n-1"
        assert fly.calls["DELETE", f"{MACHINE}/lease"] == 4
        assert [e["event"] for e in captured if e["event"].startswith("fly_lease")] == [
            "fly_lease_release_failed"]
        assert_leaks_no_secret(None, captured)

    async def test_body_error_wins_over_release_error(self, fly, client, captured):
        """When body and release both fail, the body's exception is the one raised."""
        fly.on("POST", f"{MACHINE}/lease", Reply(201, {"nonce": "n-2"}))
        fly.on("DELETE", f"{MACHINE}/lease", Reply(404, {"error": "lease not found"}))
        with pytest.raises(KeyError, match="body"):
            async with client.lease(APP, MID):
                raise KeyError("body")
        assert fly.calls["DELETE", f"{MACHINE}/lease"] == 1


    async def test_cancelled_body_still_releases(self, fly, client):
        """When the body is cancelled (daemon shutdown), the lease is still given back."""
        fly.on("POST", f"{MACHINE}/lease", Reply(201, {"nonce": "n-3"}))
        fly.on("DELETE", f"{MACHINE}/lease", Reply(200, {"status": "success"}))
        entered = asyncio.Event()

        async def body() -> None:
            async with client.lease(APP, MID):
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(body())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fly.calls["DELETE", f"{MACHINE}/lease"] == 1


class TestOddBodies:
    async def test_action_body_is_not_read(self, fly, client):
        """A successful start whose body is not JSON still succeeds: the body is not used
        (and the call is not repeated)."""
        fly.on("POST", f"{MACHINE}/start", Reply(200, text="started, I think"))
        await client.start(APP, MID)
        assert fly.calls["POST", f"{MACHINE}/start"] == 1

    async def test_wait_408_body_is_not_read(self, fly, client):
        """A 408 from wait means False whatever its body says."""
        fly.on("GET", f"{MACHINE}/wait", Reply(408, text="<html>timeout</html>"))
        assert await client.wait(APP, MID, timeout_s=30) is False
        assert fly.calls["GET", f"{MACHINE}/wait"] == 1


class TestCancellation:
    async def test_cancel_during_backoff_sends_nothing_more(self, make_client, fly):
        """Cancelling a call while it waits to retry raises CancelledError; no more requests."""
        sleeping = asyncio.Event()

        class BlockingClock(RecordingClock):
            async def sleep(self, seconds: float) -> None:
                sleeping.set()
                await asyncio.Event().wait()

        fly.on("GET", MACHINES, Reply(503, {"error": "busy"}))
        task = asyncio.create_task(make_client(clock=BlockingClock()).list_machines(APP))
        await sleeping.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fly.calls["GET", MACHINES] == 1

    async def test_cancel_requested_before_attempt(self):
        """A cancellation that arrives as the backoff ends stops the loop before the next try."""
        attempts = 0

        class CancellingClock(RecordingClock):
            async def sleep(self, seconds: float) -> None:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # delivered only at the next await: the check must come first

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1  # counted before any await
            raise FlyUnavailable("busy", call="list_machines", app=APP, status=503)

        task = asyncio.create_task(call_with_retry(
            attempt, clock=CancellingClock(), policy=RetryPolicy(), call="list_machines"))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert attempts == 1


class TestLogFollower:
    @staticmethod
    def page(ids: str, token: str) -> dict[str, Any]:
        return {"data": [{"id": i, "attributes": {"timestamp": f"2025-11-10T12:31:0{n}Z",
                                                  "message": f"line {i}", "level": "info",
                                                  "instance": MID, "region": "iad"}}
                         for n, i in enumerate(ids)],
                "meta": {"next_token": token}}

    async def test_overlapping_pages_never_repeat_a_line(self, fly, client):
        """Overlapping pages give each line once; an empty page's token is not adopted."""
        fly.on("GET", LOGS, Reply(200, self.page("ABC", "t1")), Reply(200, self.page("BCD", "t2")),
               Reply(200, self.page("", "t3")), Reply(200, self.page("DE", "t4")),
               Reply(200, self.page("E", "t5")))
        follower = LogFollower(client, APP)
        got = [[line.id for line in await follower.poll()] for _ in range(5)]
        assert got == [["A", "B", "C"], ["D"], [], ["E"], []]
        tokens = [r.query.get("next_token") for r in fly.requests if r.path == LOGS]
        assert tokens == [None, "t1", "t2", "t2", "t4"]
        assert follower.next_token == "t5"

    async def test_seen_ids_are_bounded(self, fly, client):
        """Only the most recent ids are remembered; older ones are forgotten."""
        fly.on("GET", LOGS, Reply(200, self.page("ABCD", "t1")), Reply(200, self.page("A", "t2")))
        follower = LogFollower(client, APP, max_seen=2)
        assert len(await follower.poll()) == 4
        assert [line.id for line in await follower.poll()] == ["A"]

    async def test_errors_keep_the_cursor(self, fly, make_client, captured):
        """A failed poll raises and leaves the cursor where it was."""
        fly.on("GET", LOGS, Reply(200, self.page("AB", "t1")), Reply(502, text="bad gateway"))
        follower = LogFollower(make_client(attempts=1), APP, instance=MID)
        await follower.poll()
        with pytest.raises(FlyUnavailable) as info:
            await follower.poll()
        assert follower.next_token == "t1"
        assert [r.query for r in fly.requests] == [{"instance": MID},
                                                   {"next_token": "t1", "instance": MID}]
        assert_leaks_no_secret(info.value, captured)


class TestGraphqlAndPrometheus:
    async def test_graphql_server_error_is_retried(self, fly, client, captured):
        """A GraphQL internal error (HTTP 200) is FlyUnavailable and retried."""
        fly.on("POST", "/graphql", Reply(200, {"errors": [
            {"message": "internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}))
        with pytest.raises(FlyUnavailable) as info:
            await client.releases(APP)
        assert fly.calls["POST", "/graphql"] == 4
        assert_leaks_no_secret(info.value, captured)

    async def test_graphql_rejection(self, fly, client, captured):
        """A GraphQL validation error (HTTP 200) is FlyRejected, sent once."""
        fly.on("POST", "/graphql", Reply(200, {"errors": [
            {"message": "Variable $limit of type Int! was provided invalid value"}]}))
        with pytest.raises(FlyRejected) as info:
            await client.releases(APP)
        assert fly.calls["POST", "/graphql"] == 1
        assert "Variable $limit" in str(info.value)
        assert_leaks_no_secret(info.value, captured)

    @pytest.mark.parametrize(
        ("status", "kind", "calls"),
        [(400, FlyRejected, 1), (422, FlyRejected, 1), (503, FlyUnavailable, 4)],
    )
    async def test_prometheus_errors(self, fly, client, status, kind, calls, captured):
        """A Prometheus error maps by HTTP status: 400/422 rejected, 503 retried."""
        path = "/prometheus/hotdash/api/v1/query"
        fly.on("GET", path, Reply(status, {"status": "error", "errorType": "bad_data",
                                           "error": "parse error at char 5"}))
        with pytest.raises(kind) as info:
            await client.query("rate(")
        assert fly.calls["GET", path] == calls
        assert info.value.code == "bad_data" and "parse error" in str(info.value)
        assert_leaks_no_secret(info.value, captured)

    async def test_every_error_is_a_fly_error(self, fly, client):
        """Whatever goes wrong, callers can catch FlyError."""
        fly.on("GET", LOGS, Reply(200, {"data": [{"attributes": {}}]}))
        with pytest.raises(FlyError):
            await client.logs(APP)
