"""Generic JSON webhook: the ``Page`` as JSON, optionally signed with HMAC-SHA256.

Request::

    POST <url>
    Content-Type: application/json
    X-Hotdash-Dedup-Key: <page key>                 (receivers drop repeats of a key)
    X-Hotdash-Signature: sha256=<hex>               (only with hmac_secret)

    {"app": ..., "body": ..., "event": ..., "fields": {...}, "key": ..., "subject": ...}

The signature is HMAC-SHA256 over the exact body bytes, keyed with ``hmac_secret``; a receiver
recomputes it over the raw body it got and compares with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
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

__all__ = ["DEDUP_HEADER", "SIGNATURE_HEADER", "WebhookChannel", "WebhookNotifier", "sign"]

SIGNATURE_HEADER = "X-Hotdash-Signature"
DEDUP_HEADER = "X-Hotdash-Dedup-Key"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hotdash-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookChannel(ChannelBase):
    """A generic JSON webhook: the page as JSON, signed when ``hmac_secret`` is set."""

    kind: Literal["webhook"] = Field("webhook", description="generic JSON webhook")
    url: SecretStr = Field(description="where the page is posted (it may carry a token)")
    hmac_secret: SecretStr | None = Field(
        None, description="sign bodies with HMAC-SHA256 (X-Hotdash-Signature)")

    _url = field_validator("url")(check_secret_url)


class WebhookNotifier(HttpNotifier):
    """Posts the page as JSON to a URL of the operator's choosing."""

    kind: ClassVar[str] = "webhook"

    def __init__(self, channel: WebhookChannel) -> None:
        url = required(channel.url, channel.name, "url")
        key = None if channel.hmac_secret is None else channel.hmac_secret.get_secret_value()
        self._key = None if key is None else key.encode()
        super().__init__(channel, url=url, secret_url=url, secrets=[key])

    def build_payload(self, page: Page) -> Payload:
        return page.as_dict()

    def build_headers(self, page: Page, body: bytes) -> dict[str, str]:
        """The headers for ``body`` (pure): dedup key, and the signature when keyed."""
        headers = {DEDUP_HEADER: page.key}
        if self._key is not None:
            headers[SIGNATURE_HEADER] = sign(self._key, body)
        return headers
