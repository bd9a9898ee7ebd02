"""The report's small text forms: UTC times, severities, and table cells that read back exactly.

A timeline cell is one markdown table cell: ``&``, ``<``, ``|``, ``\\`` and every character that
would end a line are written as HTML entities (``cell``), and ``uncell`` reads exactly those
back. Pure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hotdash_watch.model.severity import Severity

__all__ = ["cell", "day", "hms", "sev", "uncell"]


def hms(ts: float, day_shown: str | None = None) -> str:
    """``12:00:05``; with the date in front when it is not ``day_shown``."""
    dt = datetime.fromtimestamp(ts, UTC)
    if day_shown is not None and dt.strftime("%Y-%m-%d") != day_shown:
        return dt.strftime("%Y-%m-%d %H:%M:%S")
    return dt.strftime("%H:%M:%S")


def day(ts: float) -> str:
    """``2026-03-01``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def sev(severity: Severity) -> str:
    """``SEV-1 (Critical)``."""
    return f"{severity.value} ({severity.title})"


# Characters that would end a table row (str.splitlines breaks on each), written as entities.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_CELL_ESCAPES = {"&": "&amp;", "<": "&lt;", "|": "&#124;", "\\": "&#92;",
                 **{ch: f"&#{ord(ch)};" for ch in _LINE_BREAKS}}


def cell(text: str) -> str:
    """``text`` safe in one table cell and exactly recoverable (``uncell``)."""
    return "".join(_CELL_ESCAPES.get(ch, ch) for ch in str(text))


_ENTITY = re.compile(r"&(amp|lt|#[0-9]+);")


def uncell(text: str) -> str:
    """The inverse of ``cell``: only the entities it writes are read (not ``html.unescape``,
    which maps some control characters elsewhere)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return {"amp": "&", "lt": "<"}.get(name) or chr(int(name[1:]))

    return _ENTITY.sub(one, text)
