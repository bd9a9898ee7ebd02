"""structlog set-up: JSON lines in production, readable console output on a terminal.

Context is bound with ``structlog.contextvars`` (``app``, ``incident_id``) so every line about an
app carries them. The last processor before rendering scrubs the values of known secrets from
every string in the event, wherever a secret may have slipped in.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from hotdash_watch.clock import Clock, SystemClock

__all__ = ["SecretScrubber", "configure", "get_logger"]

REDACTED = "[REDACTED]"


class SecretScrubber:
    """A structlog processor replacing every occurrence of a registered secret value."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def register(self, values: Iterable[str | None]) -> None:
        self._secrets.update(v for v in values if v and len(v) >= 4)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for s in self._secrets:
                if s in value:
                    value = value.replace(s, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._scrub(v) for v in value)
        return value

    def __call__(
        self, logger: Any, name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event_dict
        for key, value in list(event_dict.items()):
            if key.lower() in ("authorization", "token", "api_token"):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._scrub(value)
        return event_dict


scrubber = SecretScrubber()


def configure(
    fmt: str = "auto", level: str = "info", stream: Any = None, clock: Clock | None = None
) -> None:
    """Configure structlog for the process. ``fmt`` is auto, json or console.

    Timestamps come from ``clock`` (the daemon's, so simulated runs log simulated time).
    """
    clock = clock or SystemClock()

    def stamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("timestamp", clock.now().isoformat(timespec="milliseconds"))
        return event_dict

    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    # Libraries (APScheduler, aiohttp) log through the standard library: warnings and up only.
    logging.basicConfig(stream=stream, level=logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    # A probe still running when its next run is due is skipped by design (max_instances=1);
    # APScheduler would warn about each skip. The probe's own timeout is what gets reported.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            scrubber,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("hotdash_watch").bind(**context)
