"""Errors raised by the Fly client. Whether a call may be retried is part of the type.

::

    FlyError                      any failed Fly call (app, machine, call, status, request_id)
    ├── FlyUnavailable            retryable: connect error, timeout, 5xx, 408, 429 (retry_after)
    │   └── FlyRateLimited        429
    ├── FlyRejected               a 4xx that retrying cannot fix (400, 422, ...)
    │   ├── FlyNotFound           404: the app or machine is gone
    │   ├── LeaseHeld             409: someone else holds the machine's lease (owner, expires_at)
    │   ├── FlyConflict           other 409/412: stale current_version, wrong machine state
    │   └── FlyUnauthorized       401/403: the token is wrong or lacks the right
    └── FlyMalformed              the answer is not the JSON shape expected (watcher-side)

Only this package turns aiohttp exceptions into these, chaining the cause with ``from``. The
retry policy (``retry.py``) retries ``FlyUnavailable`` and nothing else.

Messages name the call, the machine and the app, e.g. ``restart of machine 148e21ea7e0389 in
app hotdash-api failed: HTTP 503: <error text>``. They never carry the token, the
Authorization header or a URL query string; the error text taken from a response body is
shortened, and the client removes the token from it should the server echo it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from hotdash_watch.fly.models import parse_time

__all__ = [
    "FlyConflict",
    "FlyError",
    "FlyMalformed",
    "FlyNotFound",
    "FlyRateLimited",
    "FlyRejected",
    "FlyUnauthorized",
    "FlyUnavailable",
    "LeaseHeld",
    "error_for_status",
    "parse_error_body",
    "shorten",
]

#: Longest piece of a response body quoted in an error message.
MAX_ERROR_TEXT = 300

# "aborted: machine ID 2879325b42d318 lease currently held by
#  9af60c27-...@tokens.fly.io, expires at 2026-05-14T10:41:08Z" (as the Machines API words it).
_LEASE_HELD = re.compile(
    r"\bheld by\s+(?P<owner>[^\s,]+)(?:,?\s*expires at\s+(?P<exp>\d[\dT:.+\-Zz]*))?",
    re.IGNORECASE,
)
_LEASE_WORDS = re.compile(r"\blease\b.*\bheld\b|\bleased\b", re.IGNORECASE | re.DOTALL)


class FlyError(Exception):
    """A Fly API call failed; the base of every error this package raises."""

    #: Whether the retry policy may try the call again.
    retryable: bool = False

    def __init__(
        self,
        detail: str,
        *,
        call: str,
        app: str | None = None,
        machine: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.detail = detail
        self.call = call
        self.app = app
        self.machine = machine
        self.status = status
        self.request_id = request_id
        #: The machine-readable code from the error body (``status``/``code``), if any.
        self.code = code
        super().__init__(self._message())

    def _message(self) -> str:
        what = self.call
        if self.machine:
            what += f" of machine {self.machine}"
        if self.app:
            what += f" in app {self.app}"
        detail = f"HTTP {self.status}: {self.detail}" if self.status is not None else self.detail
        return f"{what} failed: {detail}"

    def __str__(self) -> str:
        return self._message()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(call={self.call!r}, app={self.app!r}, "
            f"machine={self.machine!r}, status={self.status!r}, "
            f"request_id={self.request_id!r}, detail={self.detail!r})"
        )


class FlyUnavailable(FlyError):
    """Fly could not answer now (connect error, timeout, 5xx, 408, 429); trying again may work.

    ``maybe_applied`` is True when the request may have reached Fly and taken effect (a timeout
    after sending, a 408/504, a dropped connection): a non-idempotent call must re-read before
    it is repeated.
    """

    retryable = True

    def __init__(
        self,
        detail: str,
        *,
        retry_after: float | None = None,
        maybe_applied: bool = False,
        **context: Any,
    ) -> None:
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
        super().__init__(detail, **context)


class FlyRateLimited(FlyUnavailable):
    """Fly answered 429 Too Many Requests."""


class FlyRejected(FlyError):
    """Fly refused the request with a 4xx that cannot succeed by sending it again."""


class FlyNotFound(FlyRejected):
    """404: the app, the machine or the lease does not exist (any more)."""


class LeaseHeld(FlyRejected):
    """409: the machine is leased by someone else (usually a running deploy): do not act.

    ``owner`` and ``expires_at`` (epoch seconds) are parsed from the error text when present.
    """

    def __init__(
        self,
        detail: str,
        *,
        owner: str | None = None,
        expires_at: float | None = None,
        **context: Any,
    ) -> None:
        self.owner = owner
        self.expires_at = expires_at
        super().__init__(detail, **context)


class FlyConflict(FlyRejected):
    """409/412 other than a lease: stale ``current_version``, or the machine's state forbids it."""


