"""The HTTP core every Fly API surface shares: session, auth, deadlines, errors, retries.

Every call goes through one path (``FlyCore._send``): an ``Authorization`` header built from
the ``SecretStr`` token, a deadline in clock seconds, aiohttp exceptions and error statuses
turned into the ``fly.errors`` tree (chained ``from`` the cause), the body parsed into frozen
values (``fly.models``). ``_call`` wraps a request in the retry policy (``fly.retry``), which
retries ``FlyUnavailable`` only.

The token is read here only: to build the ``Authorization`` header, to scrub error texts taken
from a response (should the server echo it), and to give its values to the log pipeline's
scrubber. It is kept as a ``SecretStr`` and appears in no message, repr or log event.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import aiohttp
from pydantic import SecretStr
from yarl import URL

from hotdash_watch.clock import Clock
from hotdash_watch.fly.errors import (
    FlyError,
    FlyMalformed,
    FlyUnavailable,
    error_for_status,
    parse_error_body,
)
from hotdash_watch.fly.models import PayloadError
from hotdash_watch.fly.retry import RetryPolicy, call_with_retry
from hotdash_watch.log_output import scrubber

__all__ = [
    "MAX_BODY_BYTES",
    "NONCE_HEADER",
    "REQUEST_ID_HEADER",
    "FlyCore",
    "auth_header",
    "segment",
]

T = TypeVar("T")

NONCE_HEADER = "fly-machine-lease-nonce"
REQUEST_ID_HEADER = "fly-request-id"
#: Responses larger than this are refused as malformed (no Fly answer comes near it).
MAX_BODY_BYTES = 8 * 1024 * 1024

_MACAROON_PREFIXES = ("fm1r_", "fm1a_", "fm2_")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_REDACTED = "[REDACTED]"


def auth_header(token: SecretStr) -> str:
    """The ``Authorization`` value for ``token``.

    ``FlyV1 …`` is sent as is; a bare macaroon (``fm1r_``, ``fm1a_``, ``fm2_``) gets ``FlyV1 ``
    in front; anything else is an OAuth token and gets ``Bearer ``. A pasted ``Bearer `` scheme
    is dropped first, as fly-go does.
    """
    raw = token.get_secret_value().strip()
    if raw[:7].lower() == "bearer ":
        raw = raw[7:].strip()
    if raw.startswith("FlyV1 "):
        return raw
    if raw.startswith(_MACAROON_PREFIXES):
        return f"FlyV1 {raw}"
    return f"Bearer {raw}"


def segment(value: str, what: str) -> str:
    """``value`` as one URL path segment (an app name, a machine id); ValueError if not."""
    if not isinstance(value, str) or not _SEGMENT.match(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


def _base_url(value: str, what: str) -> URL:
    url = URL(value)
    if not url.absolute or url.scheme not in ("http", "https") or url.query_string:
        raise ValueError(f"{what} must be an absolute http(s) URL without a query")
    return url


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is larger than ``MAX_BODY_BYTES``."""
    buf = bytearray()
    while chunk := await resp.content.read(65536):
        buf += chunk
        if len(buf) > MAX_BODY_BYTES:
            return None
    return bytes(buf)


