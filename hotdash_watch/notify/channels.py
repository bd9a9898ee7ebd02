"""The settings of one paging channel, whatever its kind: a union of the kinds' models.

Each kind's model lives beside its notifier (``SlackChannel`` in slack.py, and so on) and
shares ``ChannelBase``'s keys (name, kind, min_severity, timeout_s). ``AnyChannel`` is the
union of them, told apart by ``kind``: ``[notify]`` lists its channels as ``AnyChannel``, so
a table is validated against its own kind's model only, and an error names the kind's keys.

The union has a module of its own because the configuration imports it: what that loads is
the four channel modules and the package's ``__init__`` (the registry of their notifiers),
none of which imports the settings; the templates and the outbox, which do, stay unloaded, so
config and notify never import each other in a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, get_args

from pydantic import Field, TypeAdapter

from hotdash_watch.notify.alertmanager import AlertmanagerChannel
from hotdash_watch.notify.base import ChannelBase
from hotdash_watch.notify.pagerduty import PagerDutyChannel
from hotdash_watch.notify.slack import SlackChannel
from hotdash_watch.notify.webhook import WebhookChannel

__all__ = ["CHANNEL_MODELS", "AnyChannel", "ChannelSettings", "parse_channel"]

AnyChannel = Annotated[
    WebhookChannel | SlackChannel | PagerDutyChannel | AlertmanagerChannel,
    Field(discriminator="kind", title="channel"),
]
"""One ``[[notify.channels]]`` table, validated by the model its ``kind`` names."""

CHANNEL_MODELS: dict[str, type[ChannelBase]] = {
    m.model_fields["kind"].default: m for m in get_args(get_args(AnyChannel)[0])
}
"""Channel kind -> its settings model, in the union's order."""

_ADAPTER: TypeAdapter[ChannelBase] = TypeAdapter(AnyChannel)


def parse_channel(data: Mapping[str, Any]) -> ChannelBase:
    """The settings model of ``data["kind"]`` built from ``data``; ``ValidationError`` if
    invalid (``hotdash_watch.config.describe_errors`` words it)."""
    return _ADAPTER.validate_python(data)


def ChannelSettings(**data: Any) -> ChannelBase:
    """One channel's settings from keyword arguments, as the model of its ``kind``:
    ``ChannelSettings(name="pager", kind="webhook", url=...)`` is a ``WebhookChannel``.

    Named like a model because callers build channels with it (``hotdash_watch.config``
    exports it); code that knows the kind can build that kind's model directly.
    """
    return parse_channel(data)