class FlyUnauthorized(FlyRejected):
    """401/403: the token is invalid, expired, or not allowed to do this."""


class FlyMalformed(FlyError):
    """The answer was not the JSON shape expected: a watcher-side error, not retried."""


def parse_error_body(body: bytes | str) -> tuple[str, str | None]:
    """The error text and machine-readable code of an error response body.

    Reads the three shapes Fly uses: ``{"error", "status"}``, ``{"message"}``
    (preferred when present, as fly-go does) and ``{"status": "error", "message", "code"}``;
    Prometheus' ``{"status": "error", "errorType", "error"}`` too. A body that is not JSON is
    quoted as text. The text is collapsed to one line and shortened.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    code: str | None = None
    message = text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        msg = data.get("message")
        err = data.get("error")
        if isinstance(msg, str) and msg:
            message = msg
        elif isinstance(err, str) and err:
            message = err
        elif isinstance(err, Mapping) and isinstance(err.get("message"), str):
            message = err["message"]
        elif isinstance(data.get("errors"), list):  # GraphQL
            message = (
                "; ".join(str(e.get("message")) for e in data["errors"] if isinstance(e, Mapping))
                or message
            )
        status = data.get("status")
        for candidate in (data.get("code"), data.get("errorType"), status):
            if isinstance(candidate, str) and candidate and candidate != "error":
                code = candidate
                break
    return shorten(message), code


def shorten(text: str) -> str:
    """``text`` on one line, at most ``MAX_ERROR_TEXT`` characters."""
    text = " ".join(text.split())
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return text or "(empty body)"


def parse_lease_holder(text: str) -> tuple[str | None, float | None]:
    """``(owner, expires_at)`` from a "lease currently held by X, expires at T" error text."""
    m = _LEASE_HELD.search(text)
    if m is None:
        return None, None
    owner = m.group("owner").strip() or None
    expires_at: float | None = None
    if m.group("exp"):
        try:
            expires_at = parse_time(m.group("exp").rstrip("."))
        except ValueError:
            expires_at = None
    return owner, expires_at


def is_lease_conflict(text: str) -> bool:
    """Whether a 409 error text says the machine is leased by someone else."""
    return bool(_LEASE_WORDS.search(text))


def error_for_status(
    status: int,
    text: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
    lease_call: bool = False,
    **context: Any,
) -> FlyError:
    """The error for an HTTP ``status`` whose body said ``text``.

    ``context`` is the call, app, machine and request_id. ``lease_call`` marks a lease
    acquisition, where any 409 means someone else holds the lease.
    """
    ctx: dict[str, Any] = {"status": status, "code": code, **context}
    if status == 429:
        return FlyRateLimited(text, retry_after=retry_after, **ctx)
    if status in (408, 504):
        return FlyUnavailable(text, retry_after=retry_after, maybe_applied=True, **ctx)
    if status >= 500:
        # A 502/503 comes from a proxy in front of the API, which did not pass it on.
        return FlyUnavailable(text, retry_after=retry_after, **ctx)
    if status in (401, 403):
        return FlyUnauthorized(text, **ctx)
    if status == 404:
        return FlyNotFound(text, **ctx)
    if status == 409 and (lease_call or is_lease_conflict(text)):
        owner, expires_at = parse_lease_holder(text)
        return LeaseHeld(text, owner=owner, expires_at=expires_at, **ctx)
    if status in (409, 412):
        return FlyConflict(text, **ctx)
    if 400 <= status < 500:
        return FlyRejected(text, **ctx)
    # 1xx/3xx: redirects are not followed, and no Fly endpoint answers with one.
    return FlyMalformed(f"unexpected status: {text}", **ctx)
