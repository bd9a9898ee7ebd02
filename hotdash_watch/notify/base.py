"""What every paging channel shares: the ``Page``, the ``Notifier`` protocol, ``SendResult``,
``ChannelBase`` (the settings every channel has) and ``HttpNotifier`` (the base of every
channel's notifier).

A ``Page`` is channel-independent: the runbook's subject, body and fields for one incident
event, with the evidence numbers behind it. A notifier turns it into its provider's payload
(``build_payload``: pure, golden-tested) and sends it (``send``: thin I/O). ``HttpNotifier``
holds what the channels have in common (name, severity filter, timeout, the secrets to redact,
the POST); a channel's module adds only its settings model, its endpoint, its secrets and its
payload.

``send`` never raises, except ``asyncio.CancelledError``: every failure comes back as a
``SendResult`` whose ``retryable`` says what the outbox does next, as alertmanager's
``Notifier.Notify`` returns ``(recoverable, err)`` and ``Retrier.Check`` classifies statuses:

::

    ok           2xx
    retryable    5xx, 408, 429, connection refused/reset, server disconnected, timeout
    permanent    any other status (400, 401, 403, 404, 3xx...), an invalid URL, a bug while
                 building the request: recorded as failed, then the page fails over

``SendResult.detail`` is safe to log, store and page: it never holds the URL (which may carry
a token), a routing key or an HMAC key. It is built from the status, the exception *type* and
the OS error text only, and then passed through the channel's ``Redactor`` (the same idea as
alertmanager's ``RedactURL``), should a receiver echo a secret back in its error body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import aiohttp
from pydantic import Field, SecretStr

from hotdash_watch.clock import Clock
from hotdash_watch.config.sections import Seconds, _Section
from hotdash_watch.log_output import scrubber
from hotdash_watch.model.severity import Severity

__all__ = [
    "NOTE_PREFIX",
    "ChannelBase",
    "HttpNotifier",
    "Notifier",
    "Page",
    "PageEvent",
    "Payload",
    "Redactor",
    "SendResult",
    "check_secret_url",
    "encode_json",
    "post_json",
    "required",
    "retryable_status",
]

REDACTED = "<redacted>"
NOTE_PREFIX = "NOTE: "
#: Longest piece of a receiver's error body quoted in ``SendResult.detail``.
MAX_DETAIL_BODY = 200

Payload = dict[str, Any] | list[dict[str, Any]]
"""A provider's request body as JSON values (Alertmanager takes a list of alerts)."""


class PageEvent(StrEnum):
    """Why a page is sent; the middle part of its dedup key."""

    OPENED = "opened"
    SEVERITY_CHANGED = "severity_changed"
    STATUS = "status"
    UPDATE = "update"
    RESOLVED = "resolved"
    WATCHER_SIDE = "watcher_side"
    VETOED = "vetoed"
    ACTION = "action"  # a mitigation ended (ok, failed), or a person is needed


