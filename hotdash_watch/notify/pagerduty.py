"""PagerDuty Events API v2: one alert per incident, deduplicated by the incident ID.

Every page but the resolution is a ``trigger`` with ``dedup_key`` = incident ID: PagerDuty
folds status updates and severity changes into the open alert. The resolution page sends
``resolve`` with the same key. Severity maps SEV-1/2/3 to critical/error/warning; the runbook
fields go into ``custom_details``. PagerDuty answers 202 when it accepted the event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from hotdash_watch.model.severity import Severity
from hotdash_watch.notify.base import (
    ChannelBase,
    HttpNotifier,
    Page,
    Payload,
    check_secret_url,
    required,
)

__all__ = ["DEFAULT_URL", "PagerDutyChannel", "PagerDutyNotifier"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024  # PagerDuty's limit on payload.summary
_SEVERITY = {Severity.SEV1: "critical", Severity.SEV2: "error", Severity.SEV3: "warning"}


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


class PagerDutyChannel(ChannelBase):
    """PagerDuty Events API v2: one alert per incident."""

    kind: Literal["pagerduty"] = Field("pagerduty", description="PagerDuty Events v2")
    routing_key: SecretStr = Field(description="the service's integration key")
    url: SecretStr | None = Field(
        None, description=f"the events endpoint (unset: {DEFAULT_URL})")

    _url = field_validator("url")(check_secret_url)


class PagerDutyNotifier(HttpNotifier):
    """Sends Events v2 to PagerDuty (or to ``url``, e.g. a local receiver in tests)."""

    kind: ClassVar[str] = "pagerduty"

    def __init__(self, channel: PagerDutyChannel) -> None:
        self._routing_key = required(channel.routing_key, channel.name, "routing_key")
        url = None if channel.url is None else channel.url.get_secret_value()
        super().__init__(channel, url=DEFAULT_URL if url is None else url, secret_url=url,
                         secrets=[self._routing_key])

    def build_payload(self, page: Page) -> Payload:
        summary = page.subject if not page.note else f"{page.subject} — {page.note}"
        if len(summary) > SUMMARY_MAX:
            summary = summary[: SUMMARY_MAX - 1] + "…"
        return {
            "routing_key": self._routing_key,
            "event_action": "resolve" if page.is_resolution else "trigger",
            "dedup_key": page.incident_id,
            "payload": {
                "summary": summary,
                "source": page.app,
                "severity": _SEVERITY[page.severity],
                "timestamp": _timestamp(page.created_at),
                "component": page.app,
                "class": page.event.value,
                "custom_details": dict(page.fields),
            },
        }
