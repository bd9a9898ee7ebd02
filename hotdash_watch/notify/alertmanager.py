"""Alertmanager API v2: ``POST {url}/api/v2/alerts`` with the incident as one alert.

Labels identify the alert: ``alertname="HotdashIncident"``, ``target_app``, ``severity``
(SEV-1/2/3) and ``incident_id``; annotations carry the page (``summary`` = subject,
``description`` = body). ``startsAt`` is when the incident opened.

Alertmanager resolves an alert by itself once its ``endsAt`` has passed (``resolve_timeout``,
5 min by default, when a client sends none), so a firing alert is sent with ``endsAt`` one
hour after the page: longer than the runbook's update cadence (15 and 30 min), so the status
updates keep it firing while the incident is open. The resolution page sends the same labels
with ``endsAt`` = the resolution time. A severity change also resolves the alert of the old
severity (its labels differ), so Alertmanager never holds two alerts for one incident.
Alertmanager answers 200 when it accepted the alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

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

__all__ = ["ALERTNAME", "FIRING_FOR_S", "AlertmanagerChannel", "AlertmanagerNotifier"]

ALERTNAME = "HotdashIncident"
FIRING_FOR_S = 3600.0
"""How long a firing alert stays firing in Alertmanager unless the next page renews it."""


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _labels(page: Page, severity: Severity) -> dict[str, str]:
    return {"alertname": ALERTNAME, "target_app": page.app, "severity": severity.value,
            "incident_id": page.incident_id}


class AlertmanagerChannel(ChannelBase):
    """An Alertmanager, which routes the incident's alert like any other."""

    kind: Literal["alertmanager"] = Field("alertmanager",
                                          description="Alertmanager v2 /api/v2/alerts")
    url: SecretStr = Field(description="Alertmanager's base URL (http://alertmanager:9093); "
                           "pages are posted to its /api/v2/alerts")

    _url = field_validator("url")(check_secret_url)


class AlertmanagerNotifier(HttpNotifier):
    """Posts alerts to an Alertmanager (``url`` is its base URL, e.g. http://am:9093)."""

    kind: ClassVar[str] = "alertmanager"

    def __init__(self, channel: AlertmanagerChannel) -> None:
        base = required(channel.url, channel.name, "url")
        super().__init__(channel, url=base.rstrip("/") + "/api/v2/alerts", secret_url=base)

    def build_payload(self, page: Page) -> Payload:
        starts = page.opened_at if page.opened_at is not None else page.created_at
        if page.is_resolution:
            ends = page.resolved_at if page.resolved_at is not None else page.created_at
        else:
            ends = page.created_at + FIRING_FOR_S
        alert: dict[str, Any] = {
            "labels": _labels(page, page.severity),
            "annotations": {"summary": page.subject, "description": page.body},
            "startsAt": _rfc3339(starts),
            "endsAt": _rfc3339(ends),
        }
        alerts = [alert]
        prev = page.previous_severity
        if prev is not None and prev is not page.severity:
            alerts.append({
                "labels": _labels(page, prev),
                "annotations": {"summary": f"severity changed to {page.severity.value}"},
                "startsAt": _rfc3339(starts),
                "endsAt": _rfc3339(page.created_at),
            })
        return alerts
