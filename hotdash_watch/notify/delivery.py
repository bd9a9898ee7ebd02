"""What becomes of a page on its channel: the outbox's state machine as one pure function.

``decide`` takes a pending row, what its notifier answered (or ``None`` when the row was not
sent this time), what is known of its channel, the time and the retry rules, and returns the
``Transition`` to record::

    pending --delivered-----------------------------------> sent              DELIVERED
       |  --retryable failure (5xx/408/429/conn/timeout)--> pending at now    RETRY,
       |                                                     + backoff         RETRY_AFTER
       |  --permanent failure (other 4xx)-----------------> failed + a copy   REJECTED
       |                                                     on the fallback
       |                                    no fallback --> failed            UNDELIVERABLE
       |  --its page cannot be read-----------------------> failed            UNREADABLE
       |  --not sent, channel failing >= failover_after_s-> handed_over       FAILED_OVER
       |                                                     + a copy
       |                                    no fallback --> pending as it is  NO_FALLBACK
       |  --not sent, channel no longer configured--------> handed_over       UNCONFIGURED
       |                                                     + a copy
       |                                    no fallback --> pending at now     PARKED
       |                                                     + retry_max_s
       |  --not sent, nothing else applies----------------> pending as it is  WAITING

A page is never lost: every transition ends in ``sent``, in ``failed``/``handed_over`` with the
reason written down (and, when there is one, a copy queued on the fallback channel), or in
``pending`` with its next attempt at or after ``now``, or as it was. ``attempts`` counts the
times the page was sent on this channel: it grows by one per answer, never otherwise.

Backoff is exponential from ``initial_s`` to ``max_s`` with +-20 % jitter (a receiver's
Retry-After is honoured up to ``max_s``). The jitter is an argument, drawn by the caller, so
the same inputs always give the same transition. The decision reads no clock and does no I/O;
the delivery loop (``outbox.py``) carries it out and the store records it.

``Health`` is what the loop knows of its channels: a channel is broken from its first failed
attempt until its next success (a ``Breakage``), and a broken channel's fallback is the next
configured channel after it (config order, wrapping) that is not broken itself, whatever its
``min_severity``: that setting says which pages a channel gets while all is well, and a page
that cannot go where it should goes where someone will see it. ``paging_note`` is what the
next page that gets through says about breakages no page has told of yet.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hotdash_watch.model.page import OutboxRow, PageState
from hotdash_watch.notify.templates import format_duration, iso

__all__ = [
    "JITTER",
    "Answer",
    "Attempt",
    "Breakage",
    "Channel",
    "ChannelHealth",
    "Health",
    "Reason",
    "Rules",
    "Transition",
    "backoff_delay",
    "backoff_s",
    "decide",
    "failed_over",
    "paging_note",
]

JITTER = (0.8, 1.2)
"""The range the backoff's jitter factor is drawn from."""

_NOTE_DETAIL_MAX = 80


class Answer(StrEnum):
    """What a send attempt came to."""

    DELIVERED = "delivered"  # the receiver accepted the page (2xx)
    RETRYABLE = "retryable"  # 5xx, 408, 429, no connection, timeout: the same request may work
    REJECTED = "rejected"  # another 4xx: sending it again cannot help
    UNREADABLE = "unreadable"  # the row's page could not be read back, so nothing was sent


@dataclass(frozen=True, slots=True)
class Attempt:
    """The notifier's answer to one send: ``detail`` says why it failed (never a secret),
    ``retry_after`` is the receiver's Retry-After in seconds, when it gave one."""

    answer: Answer
    detail: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    """What the delivery loop knows of the row's channel at ``now``.

    ``failing_since``: when its current run of failures began (``None``: it works).
    ``fallback``: the next channel that works, which would take a copy of the page (``None``:
    there is none). ``configured``: whether the channel is still in the configuration.
    """

    configured: bool = True
    failing_since: float | None = None
    failing_detail: str = ""
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """``notify.retry_initial_s``, ``notify.retry_max_s``, ``notify.failover_after_s``."""

    initial_s: float
    max_s: float
    failover_after_s: float


