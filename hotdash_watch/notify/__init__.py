"""Paging: the runbook's templates, one module per channel, and the durable outbox.

::

    Incident --templates.render--> Page --Outbox.page--> store (one outbox row per channel)
                                                            |
                               Outbox.run / deliver_due  <--+
                                   |  per channel, in order, retry with backoff,
                                   |  fail over to the next channel when one keeps failing
                                   v
                  Notifier.send: webhook | slack | pagerduty | alertmanager

Each channel's module holds its settings model (``SlackChannel``...) and its notifier, an
``HttpNotifier``. ``CHANNELS`` is the explicit registry: channel kind -> notifier class, each
built from its kind's settings (``channels.AnyChannel`` is their union). ``build_notifiers``
builds the configured channels in config order (the failover order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotdash_watch.notify.alertmanager import AlertmanagerNotifier
from hotdash_watch.notify.base import (
    ChannelBase,
    HttpNotifier,
    Notifier,
    Page,
    PageEvent,
    SendResult,
)
from hotdash_watch.notify.pagerduty import PagerDutyNotifier
from hotdash_watch.notify.slack import SlackNotifier
from hotdash_watch.notify.webhook import WebhookNotifier

if TYPE_CHECKING:  # the settings import this package (for the channels' models)
    from hotdash_watch.config.settings import Settings

__all__ = [
    "CHANNELS",
    "ChannelBase",
    "HttpNotifier",
    "Notifier",
    "Page",
    "PageEvent",
    "SendResult",
    "build_notifier",
    "build_notifiers",
]

CHANNELS: dict[str, type[HttpNotifier]] = {
    WebhookNotifier.kind: WebhookNotifier,
    SlackNotifier.kind: SlackNotifier,
    PagerDutyNotifier.kind: PagerDutyNotifier,
    AlertmanagerNotifier.kind: AlertmanagerNotifier,
}
"""Channel kind -> notifier class taking that kind's settings model."""


def build_notifier(channel: ChannelBase) -> Notifier:
    """The notifier of one configured channel."""
    cls = CHANNELS[channel.kind]
    notifier: Notifier = cls(channel)
    return notifier


def build_notifiers(settings: Settings) -> list[Notifier]:
    """Every configured channel's notifier, in config order (the failover order)."""
    return [build_notifier(c) for c in settings.notify.channels]
