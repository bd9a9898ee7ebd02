"""structlog set-up: JSON lines in production, readable console output on a terminal.

Context is bound with ``structlog.contextvars`` (``app``, ``incident_id``) so every line about an
app carries them. The last processor before rendering is the redactor (``scrubber``): whatever a
log call passes, no secret reaches the output. It removes, at any depth of the event (nested
dicts such as a headers mapping, lists, the formatted traceback of ``log.exception``):

- the value of every key named like a credential (``authorization``, ``*token*``, ``*secret*``,
  ``password``, ``api_key``, ``cookie``, ``credentials``), whatever its type;
- ``Bearer <token>`` and ``<credential-like key>=<value>`` / ``: <value>`` inside strings, and the
  password of a URL's user info (``scheme://user:password@host``);
- every registered secret value (the daemon and the HTTP server register each ``SecretStr`` of
  the settings at start; the Fly client and the notifiers register theirs).

Records of the standard library's loggers (aiohttp, APScheduler) pass through the same text
redaction before they are written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import BaseModel, SecretStr

from hotdash_watch.clock import Clock, SystemClock

__all__ = ["REDACTED", "SecretScrubber", "configure", "get_logger", "secret_values"]

REDACTED = "[REDACTED]"

_KEYWORDS = r"authorization|token|secret|passw(?:or)?d|api[_-]?key|cookie|credentials?"
_SENSITIVE_KEY = re.compile(_KEYWORDS, re.IGNORECASE)
_NOT_YET = r"(?!\[REDACTED\])"
_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # token=..., "api_key": "...", Authorization: Bearer ..., password=... (keeps the scheme)
    (re.compile(rf"((?:{_KEYWORDS})[\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|token)\s+)?"
                rf"{_NOT_YET}[^\s\"',;&)}}\]]+", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # Bearer <token> anywhere (RFC 6750 token characters, 8 or more)
    (re.compile(rf"\b(bearer\s+){_NOT_YET}[A-Za-z0-9\-._~+/]{{8,}}=*", re.IGNORECASE),
     rf"\1{REDACTED}"),
    # scheme://user:password@host
    (re.compile(rf"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:){_NOT_YET}[^/\s@]+@", re.IGNORECASE),
     rf"\1{REDACTED}@"),
)
_UNTOUCHED_KEYS = frozenset({"exc_info", "stack_info"})  # formatted (then scrubbed) downstream


def is_sensitive_key(key: object) -> bool:
    """True for keys named like a credential (``Authorization``, ``api_token``, ``X-Api-Key``)."""
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


class SecretScrubber:
    """The redacting structlog processor, and the registry of secret values it removes."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()

    def register(self, values: Iterable[str | None]) -> None:
        """Add secret values (shorter than 4 characters: ignored, they would mangle text)."""
        self._secrets.update(v for v in values if v and len(v) >= 4)
        self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))

    def scrub_text(self, text: str) -> str:
        """``text`` without registered secrets, bearer tokens or credential-like values."""
        for s in self._ordered:  # longest first: a secret containing another goes whole
            if s in text:
                text = text.replace(s, REDACTED)
        for pattern, replacement in _TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def scrub(self, value: Any) -> Any:
        """``value`` with every string in it scrubbed and every credential-named key blanked."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, (bytes, bytearray)):
            return self.scrub_text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {k: self._scrub_item(k, v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self.scrub(v) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, SecretStr):
            return REDACTED
        return self.scrub_text(repr(value))  # what the renderer would have printed

    def _scrub_item(self, key: Any, value: Any) -> Any:
        if is_sensitive_key(key) and value is not None and not isinstance(value, bool):
            return REDACTED
        return self.scrub(value)

    def __call__(
        self, logger: Any, name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key not in _UNTOUCHED_KEYS:
                event_dict[key] = self._scrub_item(key, value)
        return event_dict


def secret_values(model: BaseModel) -> Iterator[str]:
    """Every ``SecretStr`` value set anywhere in ``model`` (nested sections and lists)."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                yield from walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from walk(item)

    yield from walk(model)


scrubber = SecretScrubber()


class _ScrubbingFormatter(logging.Formatter):
    """A standard-library formatter whose output (traceback included) goes through ``scrubber``."""

    def format(self, record: logging.LogRecord) -> str:
        return scrubber.scrub_text(super().format(record))


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
    # Libraries (APScheduler, aiohttp) log through the standard library: warnings and up only,
    # redacted like our own lines.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_ScrubbingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
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