@dataclass(frozen=True, slots=True)
class Page:
    """One page, independent of the channel it goes out on.

    ``key`` is the dedup key ``"{incident_id}:{event}:{n}"``: the outbox stores one row per
    (key, channel), so the same key is never sent twice on one channel. ``body`` is the plain
    text of the runbook's template (``fields`` in order, then the note line); ``evidence`` the
    numbers behind the IMPACT line. Times are epoch seconds (UTC). ``previous_severity`` is set
    on a severity change (Alertmanager resolves the alert of the old severity).
    """

    key: str
    incident_id: str
    app: str
    event: PageEvent
    severity: Severity
    status: str
    subject: str
    body: str
    fields: dict[str, str]
    evidence: dict[str, Any]
    created_at: float
    note: str | None = None
    opened_at: float | None = None
    resolved_at: float | None = None
    previous_severity: Severity | None = None

    @property
    def is_resolution(self) -> bool:
        return self.event is PageEvent.RESOLVED

    def as_dict(self) -> dict[str, Any]:
        """The page as JSON values (the generic webhook's body, the outbox row's ``page``)."""
        out = asdict(self)
        out["event"] = self.event.value
        out["severity"] = self.severity.value
        out["previous_severity"] = (None if self.previous_severity is None
                                    else self.previous_severity.value)
        out["fields"] = dict(self.fields)
        out["evidence"] = dict(self.evidence)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Page:
        """The inverse of ``as_dict`` (reads an outbox row back)."""
        prev = data.get("previous_severity")
        return cls(
            key=data["key"], incident_id=data["incident_id"], app=data["app"],
            event=PageEvent(data["event"]), severity=Severity(data["severity"]),
            status=data["status"], subject=data["subject"], body=data["body"],
            fields=dict(data["fields"]), evidence=dict(data.get("evidence") or {}),
            created_at=float(data["created_at"]), note=data.get("note"),
            opened_at=data.get("opened_at"), resolved_at=data.get("resolved_at"),
            previous_severity=None if prev is None else Severity(prev),
        )

    def with_note(self, note: str) -> Page:
        """This page with ``note`` added (after any note it has): a NOTE line ends the body."""
        from dataclasses import replace

        combined = note if not self.note else f"{self.note}; {note}"
        base = self.body
        if self.note:
            base = base.removesuffix(f"\n\n{NOTE_PREFIX}{self.note}")
        fields = {**self.fields, "NOTE": combined}
        return replace(self, note=combined, fields=fields,
                       body=f"{base}\n\n{NOTE_PREFIX}{combined}")


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one delivery attempt; ``detail`` never holds a secret or the URL.

    ``retry_after`` is the receiver's Retry-After (seconds), when it gave one with a 429/503.
    """

    ok: bool
    retryable: bool
    status: int | None
    detail: str
    retry_after: float | None = field(default=None, compare=False)

    @property
    def permanent(self) -> bool:
        """Failed, and retrying the same request cannot help (fail over instead)."""
        return not self.ok and not self.retryable


@runtime_checkable
class Notifier(Protocol):
    """One configured paging channel.

    ``build_payload`` is pure (same page, same payload). ``send`` is thin I/O over the caller's
    session, bounded by the channel's timeout in clock seconds, and returns a ``SendResult``;
    it never raises except ``asyncio.CancelledError``.
    """

    kind: ClassVar[str]
    name: str
    min_severity: Severity

    def build_payload(self, page: Page) -> Payload: ...

    async def send(
        self, page: Page, session: aiohttp.ClientSession, clock: Clock
    ) -> SendResult: ...


def required(value: SecretStr | None, channel: str, what: str) -> str:
    """The secret's text; ``ValueError`` naming the channel (never the value) when missing."""
    if value is None:
        raise ValueError(f"channel {channel!r} needs {what}")
    return value.get_secret_value()


class ChannelBase(_Section):
    """One paging channel: the keys every kind has. Each kind adds its own (its URL, keys).

    Secrets (URL, routing key, HMAC key) are never logged or paged.
    """

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                      description="label of the channel in metrics and the API")
    kind: str = Field(description="which channel this is (each kind's model narrows it)")
    min_severity: Literal["SEV-1", "SEV-2", "SEV-3"] = Field(
        "SEV-3", description="pages below this severity are not sent on this channel")
    timeout_s: Seconds = Field(10.0, gt=0, description="time limit of one delivery")


def check_secret_url(value: SecretStr | None) -> SecretStr | None:
    """``value`` unchanged when it is an http(s) URL with a host (or None); ``ValueError`` if
    not, without the URL in the message (a webhook URL is a credential)."""
    if value is None:
        return value
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host (the value is not "
                         "shown: it is a secret)")
    return value


def retryable_status(status: int) -> bool:
    """Whether a non-2xx status may succeed later: 5xx, 408 (timeout) and 429 (rate limit)."""
    return status >= 500 or status in (408, 429)


def encode_json(payload: Payload) -> bytes:
    """The exact bytes sent (and signed): compact, keys sorted, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


class Redactor:
    """Replaces a channel's secret values in text; its repr shows none of them.

    The secrets of a channel are its URL (a Slack or webhook URL is a credential), the URL's
    path, query and password (and the Basic-auth header made of it), the PagerDuty routing
    key and the HMAC key.
    """

    __slots__ = ("values",)

    def __init__(self, *, url: str | None = None, others: Iterable[str | None] = ()) -> None:
        found: set[str] = set()
        if url:
            found.add(url)
            found.add(url.rstrip("/"))
            parts = urlsplit(url)
            for piece in (parts.path, parts.query, parts.password, parts.fragment):
                if piece and len(piece) >= 8:
                    found.add(piece)
            if parts.password:  # aiohttp sends it as Basic auth: a receiver may echo that
                found.add(parts.password)
                basic = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
                found.add(base64.b64encode(basic.encode()).decode())
            # Each path segment that looks like a token (Slack: T000/B000/XXXX).
            found.update(seg for seg in parts.path.split("/") if len(seg) >= 12)
        found.update(v for v in others if v)
        self.values = tuple(sorted((v for v in found if len(v) >= 4), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.values:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return "Redactor(...)"


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    line = " ".join(text.split())
    return line[:MAX_DETAIL_BODY - 3] + "..." if len(line) > MAX_DETAIL_BODY else line


def _os_reason(exc: BaseException) -> str:
    """The OS's words for the error behind an aiohttp connection error, from its errno (the
    exception's own text may name the host and port)."""
    for candidate in (getattr(exc, "os_error", None), exc.__cause__, exc):
        if isinstance(candidate, OSError) and candidate.errno:
            return os.strerror(candidate.errno)
    return ""


