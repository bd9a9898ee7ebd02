"""HttpProbe against real sockets: an aiohttp test server, a raw TCP server, a closed port."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.test_utils import TestServer

from hotdash_watch.clock import SystemClock
from hotdash_watch.probes.base import FailureKind, Observation
from hotdash_watch.probes.http import HttpProbe, _classify, redact_url

TIMEOUT_S = 0.3  # for the tests that time out; they pass it explicitly
OK_TIMEOUT_S = 5.0  # the others: never reached by a local answer, even on a loaded machine
BIG = 5 * 1024 * 1024

RELEASE = web.AppKey("release", asyncio.Event)
ENTERED = web.AppKey("entered", asyncio.Event)


# --- the target ---------------------------------------------------------------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    headers = {"Location": "http://nonexistent.invalid/elsewhere"} if 300 <= code < 400 else None
    return web.Response(status=code, text=f"status {code}", headers=headers)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(text="ok")


async def _hang(request: web.Request) -> web.Response:
    request.app[ENTERED].set()
    await request.app[RELEASE].wait()  # set only when the fixture tears down
    return web.Response(text="too late")


async def _trickle(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(b"x" * 10)
    await request.app[RELEASE].wait()
    assert request.transport is not None
    request.transport.close()
    return resp


async def _reset(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(b"x" * 10)
    assert request.transport is not None
    request.transport.close()
    return resp


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"a" * (BIG - 6) + b"MARKER")


async def _method(request: web.Request) -> web.Response:
    return web.Response(text=f"method={request.method}")


@pytest.fixture
async def target(aiohttp_server) -> AsyncIterator[TestServer]:
    app = web.Application()
    app[RELEASE] = asyncio.Event()
    app[ENTERED] = asyncio.Event()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow/{ms}", _slow)
    app.router.add_get("/hang", _hang)
    app.router.add_get("/trickle", _trickle)
    app.router.add_get("/reset", _reset)
    app.router.add_get("/big", _big)
    app.router.add_route("*", "/method", _method)
    server = await aiohttp_server(app)
    yield server
    app[RELEASE].set()  # let parked handlers finish so the server closes at once


@pytest.fixture
async def garbage_url() -> AsyncIterator[str]:
    """A raw TCP server that reads the request, answers non-HTTP bytes and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"\x00\x01\x02 this is not HTTP at all \xff\xfe\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    server.close()
    await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class FakeClock:
    """``monotonic()`` returns the scripted values in order; ``timestamp()`` is fixed."""

    rate = 1.0

    def __init__(self, monotonic: list[float], timestamp: float = 1_767_225_600.0) -> None:
        self._mono: Iterator[float] = iter(monotonic)
        self._ts = timestamp

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._ts, UTC)

    def timestamp(self) -> float:
        return self._ts

    def monotonic(self) -> float:
        return next(self._mono)

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("a probe never sleeps")


def _key(host: str = "svc.example", port: int = 443) -> ConnectionKey:
    return ConnectionKey(host, port, True, True, None, None, None)


# --- the tests ----------------------------------------------------------------------------------


