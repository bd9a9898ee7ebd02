"""Paging: the runbook's templates, one module per channel, and the durable outbox.

::

    Incident --templates.render--> Page --Outbox.page--> store (one outbox row per channel)
                                                            |
                               Outbox.run / deliver_due  <--+
                                   |  per channel, in order, retry with backoff,
                                   |  fail over to the next channel when one keeps failing
                                   v
                  Notifier.send: webhook | slack | pagerduty | alertmanager

``CHANNELS`` is the explicit registry: channel kind -> notifier class, each built from its
``ChannelSettings``. ``build_notifiers`` builds the configured channels in config order (the
failover order).
"""

from __future__ import annotations

from hotdash_watch.config import ChannelSettings, Settings
from hotdash_watch.notify.alertmanager import AlertmanagerNotifier
from hotdash_watch.notify.base import Notifier, Page, PageEvent, SendResult
from hotdash_watch.notify.pagerduty import PagerDutyNotifier
from hotdash_watch.notify.slack import SlackNotifier
from hotdash_watch.notify.webhook import WebhookNotifier

__all__ = [
    "CHANNELS",
    "Notifier",
    "Page",
    "PageEvent",
    "SendResult",
    "build_notifier",
    "build_notifiers",
]

CHANNELS: dict[str, type] = {
    WebhookNotifier.kind: WebhookNotifier,
    SlackNotifier.kind: SlackNotifier,
    PagerDutyNotifier.kind: PagerDutyNotifier,
    AlertmanagerNotifier.kind: AlertmanagerNotifier,
}
"""Channel kind (``ChannelSettings.kind``) -> notifier class taking the ``ChannelSettings``."""


def build_notifier(channel: ChannelSettings) -> Notifier:
    """The notifier of one configured channel."""
    cls = CHANNELS[channel.kind]
    notifier: Notifier = cls(channel)
    return notifier


def build_notifiers(settings: Settings) -> list[Notifier]:
    """Every configured channel's notifier, in config order (the failover order)."""
    return [build_notifier(c) for c in settings.notify.channels]