class Reason(StrEnum):
    """Why a row ends where it does; see the module's diagram."""

    DELIVERED = "delivered"
    RETRY = "retry"
    RETRY_AFTER = "retry_after"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"
    UNREADABLE = "unreadable"
    FAILED_OVER = "failed_over"
    NO_FALLBACK = "no_fallback"
    UNCONFIGURED = "unconfigured"
    PARKED = "parked"
    WAITING = "waiting"

    @property
    def writes(self) -> bool:
        """Whether the row changes (``NO_FALLBACK`` and ``WAITING`` leave it as it is)."""
        return self not in (Reason.NO_FALLBACK, Reason.WAITING)


@dataclass(frozen=True, slots=True)
class Transition:
    """The row's next state. ``hand_to`` names the channel that gets a pending copy of the page
    (due at once, queued as of the row's own ``created_at``). ``detail`` says what happened;
    ``error`` is what the row records as its last error (``None`` after a delivery)."""

    reason: Reason
    state: PageState
    attempts: int
    next_attempt_at: float
    sent_at: float | None = None
    detail: str | None = None
    error: str | None = None
    hand_to: str | None = None


def backoff_s(attempt: int, initial_s: float, max_s: float, jitter: float = 1.0,
              retry_after: float | None = None) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): ``initial_s * 2**(attempt-1)``
    up to ``max_s``, times ``jitter``, never below ``initial_s`` nor above ``max_s``; at least
    the receiver's ``retry_after`` (itself capped at ``max_s``)."""
    base = min(max_s, initial_s * 2.0 ** min(max(attempt - 1, 0), 60))
    delay = min(max_s, max(initial_s, base * jitter))
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, min(max_s, retry_after))
    return delay


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random,
                  retry_after: float | None = None) -> float:
    """``backoff_s`` with the jitter drawn from ``rng`` (+-20 %)."""
    return backoff_s(attempt, initial_s, max_s, rng.uniform(*JITTER), retry_after)


def failed_over(failing_since: float | None, now: float, failover_after_s: float) -> bool:
    """Whether a channel failing since ``failing_since`` has failed long enough at ``now``
    for its pages to go elsewhere."""
    return failing_since is not None and max(0.0, now - failing_since) >= failover_after_s


def decide(row: OutboxRow, attempt: Attempt | None, channel: Channel, now: float,
           rules: Rules, *, jitter: float = 1.0) -> Transition:
    """The transition of the pending ``row`` after ``attempt`` (``None``: it was not sent this
    time) at ``now``; ``jitter`` (drawn from ``JITTER``) is read only for a retry."""
    if attempt is not None:
        return _answered(row, attempt, channel, now, rules, jitter)
    keep = Transition(Reason.WAITING, PageState.PENDING, row.attempts, row.next_attempt_at)
    if not channel.configured:
        why = f"channel {row.channel} is not configured"
        if channel.fallback is not None:
            return _handed_over(row, Reason.UNCONFIGURED, why, channel.fallback)
        if row.next_attempt_at > now:
            return keep
        return Transition(Reason.PARKED, PageState.PENDING, row.attempts, now + rules.max_s,
                          detail=why, error=f"{why}; no other working channel")
    since = channel.failing_since
    if since is None or not failed_over(since, now, rules.failover_after_s):
        return keep
    why = f"channel {row.channel} failing for {format_duration(now - since)}: " + (
        channel.failing_detail)
    if channel.fallback is None:
        return Transition(Reason.NO_FALLBACK, PageState.PENDING, row.attempts,
                          row.next_attempt_at, detail=why)
    return _handed_over(row, Reason.FAILED_OVER, why, channel.fallback)