class TestHttpProbe:
    def probe(self, session, url: str, **kw) -> HttpProbe:
        kw.setdefault("clock", SystemClock())
        kw.setdefault("timeout_s", OK_TIMEOUT_S)
        return HttpProbe("app", "health", url, session=session, **kw)

    async def test_ok(self, target, session):
        """A 200 with the expected body is ok, with status, latency and the clock's timestamp."""
        clock = FakeClock([10.0, 10.042], timestamp=1234.5)
        obs = await self.probe(session, str(target.make_url("/ok")), clock=clock).run()
        assert obs == Observation(
            "app", "health", at=1234.5, ok=True, latency_ms=pytest.approx(42.0), status=200
        )
        assert obs.failure is None and not obs.watcher_side and not obs.over_budget

    async def test_ok_real_clock_latency(self, target, session):
        """With the system clock a fast local answer has a small positive latency."""
        obs = await self.probe(session, str(target.make_url("/ok")), expect_body="ok").run()
        assert obs.ok and obs.status == 200
        assert obs.latency_ms is not None and 0 < obs.latency_ms < OK_TIMEOUT_S * 1000

    async def test_5xx(self, target, session):
        """A 503 is an HTTP_5XX service failure that still records status and latency."""
        obs = await self.probe(session, str(target.make_url("/status/503"))).run()
        assert not obs.ok and obs.failure is FailureKind.HTTP_5XX and not obs.watcher_side
        assert obs.status == 503 and obs.latency_ms is not None
        assert obs.detail == "HTTP 503"

    async def test_4xx(self, target, session):
        """A 404 is an HTTP_4XX failure with detail 'HTTP 404'."""
        obs = await self.probe(session, str(target.make_url("/status/404"))).run()
        assert not obs.ok and obs.failure is FailureKind.HTTP_4XX
        assert obs.status == 404 and obs.latency_ms is not None and obs.detail == "HTTP 404"

    async def test_expected_4xx_is_ok(self, target, session):
        """A 4xx listed in expect_status is a good answer."""
        obs = await self.probe(
            session, str(target.make_url("/status/401")), expect_status=(200, 401)
        ).run()
        assert obs.ok and obs.status == 401 and obs.failure is None

    async def test_redirect_not_followed(self, target, session):
        """A 302 to another host is not followed and is a BODY failure 'unexpected status 302'."""
        obs = await self.probe(session, str(target.make_url("/status/302"))).run()
        assert not obs.ok and obs.failure is FailureKind.BODY and not obs.watcher_side
        assert obs.status == 302 and obs.latency_ms is not None
        assert obs.detail == "unexpected status 302"

    async def test_expected_redirect_is_ok(self, target, session):
        """A 302 listed in expect_status is ok and still not followed."""
        obs = await self.probe(
            session, str(target.make_url("/status/302")), expect_status={302}
        ).run()
        assert obs.ok and obs.status == 302

    async def test_unexpected_2xx(self, target, session):
        """A 204 when only 200 is expected is a BODY failure naming the status."""
        obs = await self.probe(session, str(target.make_url("/status/204"))).run()
        assert obs.failure is FailureKind.BODY and obs.detail == "unexpected status 204"

    async def test_expecting_5xx_is_refused(self, session):
        """Listing a 5xx in expect_status is refused at construction: a 5xx is always a failure."""
        with pytest.raises(ValueError, match="5xx"):
            self.probe(session, "http://127.0.0.1/", expect_status=(200, 503))

    async def test_body_mismatch(self, target, session):
        """A 200 whose body lacks expect_body is a BODY failure quoting the expected text."""
        obs = await self.probe(session, str(target.make_url("/ok")), expect_body="healthy").run()
        assert not obs.ok and obs.failure is FailureKind.BODY and not obs.watcher_side
        assert obs.status == 200 and obs.latency_ms is not None
        assert obs.detail == "body does not contain 'healthy'"

    async def test_big_body_is_capped(self, target, session):
        """A 5 MB body is read only up to max_body_bytes, so a marker at its end is not seen."""
        url = str(target.make_url("/big"))
        assert (await self.probe(session, url, timeout_s=5.0).run()).ok
        obs = await self.probe(session, url, expect_body="MARKER", max_body_bytes=1024).run()
        assert obs.failure is FailureKind.BODY and obs.status == 200
        obs = await self.probe(session, url, expect_body="aaaa", max_body_bytes=1024).run()
        assert obs.ok

    async def test_method(self, target, session):
        """The configured method is the one sent."""
        obs = await self.probe(
            session, str(target.make_url("/method")), method="post", expect_body="method=POST"
        ).run()
        assert obs.ok, obs.detail

    async def test_hang_times_out(self, target, session):
        """A target that never answers is a TIMEOUT within timeout_s, without latency or status."""
        t0 = time.monotonic()
        obs = await self.probe(session, str(target.make_url("/hang")), timeout_s=TIMEOUT_S).run()
        elapsed = time.monotonic() - t0
        assert not obs.ok and obs.failure is FailureKind.TIMEOUT and not obs.watcher_side
        assert obs.latency_ms is None and obs.status is None
        assert obs.detail == f"timeout after {TIMEOUT_S} s"
        assert TIMEOUT_S * 0.9 <= elapsed < OK_TIMEOUT_S  # it gave up; it did not hang

    async def test_slow_beyond_timeout(self, target, session):
        """An answer slower than timeout_s is a TIMEOUT."""
        obs = await self.probe(session, str(target.make_url("/slow/1000")),
                               timeout_s=TIMEOUT_S).run()
        assert obs.failure is FailureKind.TIMEOUT and obs.latency_ms is None

    async def test_trickle_times_out(self, target, session):
        """A body that stops half-way is a TIMEOUT within timeout_s, with the status recorded."""
        t0 = time.monotonic()
        obs = await self.probe(session, str(target.make_url("/trickle")),
                               timeout_s=TIMEOUT_S).run()
        elapsed = time.monotonic() - t0
        assert not obs.ok and obs.failure is FailureKind.TIMEOUT
        assert obs.status == 200 and obs.latency_ms is None
        assert elapsed < OK_TIMEOUT_S  # it gave up; it did not wait for the rest

    async def test_reset_mid_body(self, target, session):
        """A connection closed mid-body is a CONNECT service failure without latency."""
        obs = await self.probe(session, str(target.make_url("/reset"))).run()
        assert not obs.ok and obs.failure is FailureKind.CONNECT and not obs.watcher_side
        assert obs.latency_ms is None and obs.status == 200
        assert obs.detail == "response body cut short"

    async def test_garbage(self, garbage_url, session):
        """Non-HTTP bytes from the target are a CONNECT failure: 'malformed HTTP response'."""
        obs = await self.probe(session, garbage_url).run()
        assert not obs.ok and obs.failure is FailureKind.CONNECT and not obs.watcher_side
        assert obs.status is None and obs.latency_ms is None
        assert obs.detail == "malformed HTTP response"

    async def test_connection_refused(self, closed_port, session):
        """A closed port is a CONNECT service failure 'connection refused'."""
        obs = await self.probe(session, f"http://127.0.0.1:{closed_port}/").run()
        assert not obs.ok and obs.failure is FailureKind.CONNECT and not obs.watcher_side
        assert obs.status is None and obs.latency_ms is None
        assert obs.detail == "connection refused"

    async def test_dns_failure(self, session):
        """An unresolvable host is a watcher-side DNS failure."""
        obs = await self.probe(session, "http://nonexistent.invalid/").run()
        assert not obs.ok and obs.failure is FailureKind.DNS and obs.watcher_side
        assert obs.status is None and obs.latency_ms is None
        assert obs.detail == "name resolution failed"

    async def test_invalid_url_is_watcher_side_and_redacted(self, session):
        """An invalid URL is a WATCHER failure whose detail leaks no credentials or query."""
        obs = await self.probe(session, "http://user:s3cret@[::1/health?token=abc123").run()
        assert not obs.ok and obs.failure is FailureKind.WATCHER and obs.watcher_side
        assert "InvalidUrlClientError" in obs.detail
        assert "s3cret" not in obs.detail and "abc123" not in obs.detail

    async def test_non_http_scheme_is_watcher_side(self, session):
        """A non-HTTP scheme is a WATCHER failure naming the exception type."""
        obs = await self.probe(session, "ftp://127.0.0.1/file?token=abc").run()
        assert obs.failure is FailureKind.WATCHER and obs.watcher_side
        assert obs.detail == "probe error (NonHttpUrlClientError)"

    async def test_unexpected_exception_is_watcher_side(self, target):
        """An unexpected exception (a closed session) is a WATCHER failure naming its type."""
        session = aiohttp.ClientSession()
        await session.close()
        obs = await self.probe(session, str(target.make_url("/ok"))).run()
        assert obs.failure is FailureKind.WATCHER and obs.watcher_side
        assert obs.detail == "probe error (RuntimeError)"

    async def test_over_budget_scripted_clock(self, target, session):
        """A good answer slower than the budget is ok but over_budget, with the exact wording."""
        clock = FakeClock([100.0, 100.812])
        obs = await self.probe(
            session, str(target.make_url("/ok")), clock=clock, latency_budget_ms=500
        ).run()
        assert obs.ok and obs.over_budget and obs.failure is None
        assert obs.latency_ms == pytest.approx(812.0)
        assert obs.detail == "over budget: 812 ms > 500 ms"

    async def test_over_budget_real_slow(self, target, session):
        """A real 150 ms answer against a 20 ms budget is ok and over_budget."""
        obs = await self.probe(
            session, str(target.make_url("/slow/150")), latency_budget_ms=20, timeout_s=2.0
        ).run()
        assert obs.ok and obs.over_budget and obs.status == 200
        assert obs.latency_ms is not None and obs.latency_ms >= 140
        assert obs.detail.startswith("over budget: ") and obs.detail.endswith(" ms > 20 ms")

    async def test_within_budget(self, target, session):
        """A good answer within the budget is ok and not over_budget."""
        clock = FakeClock([5.0, 5.1])
        obs = await self.probe(
            session, str(target.make_url("/ok")), clock=clock, latency_budget_ms=500
        ).run()
        assert obs.ok and not obs.over_budget and obs.detail == ""

    async def test_failure_is_never_over_budget(self, target, session):
        """A slow failing answer is graded by its failure, not flagged over_budget."""
        clock = FakeClock([0.0, 2.0])
        obs = await self.probe(
            session, str(target.make_url("/status/500")), clock=clock, latency_budget_ms=500
        ).run()
        assert obs.failure is FailureKind.HTTP_5XX and not obs.over_budget
        assert obs.latency_ms == pytest.approx(2000.0)

    async def test_cancel_propagates(self, target, session):
        """Cancelling the task running run() during /hang raises CancelledError out of run()."""
        probe = self.probe(session, str(target.make_url("/hang")), timeout_s=10.0)
        task = asyncio.create_task(probe.run())
        await asyncio.wait_for(target.app[ENTERED].wait(), 2.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    @pytest.mark.parametrize(
        ("exc", "kind", "detail"),
        [
            (
                aiohttp.ClientConnectorError(_key(), OSError(errno.ENETUNREACH, "x")),
                FailureKind.NO_ROUTE,
                "network unreachable",
            ),
            (
                aiohttp.ClientConnectorError(_key(), OSError(errno.EHOSTUNREACH, "x")),
                FailureKind.NO_ROUTE,
                "host unreachable",
            ),
            (
                aiohttp.ClientConnectorError(_key(), socket.gaierror(socket.EAI_NONAME, "x")),
                FailureKind.DNS,
                "name resolution failed",
            ),
            (
                aiohttp.ClientConnectorDNSError(_key(), socket.gaierror(socket.EAI_AGAIN, "x")),
                FailureKind.DNS,
                "name resolution failed",
            ),
            (
                aiohttp.ClientConnectorError(_key(), TimeoutError(errno.ETIMEDOUT, "x")),
                FailureKind.TIMEOUT,
                "connect timed out",
            ),
            (
                aiohttp.ClientConnectorCertificateError(
                    _key(), ssl.SSLCertVerificationError("certificate has expired")
                ),
                FailureKind.CONNECT,
                "TLS error (ClientConnectorCertificateError)",
            ),
            (aiohttp.ServerDisconnectedError(), FailureKind.CONNECT, "server disconnected"),
            (
                aiohttp.ClientOSError(errno.ECONNRESET, "x"),
                FailureKind.CONNECT,
                "connection reset",
            ),
            (aiohttp.SocketTimeoutError(), FailureKind.TIMEOUT, "timeout after 5.0 s"),
            (ValueError("http://u:pw@h/?q=1"), FailureKind.WATCHER, "probe error (ValueError)"),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
    )
    def test_classify_by_type(self, exc, kind, detail):
        """Exceptions not reproducible on loopback are classified by type and errno alone."""
        assert _classify(exc, 5.0) == (kind, detail)

    def test_redaction(self, session):
        """URLs shown by the probe carry no credentials, query or fragment."""
        url = "https://bot:pw@svc.example:8443/health?token=abc#frag"
        assert redact_url(url) == "https://svc.example:8443/health"
        assert "pw" not in repr(self.probe(session, url)) and "abc" not in repr(
            self.probe(session, url)
        )
