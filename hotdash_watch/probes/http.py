"""HTTP probe: one request to one URL, graded into an ``Observation``.

The probe never raises (except ``asyncio.CancelledError``, which must reach the daemon's shutdown).
Failures are classified from the exception *type* (and, for connector errors, from the type and
``errno`` of the underlying ``OSError``), never from message text, which differs between
platforms and aiohttp versions.

Latency is read from the daemon's ``Clock``: from just before the request is sent to the end of
reading the (capped) body. It is set whenever the service answered with a complete response,
whatever its status; it stays ``None`` for timeouts and connection failures, even when the
headers had arrived (``status`` is still recorded then, so an operator can see that the service
started to answer).
"""

from __future__ import annotations

import asyncio
import errno
import math
import socket
from collections.abc import Collection

import aiohttp
from yarl import URL

from hotdash_watch.clock import Clock
from hotdash_watch.probes.base import FailureKind, Observation

__all__ = ["HttpProbe", "redact_url"]

# aiohttp >= 3.10 raises a dedicated subclass for resolver failures; older versions raise a plain
# ClientConnectorError whose os_error is a socket.gaierror (handled below as well).
_DNS_ERROR: type[BaseException] | None = getattr(aiohttp, "ClientConnectorDNSError", None)

_NO_ROUTE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})

_ERRNO_DETAIL = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
}


