"""Slack incoming webhook: the subject as ``text`` and a header, the body as a mrkdwn section.

Slack's limits are kept: a header holds at most 150 characters, a section's text 3000; the
field names are bold, and ``&``, ``<`` and ``>`` are escaped as Slack requires.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from hotdash_watch.notify.base import (
    ChannelBase,
    HttpNotifier,
    Page,
    Payload,
    check_secret_url,
    required,
)

__all__ = ["SlackChannel", "SlackNotifier", "mrkdwn_escape"]

HEADER_MAX = 150
SECTION_MAX = 3000


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn_body(page: Page) -> str:
    lines = []
    for line in page.body.split("\n"):
        name, sep, value = line.partition(": ")
        if sep and (name in page.fields or name == "NOTE"):
            lines.append(f"*{mrkdwn_escape(name)}:* {mrkdwn_escape(value)}")
        else:
            lines.append(mrkdwn_escape(line))
    return "\n".join(lines)


class SlackChannel(ChannelBase):
    """A Slack incoming webhook."""

    kind: Literal["slack"] = Field("slack", description="Slack incoming webhook")
    url: SecretStr = Field(description="the incoming-webhook URL "
                           "(https://hooks.slack.com/services/...); it is the credential")

    _url = field_validator("url")(check_secret_url)


class SlackNotifier(HttpNotifier):
    """Posts to a Slack incoming-webhook URL (the URL itself is the credential)."""

    kind: ClassVar[str] = "slack"

    def __init__(self, channel: SlackChannel) -> None:
        url = required(channel.url, channel.name, "url")
        super().__init__(channel, url=url, secret_url=url)

    def build_payload(self, page: Page) -> Payload:
        return {
            "text": page.subject,
            "blocks": [
                {"type": "header",
                 "text": {"type": "plain_text", "text": _clip(page.subject, HEADER_MAX)}},
                {"type": "section",
                 "text": {"type": "mrkdwn", "text": _clip(_mrkdwn_body(page), SECTION_MAX)}},
            ],
        }
