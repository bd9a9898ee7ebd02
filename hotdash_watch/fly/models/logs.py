"""Lines of the logs polling API: ``LogLine``, ``LogPage`` and ``parse_log_page``.

A page is a JSON:API-style document: ``data[]`` of lines, each with ``attributes`` (timestamp
in RFC 3339 with nanoseconds, message, level, instance, region) and ``meta.next_token``, the
cursor of the next page.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from hotdash_watch.fly.models.payload import Time, WireModel, required_time, validate

__all__ = ["LogLine", "LogPage", "parse_log_page"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line from the logs polling API; ``timestamp`` in epoch seconds."""

    id: str
    timestamp: float
    message: str
    level: str
    instance: str | None
    region: str | None
    provider: str | None


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of log lines and the cursor to ask for the next one."""

    lines: tuple[LogLine, ...]
    next_token: str | None


# --- wire models (private; their class names appear in PayloadError messages) -------------------


class _Provider(WireModel):
    provider: str | None = None


class _LogMeta(WireModel):
    instance: str | None = None
    region: str | None = None
    event: _Provider | None = None


class _LogAttributes(WireModel):
    timestamp: Time
    message: str | None = ""
    level: str | None = ""
    instance: str | None = None
    region: str | None = None
    meta: _LogMeta | None = None


class _LogItem(WireModel):
    id: str | None = None
    attributes: _LogAttributes


class _LogPageMeta(WireModel):
    next_token: str | int | None = None


class _LogPage(WireModel):
    data: list[_LogItem] | None = None
    meta: _LogPageMeta | None = None


# --- parsing --------------------------------------------------------------------------------------


def _log_id(attrs: _LogAttributes, timestamp: float) -> str:
    # The API gives every line an id; should one be missing, derive a stable one.
    digest = zlib.crc32((attrs.message or "").encode("utf-8", errors="replace"))
    return f"{timestamp!r}/{attrs.instance or ''}/{digest:08x}"


def parse_log_page(data: Any) -> LogPage:
    """A ``LogPage`` from the logs polling API's JSON:API-style document."""
    page = validate(_LogPage, data, "log page")
    lines = []
    for item in page.data or ():
        attrs = item.attributes
        meta = attrs.meta or _LogMeta()
        timestamp = required_time(attrs.timestamp, "log timestamp")
        lines.append(
            LogLine(
                id=item.id or _log_id(attrs, timestamp),
                timestamp=timestamp,
                message=attrs.message or "",
                level=attrs.level or "",
                instance=attrs.instance or meta.instance or None,
                region=attrs.region or meta.region or None,
                provider=meta.event.provider if meta.event else None,
            )
        )
    token = page.meta.next_token if page.meta else None
    return LogPage(lines=tuple(lines), next_token=None if token in (None, "") else str(token))