def redact_url(url: str | URL) -> str:
    """``url`` without user info, query string and fragment, safe to log or show."""
    try:
        u = url if isinstance(url, URL) else URL(url)
        if u.absolute:
            u = u.with_user(None)
        return str(u.with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<invalid url>"


def _errno_text(err: OSError | None) -> str:
    if err is None or err.errno is None:
        return "unknown error"
    return _ERRNO_DETAIL.get(err.errno) or errno.errorcode.get(err.errno, f"errno {err.errno}")


def _classify(exc: Exception, timeout_s: float) -> tuple[FailureKind, str]:
    """Map an exception raised while probing to a failure kind and a short detail."""
    # ServerTimeoutError (and its ConnectionTimeoutError / SocketTimeoutError subclasses) is an
    # asyncio.TimeoutError, which is the builtin TimeoutError on Python 3.11.
    if isinstance(exc, asyncio.TimeoutError):
        return FailureKind.TIMEOUT, f"timeout after {timeout_s} s"
    if _DNS_ERROR is not None and isinstance(exc, _DNS_ERROR):
        return FailureKind.DNS, "name resolution failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        # TLS handshake / certificate failure (ClientConnectorCertificateError,
        # ClientConnectorSSLError). This is arguable: it may be the watcher's CA bundle, but far
        # more often it is the service's expired or mismatched certificate, which its users hit
        # too, so we count it as the service's CONNECT failure rather than a watcher-side one.
        return FailureKind.CONNECT, f"TLS error ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return FailureKind.DNS, "name resolution failed"
        if isinstance(os_error, TimeoutError):  # the OS gave up on the connect (ETIMEDOUT)
            return FailureKind.TIMEOUT, "connect timed out"
        if os_error.errno in _NO_ROUTE_ERRNOS:
            return FailureKind.NO_ROUTE, _errno_text(os_error)
        return FailureKind.CONNECT, _errno_text(os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return FailureKind.CONNECT, "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FailureKind.CONNECT, "response body cut short"
    if isinstance(exc, aiohttp.ClientOSError):
        return FailureKind.CONNECT, _errno_text(exc)
    if isinstance(exc, aiohttp.ClientConnectionError):
        # ClientConnectionResetError, ServerFingerprintMismatch, other connection-level trouble.
        return FailureKind.CONNECT, f"connection error ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientResponseError):
        # With allow_redirects=False and no raise_for_status this is only raised when the
        # response could not be parsed (not HTTP, header line too long, ...): the service's fault.
        return FailureKind.CONNECT, "malformed HTTP response"
    if isinstance(exc, aiohttp.InvalidURL):
        return FailureKind.WATCHER, f"invalid URL ({type(exc).__name__})"
    # Anything else is a bug or misconfiguration on our side; never put str(exc) here, it may
    # carry the full URL with credentials or query string.
    return FailureKind.WATCHER, f"probe error ({type(exc).__name__})"


class HttpProbe:
    """Probe one URL with one HTTP request through a shared ``aiohttp.ClientSession``.

    ``expect_status`` lists the statuses that count as a good answer; a 5xx is always a failure
    (``HTTP_5XX``), so listing one is refused. ``expect_body``, when given, must be contained in
    the first ``max_body_bytes`` of the body, decoded as UTF-8 with replacement. Redirects are not
    followed: a 3xx is an unexpected status unless listed in ``expect_status``.
    """

    __slots__ = (
        "_budget_ms",
        "_clock",
        "_expect_body",
        "_expect_status",
        "_max_body",
        "_method",
        "_session",
        "_timeout",
        "_timeout_s",
        "_url",
        "app",
        "name",
        "url",
    )

    def __init__(
        self,
        app: str,
        name: str,
        url: str,
        *,
        session: aiohttp.ClientSession,
        clock: Clock,
        timeout_s: float = 5.0,
        expect_status: Collection[int] = (200,),
        expect_body: str | None = None,
        latency_budget_ms: float | None = None,
        method: str = "GET",
        max_body_bytes: int = 65536,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        if latency_budget_ms is not None and not latency_budget_ms > 0:
            raise ValueError(f"latency_budget_ms must be > 0, got {latency_budget_ms}")
        bad = sorted(s for s in expect_status if s >= 500)
        if bad:
            raise ValueError(f"a 5xx status is always a failure, cannot expect {bad}")
        self.app = app
        self.name = name
        self.url = url
        self._session = session
        self._clock = clock
        self._timeout_s = float(timeout_s)
        # ceil_threshold=inf: aiohttp otherwise rounds deadlines of timeouts > 5 s up to the next
        # whole loop second, which could overrun timeout_s by up to a second.
        # The timeout is in clock seconds (the same unit as latency): on a scaled clock the
        # real deadline is shorter by the clock's rate.
        self._timeout = aiohttp.ClientTimeout(
            total=self._timeout_s / clock.rate, ceil_threshold=math.inf
        )
        self._expect_status = frozenset(expect_status)
        self._expect_body = expect_body
        self._budget_ms = None if latency_budget_ms is None else float(latency_budget_ms)
        self._method = method.upper()
        self._max_body = max_body_bytes
        # Parse once; an invalid URL is reported by run() as a WATCHER failure, not raised here.
        try:
            self._url: URL | str = URL(url)
        except (ValueError, TypeError):
            self._url = url

    def __repr__(self) -> str:
        return f"HttpProbe({self.app!r}, {self.name!r}, {redact_url(self.url)!r})"

    async def _read_body(self, content: aiohttp.StreamReader) -> bytes:
        """Read at most ``max_body_bytes`` of the body; the rest is never loaded."""
        limit = self._max_body
        chunk = await content.read(limit)
        if not chunk or content.at_eof() or len(chunk) >= limit:
            return chunk
        buf = bytearray(chunk)
        while len(buf) < limit:
            chunk = await content.read(limit - len(buf))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    async def run(self) -> Observation:
        clock = self._clock
        status: int | None = None
        try:
            start = clock.monotonic()
            async with self._session.request(
                self._method, self._url, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                body = await self._read_body(resp.content)
            latency_ms = (clock.monotonic() - start) * 1000.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # run() turns every failure into data
            failure, detail = _classify(exc, self._timeout_s)
            return Observation(
                self.app,
                self.name,
                clock.timestamp(),
                False,
                status=status,
                failure=failure,
                detail=detail,
            )
        return self._grade(status, body, latency_ms, clock.timestamp())

    def _grade(self, status: int, body: bytes, latency_ms: float, at: float) -> Observation:
        failure: FailureKind | None = None
        detail = ""
        if status >= 500:
            failure, detail = FailureKind.HTTP_5XX, f"HTTP {status}"
        elif status not in self._expect_status:
            if status >= 400:
                failure, detail = FailureKind.HTTP_4XX, f"HTTP {status}"
            else:
                failure, detail = FailureKind.BODY, f"unexpected status {status}"
        elif self._expect_body is not None and (
            self._expect_body not in body.decode("utf-8", errors="replace")
        ):
            failure, detail = FailureKind.BODY, f"body does not contain {self._expect_body!r}"
        if failure is not None:
            return Observation(
                self.app, self.name, at, False, latency_ms, status, failure, detail=detail
            )
        budget = self._budget_ms
        if budget is not None and latency_ms > budget:
            return Observation(
                self.app,
                self.name,
                at,
                True,
                latency_ms,
                status,
                over_budget=True,
                detail=f"over budget: {latency_ms:.0f} ms > {budget:g} ms",
            )
        return Observation(self.app, self.name, at, True, latency_ms, status)
