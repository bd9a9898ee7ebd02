"""The outbox's Prometheus collectors: pages by channel and outcome, the outbox's depth and
oldest age, how long each channel has been failing, and how long pages take to get through.

One set per registry (``NotifyMetrics.for_registry``), every label set made at start so each
series exists at zero before its first page.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["NotifyMetrics", "Outcome"]

_DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Outcome(StrEnum):
    """What happened to a page on a channel; the ``outcome`` label of pages_total."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SILENCED = "silenced"
    HANDED_OVER = "handed_over"


class NotifyMetrics:
    """The outbox's collectors on a registry passed in; label sets made per channel at start."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, NotifyMetrics] = (
        weakref.WeakKeyDictionary())

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pages = Counter(
            "hotdash_watch_pages_total",
            "Page deliveries by channel and outcome (sent, retry, failed, silenced, "
            "handed_over).",
            ["channel", "outcome"], registry=registry,
        )
        self.depth = Gauge(
            "hotdash_watch_outbox_depth", "Pages waiting in the outbox (all channels).",
            registry=registry,
        )
        self.oldest_age = Gauge(
            "hotdash_watch_outbox_oldest_age_seconds",
            "Age of the oldest page waiting in the outbox (0 when empty).", registry=registry,
        )
        self.broken = Gauge(
            "hotdash_watch_paging_broken_seconds",
            "How long the channel has been failing (0 while it works).",
            ["channel"], registry=registry,
        )
        self.delivery = Histogram(
            "hotdash_watch_page_delivery_seconds",
            "Time from a page being queued to the channel accepting it.",
            ["channel"], buckets=_DELIVERY_BUCKETS, registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> NotifyMetrics:
        """The collectors of ``registry``, made on first use (one set per registry)."""
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found

    def init_channels(self, channels: Sequence[str]) -> None:
        """Create each channel's label sets so every series exists at zero."""
        for name in channels:
            for outcome in Outcome:
                self.pages.labels(name, outcome.value)
            self.broken.labels(name).set(0)
            self.delivery.labels(name)