def describe_exception(exc: BaseException, timeout_s: float) -> tuple[bool, str]:
    """(retryable, detail) for an exception raised while sending; from its type, not its text."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError included
        return True, f"timeout after {timeout_s:g} s ({name})"
    if isinstance(exc, aiohttp.InvalidURL):  # its text is the URL: never shown
        return False, f"invalid URL ({name})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True, f"server disconnected ({name})"
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        reason = _os_reason(exc)
        return True, f"connection failed{': ' + reason if reason else ''} ({name})"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return True, f"transport error ({name})"
    return False, f"cannot send ({name})"


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    clock: Clock,
    redact: Redactor,
) -> SendResult:
    """POST ``body`` as JSON and classify the outcome; never raises but CancelledError.

    The deadline is ``timeout_s`` clock seconds (``clock.rate`` turns it into real time).
    Redirects are not followed: a webhook that redirects is misconfigured (and following it
    would hand the body to another host).
    """
    timeout = aiohttp.ClientTimeout(total=timeout_s / clock.rate)
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json", **headers},
            timeout=timeout, allow_redirects=False,
        ) as resp:
            status = resp.status
            if 200 <= status < 300:
                return SendResult(True, False, status, f"HTTP {status}")
            raw = await resp.content.read(4 * MAX_DETAIL_BODY)
            excerpt = redact(_first_line(raw))
            detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
            return SendResult(False, retryable_status(status), status, detail,
                              retry_after=_retry_after(resp))
    except asyncio.CancelledError:
        raise
    except Exception as e:
        retryable, detail = describe_exception(e, timeout_s)
        return SendResult(False, retryable, None, redact(detail))


async def deliver(
    page: Page,
    session: aiohttp.ClientSession,
    url: str,
    *,
    build: Callable[[Page], Payload],
    timeout_s: float,
    clock: Clock,
    redact: Redactor,
    headers: Callable[[Page, bytes], Mapping[str, str]] | None = None,
) -> SendResult:
    """Every channel's ``send``: build the JSON body (and headers) purely, then ``post_json``.

    A page that cannot be turned into a request is a permanent failure, never an exception.
    """
    try:
        body = encode_json(build(page))
        extra = headers(page, body) if headers is not None else {}
    except Exception as e:
        return SendResult(False, False, None, f"cannot build the request ({type(e).__name__})")
    return await post_json(session, url, body, headers=extra, timeout_s=timeout_s, clock=clock,
                           redact=redact)


class HttpNotifier(ABC):
    """A paging channel that POSTs JSON: the part every channel's notifier shares.

    A channel's class sets ``kind``, calls ``super().__init__`` with where to POST (``url``),
    the URL as configured when it is a credential (``secret_url``) and its other secret values
    (``secrets``), and implements ``build_payload``; ``build_headers`` adds headers of its own.
    Every secret given here is kept out of ``SendResult.detail`` and out of the log.
    """

    kind: ClassVar[str]

    def __init__(self, channel: ChannelBase, *, url: str, secret_url: str | None,
                 secrets: Iterable[str | None] = ()) -> None:
        self.name: str = channel.name
        self.min_severity = Severity(channel.min_severity)
        self.timeout_s: float = channel.timeout_s
        self._url = url
        self._redact = Redactor(url=secret_url, others=secrets)
        scrubber.register(self._redact.values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @abstractmethod
    def build_payload(self, page: Page) -> Payload:
        """The provider's request body for ``page`` (pure)."""

    def build_headers(self, page: Page, body: bytes) -> Mapping[str, str]:
        """Headers of this channel for ``body`` (pure); none by default."""
        return {}

    async def send(self, page: Page, session: aiohttp.ClientSession, clock: Clock) -> SendResult:
        return await deliver(page, session, self._url, build=self.build_payload,
                             headers=self.build_headers, timeout_s=self.timeout_s, clock=clock,
                             redact=self._redact)