def _answered(row: OutboxRow, attempt: Attempt, channel: Channel, now: float, rules: Rules,
              jitter: float) -> Transition:
    if attempt.answer is Answer.UNREADABLE:
        return Transition(Reason.UNREADABLE, PageState.FAILED, row.attempts,
                          row.next_attempt_at, detail=attempt.detail, error=attempt.detail)
    attempts = row.attempts + 1
    if attempt.answer is Answer.DELIVERED:
        return Transition(Reason.DELIVERED, PageState.SENT, attempts, row.next_attempt_at,
                          sent_at=now)
    if attempt.answer is Answer.RETRYABLE:
        delay = backoff_s(attempts, rules.initial_s, rules.max_s, jitter, attempt.retry_after)
        plain = backoff_s(attempts, rules.initial_s, rules.max_s, jitter)
        reason = Reason.RETRY_AFTER if delay > plain else Reason.RETRY
        return Transition(reason, PageState.PENDING, attempts, now + delay,
                          detail=attempt.detail, error=attempt.detail)
    if channel.fallback is None:
        return Transition(Reason.UNDELIVERABLE, PageState.FAILED, attempts, row.next_attempt_at,
                          detail=attempt.detail, error=attempt.detail)
    return _handed_over(row, Reason.REJECTED, attempt.detail, channel.fallback,
                        state=PageState.FAILED, attempts=attempts)


def _handed_over(row: OutboxRow, reason: Reason, why: str, to: str, *,
                 state: PageState = PageState.HANDED_OVER,
                 attempts: int | None = None) -> Transition:
    return Transition(reason, state, row.attempts if attempts is None else attempts,
                      row.next_attempt_at, detail=why, error=f"{why}; handed over to {to}",
                      hand_to=to)


# -- channel health ----------------------------------------------------------------------------


@dataclass
class Breakage:
    """A channel failing from ``since`` to ``until`` (None: still failing); ``reported``: a
    delivered page has told of it."""

    channel: str
    since: float
    detail: str
    until: float | None = None
    reported: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "since": self.since, "detail": self.detail,
                "until": self.until, "reported": self.reported}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Breakage:
        return cls(channel=str(data["channel"]), since=float(data["since"]),
                   detail=str(data.get("detail") or ""), until=data.get("until"),
                   reported=bool(data.get("reported")))


@dataclass
class ChannelHealth:
    """One channel's state: the breakage in progress (if any) and when it may be tried."""

    breakage: Breakage | None = None
    retry_at: float = 0.0

    def failing_for(self, now: float) -> float:
        return 0.0 if self.breakage is None else max(0.0, now - self.breakage.since)