class _Redactor:
    """Replaces the token (and its parts) in text; its repr shows nothing of them."""

    __slots__ = ("values",)

    def __init__(self, token: SecretStr) -> None:
        raw = token.get_secret_value().strip()
        bare = auth_header(token).split(" ", 1)[1]
        found = {raw, bare, *(part for part in bare.split(",") if len(part) >= 8)}
        self.values = tuple(sorted((v for v in found if v), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.values:
            text = text.replace(secret, _REDACTED)
        return text

    def __repr__(self) -> str:
        return "_Redactor(...)"


class FlyCore:
    """The configuration of a Fly client and its one request path; the API surfaces build on it.

    Base URLs are configuration, so tests and the simulator point it at a local server. The
    ``session`` is the caller's (not closed here). ``timeout_s`` bounds each request in clock
    seconds (``clock.rate`` scales it to real time); ``attempts`` and ``deadline_s`` bound the
    retries of one call.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        token: SecretStr,
        machines_url: str = "https://api.machines.dev",
        api_url: str = "https://api.fly.io",
        prometheus_url: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 4,
        deadline_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(token, SecretStr):
            raise TypeError("token must be a pydantic SecretStr")
        if not token.get_secret_value().strip():
            raise ValueError("the Fly token is empty")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._session = session
        self._clock = clock
        self._token = token
        self._machines = _base_url(machines_url, "machines_url") / "v1" / "apps"
        self._api = _base_url(api_url, "api_url")
        self._prometheus = (
            _base_url(prometheus_url, "prometheus_url") if prometheus_url is not None else None
        )
        self._timeout_s = float(timeout_s)
        self._timeout = self._client_timeout(self._timeout_s)
        self._policy = RetryPolicy(attempts=attempts, deadline_s=deadline_s)
        self._rng = rng  # retry jitter; None: the module's own generator
        self._redact = _Redactor(token)
        # Defence in depth: the log pipeline's last processor scrubs these values too.
        scrubber.register(self._redact.values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(machines_url={str(self._machines.parent.parent)!r})"

    def _scrub(self, text: str) -> str:
        return self._redact(text)

    def _client_timeout(self, clock_seconds: float) -> aiohttp.ClientTimeout:
        # Times are clock seconds; on a scaled clock the real deadline is shorter.
        # ceil_threshold=inf: no rounding of the deadline up to a whole loop second.
        return aiohttp.ClientTimeout(
            total=clock_seconds / self._clock.rate, ceil_threshold=math.inf
        )

    # --- the one request path ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: URL,
        ctx: Mapping[str, Any],
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        nonce: str | None = None,
        ok: Collection[int] = range(200, 300),
        client_timeout: aiohttp.ClientTimeout | None = None,
        lease_call: bool = False,
        want_json: bool = True,
    ) -> tuple[int, Any]:
        """One request. Returns ``(status, parsed JSON or None)``; raises a ``FlyError``."""
        headers = {"Authorization": auth_header(self._token), "Accept": "application/json"}
        if nonce is not None:
            headers[NONCE_HEADER] = nonce
        timeout = client_timeout or self._timeout
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                request_id = resp.headers.get(REQUEST_ID_HEADER)
                retry_after_raw = resp.headers.get("Retry-After")
                body = await _read_capped(resp)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            # The request may have been sent and acted on: maybe_applied.
            waited = (timeout.total or 0.0) * self._clock.rate
            raise FlyUnavailable(
                f"no answer within {waited:g} s", maybe_applied=True, **ctx
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise FlyError("invalid URL", **ctx) from exc
        except aiohttp.ClientConnectorError as exc:
            # The connection was never made, so nothing was sent.
            raise FlyUnavailable(f"could not connect ({type(exc).__name__})", **ctx) from exc
        except aiohttp.ClientError as exc:
            raise FlyUnavailable(
                f"connection failed ({type(exc).__name__})", maybe_applied=True, **ctx
            ) from exc
        ctx = {**ctx, "request_id": request_id}
        if body is None:
            raise FlyMalformed(f"response larger than {MAX_BODY_BYTES} bytes", status=status, **ctx)
        if status in ok:
            # Only a 2xx body is read, and only when the call uses it: an action that
            # succeeded is not reported as malformed because of an unexpected body.
            wanted = want_json and 200 <= status < 300
            return status, self._json(body, status, ctx) if wanted else None
        text, code = parse_error_body(body)
        raise error_for_status(
            status,
            self._scrub(text),
            code=code,
            retry_after=self._retry_after(retry_after_raw),
            lease_call=lease_call,
            **ctx,
        )

    def _json(self, body: bytes, status: int, ctx: Mapping[str, Any]) -> Any:
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise FlyMalformed("response body is not JSON", status=status, **ctx) from exc

    def _retry_after(self, raw: str | None) -> float | None:
        """Retry-After in seconds: a number of seconds or an HTTP date (read against the clock)."""
        if not raw:
            return None
        try:
            seconds = float(raw)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                return None
            seconds = (when - self._clock.now()).total_seconds()
        return max(0.0, seconds) if math.isfinite(seconds) else None

    @staticmethod
    def _parse(parse: Callable[[Any], T], data: Any, ctx: Mapping[str, Any]) -> T:
        try:
            return parse(data)
        except PayloadError as exc:
            raise FlyMalformed(str(exc), **ctx) from exc

    async def _call(
        self,
        method: str,
        url: URL,
        *,
        call: str,
        app: str | None = None,
        machine: str | None = None,
        parse: Callable[[Any], T],
        **send: Any,
    ) -> T:
        """``_send`` under the retry policy, then ``parse`` the JSON body."""
        ctx = {"call": call, "app": app, "machine": machine}

        async def attempt() -> T:
            _, data = await self._send(method, url, ctx, **send)
            return self._parse(parse, data, ctx)

        return await self._retry(attempt, ctx)

    async def _retry(self, attempt: Callable[[], Awaitable[T]], ctx: Mapping[str, Any]) -> T:
        return await call_with_retry(
            attempt,
            clock=self._clock,
            policy=self._policy,
            call=ctx["call"],
            app=ctx.get("app"),
            machine=ctx.get("machine"),
            rng=self._rng,
        )
