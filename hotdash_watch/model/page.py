"""Pages in the outbox, as the store keeps them and the delivery loop reads them.

A page is queued once per channel (an ``OutboxRow``) before anything is sent. ``PageState``
says where a row stands; only ``pending`` rows are ever sent, and a row that has left
``pending`` never changes again. ``OutboxStats`` sums up what is waiting. A ``Silence`` is a
maintenance window: pages of its app queued while it is in force are kept, never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["OutboxRow", "OutboxStats", "PageState", "Silence"]


class PageState(StrEnum):
    """Where an outbox row stands. Only ``pending`` rows are ever sent."""

    PENDING = "pending"
    SENT = "sent"  # the receiver accepted it; never sent again
    FAILED = "failed"  # rejected for good (a 4xx); a copy went to the next channel if any
    SILENCED = "silenced"  # held back by an active silence: stored, visible, not sent
    HANDED_OVER = "handed_over"  # its channel kept failing; a copy went to the next channel

    @property
    def closed(self) -> bool:
        """Whether the row is done with: anything but ``pending``."""
        return self is not PageState.PENDING


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One page on one channel. ``page`` is the page's JSON (``Page.as_dict``)."""

    id: int
    key: str
    channel: str
    incident_id: str
    event: str
    severity: str
    page: dict[str, Any]
    state: PageState
    attempts: int
    next_attempt_at: float
    created_at: float
    sent_at: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Pending pages: how many, how old the oldest is (0 when none), when one is next due.

    ``next_attempt_at`` is the earliest retry time of a channel's oldest pending row (rows
    behind it wait for it), or ``None`` when nothing is pending.
    """

    depth: int
    oldest_age_s: float
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class Silence:
    """A maintenance window: pages for ``app`` (``"*"``: every app) are held back while
    ``starts_at <= now < ends_at``; ``suspend_mitigation`` asks the policy to act not either."""

    id: int
    app: str
    starts_at: float
    ends_at: float
    author: str
    reason: str
    suspend_mitigation: bool
    created_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, app: str) -> bool:
        return self.app in ("*", app)