class Health:
    """The health of every configured channel (in config order) and the ended breakages no
    page has told of yet. Bookkeeping only: the delivery loop logs and saves what changes."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = {name: ChannelHealth() for name in channels}
        self.ended_untold: list[Breakage] = []

    def __getitem__(self, channel: str) -> ChannelHealth:
        return self.channels[channel]

    def failed_over(self, channel: str, now: float, failover_after_s: float) -> bool:
        """Whether ``channel`` has been failing for ``failover_after_s`` at ``now``."""
        h = self.channels.get(channel)
        b = None if h is None else h.breakage
        return failed_over(None if b is None else b.since, now, failover_after_s)

    def fallback(self, channel: str) -> str | None:
        """The next configured channel after ``channel`` (config order, wrapping) that is
        not broken; the first such channel for one that is not configured."""
        names = list(self.channels)
        start = names.index(channel) + 1 if channel in names else 0
        for i in range(len(names)):
            name = names[(start + i) % len(names)]
            if name != channel and self.channels[name].breakage is None:
                return name
        return None

    def handed_to(self, now: float, failover_after_s: float) -> dict[str, str]:
        """Where each failed-over channel's pages go now."""
        out = {}
        for name in self.channels:
            if self.failed_over(name, now, failover_after_s):
                target = self.fallback(name)
                if target is not None:
                    out[name] = target
        return out

    def facts(self, channel: str) -> Channel:
        """What ``decide`` needs to know of ``channel``."""
        h = self.channels.get(channel)
        b = None if h is None else h.breakage
        return Channel(configured=h is not None,
                       failing_since=None if b is None else b.since,
                       failing_detail="" if b is None else b.detail,
                       fallback=self.fallback(channel))

    def status(self, channel: str, now: float, failover_after_s: float) -> dict[str, Any]:
        """Whether ``channel`` works, since when it is broken and whether it failed over."""
        h = self.channels[channel]
        b = h.breakage
        return {"ok": b is None, "broken_since": None if b is None else iso(b.since),
                "broken_for_s": round(h.failing_for(now), 3),
                "failed_over": self.failed_over(channel, now, failover_after_s),
                "last_error": None if b is None else b.detail}

    def failovers_in(self, now: float, failover_after_s: float) -> list[float]:
        """Seconds from ``now`` until each failing channel that has not failed over yet will."""
        untils = [h.breakage.since + failover_after_s - now for h in self.channels.values()
                  if h.breakage is not None]
        return [u for u in untils if u > 0]

    def untold(self) -> list[Breakage]:
        """Breakages no delivered page has told of yet, ended ones first."""
        live = [h.breakage for h in self.channels.values()
                if h.breakage is not None and not h.breakage.reported]
        return [*self.ended_untold, *live]

    def failed(self, channel: str, at: float, detail: str) -> bool:
        """Record a failed attempt on ``channel``; True when a breakage begins with it."""
        h = self.channels[channel]
        if h.breakage is None:
            h.breakage = Breakage(channel=channel, since=at, detail=detail)
            return True
        h.breakage.detail = detail
        return False

    def succeeded(self, channel: str, at: float, told: Sequence[Breakage]
                  ) -> tuple[Breakage | None, bool]:
        """Record a delivery on ``channel`` at ``at`` by a page that told of ``told``: the
        breakage it ends (if any), and whether anything changed."""
        changed = False
        for b in told:
            b.reported = True
            changed = True
        h = self.channels[channel]
        ended = h.breakage
        if ended is not None:
            ended.until = at
            h.breakage = None
            h.retry_at = 0.0
            if not ended.reported:
                self.ended_untold.append(ended)
            changed = True
        self.ended_untold = [b for b in self.ended_untold if not b.reported]
        return ended, changed

    def as_json(self) -> dict[str, Any]:
        return {
            "channels": {name: h.breakage.as_json() for name, h in self.channels.items()
                         if h.breakage is not None},
            "untold": [b.as_json() for b in self.ended_untold],
        }

    def restore(self, saved: Any) -> None:
        """Take up the breakages of ``as_json``'s value (of configured channels only)."""
        if not isinstance(saved, dict):
            return
        for name, data in (saved.get("channels") or {}).items():
            if name in self.channels:
                self.channels[name].breakage = Breakage.from_json(data)
        self.ended_untold = [Breakage.from_json(d) for d in saved.get("untold") or ()]


def _short(detail: str) -> str:
    return detail if len(detail) <= _NOTE_DETAIL_MAX else detail[: _NOTE_DETAIL_MAX - 3] + "..."


def paging_note(breakages: Sequence[Breakage], now: float, *, sending_on: str,
                delayed_s: float, handed_to: Mapping[str, str] | None = None) -> str | None:
    """The NOTE for a page that gets through after paging was broken (pure).

    A breakage of ``sending_on`` ends with this page; others still open say "still failing".
    ``handed_to`` names where a failed-over channel's pages go.
    """
    if not breakages:
        return None
    parts = []
    for b in breakages:
        end = b.until if b.until is not None else now
        still = b.until is None and b.channel != sending_on
        where = (handed_to or {}).get(b.channel)
        extra = ", still failing" if still else ""
        if still and where:
            extra += f", its pages go to {where}"
        parts.append(f"for {format_duration(end - b.since)} (channel {b.channel} failing since "
                     f"{iso(b.since)}: {_short(b.detail)}{extra})")
    note = "paging was broken " + " and ".join(parts)
    if delayed_s >= 1.0:
        note += f"; this page was delayed by {format_duration(delayed_s)}"
    return note
