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
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

from hotdash_watch.model.page import OutboxRow, PageState
from hotdash_watch.notify.templates import format_duration

__all__ = [
    "JITTER",
    "Answer",
    "Attempt",
    "Channel",
    "Reason",
    "Rules",
    "Transition",
    "backoff_delay",
    "backoff_s",
    "decide",
    "failed_over",
]

JITTER = (0.8, 1.2)
"""The range the backoff's jitter factor is drawn from."""


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
