"""The runbook's journal: the lines of Phases 2 and 5 appended to ``feedback/reliability.md``.

Pure formatters build the lines, in the runbook's own words (``echo "[...] SEV-1 INCIDENT - Agent
SDK" >> feedback/reliability.md``)::

    [2026-03-01T12:00:05Z] SEV-1 INCIDENT - Agent SDK (hotdash-api)      opened_lines
    Severity: SEV-1 (Critical)
    Impact: error rate 62.0 % over 60 s (31/50 probes) > 50.0 %
    Action Taken: none yet (investigating)
    Incident ID: INC-20260301-120005

    [2026-03-01T12:20:05Z] INCIDENT RESOLVED                              resolved_lines
    Duration: 2026-03-01T12:00:05Z to 2026-03-01T12:20:05Z (20 min)
    Root Cause: error rate 62.0 % ...; evidence: release v5 was deployed 4 min before
        detection; mitigated by rollback v4 (ok) at 2026-03-01T12:02:10Z     (one line)
    Incident ID: INC-20260301-120005

``severity_lines`` (escalation, de-escalation, the SEV-3 timer) and ``action_lines`` (a
mitigation taken) write the same header. Every block ends with an ``Incident ID:`` line (the
runbook's Phase 4 field) so that blocks of several apps can be told apart, and is followed by a
blank line so that the markdown file stays readable.

``Journal.append`` writes one block with ONE ``os.write`` on a file opened ``O_APPEND``, in a
worker thread, under an ``asyncio.Lock``: blocks of concurrent writers (tasks, or another
process appending to the same file) never interleave, and the event loop never waits on disk.

Actions are the store's ``ActionRecord``s, each read as ``rollback v4 (failed)``. The text of
``Root Cause:`` is ``records.findings.preliminary_root_cause``, the same as the report's.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hotdash_watch.config.sections import SERVICE_NAME
from hotdash_watch.model.action import ActionRecord
from hotdash_watch.model.incident import Event, Incident, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.findings import describe, duration_min, iso_utc, opening_reasons

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = [
    "Journal",
    "action_lines",
    "opened_lines",
    "resolved_lines",
    "severity_lines",
]

#: The service name when no settings are given (the ``service_name`` setting's default).
DEFAULT_SERVICE = SERVICE_NAME
NO_ACTION = "none yet (investigating)"


# --- the runbook's lines --------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Text that cannot break a journal line (or forge the next one)."""
    return " ".join(text.split())


def _service(settings: Settings | None) -> str:
    return settings.service_name if settings is not None else DEFAULT_SERVICE


def _header(severity: Severity, at: float, incident: Incident, settings: Settings | None) -> str:
    return f"[{iso_utc(at)}] {severity.value} INCIDENT - {_service(settings)} ({incident.app})"


def _severity_line(severity: Severity) -> str:
    return f"Severity: {severity.value} ({severity.title})"


def _impact_line(reasons: Sequence[str]) -> str:
    return "Impact: " + ("; ".join(reasons) or "not measured (no reasons recorded)")


def _action_line(actions: Sequence[ActionRecord]) -> str:
    acts = sorted(actions, key=lambda a: a.at)
    return "Action Taken: " + ("; ".join(describe(a) for a in acts) if acts else NO_ACTION)


def _id_line(incident: Incident) -> str:
    return f"Incident ID: {incident.id}"


def _clean(lines: Iterable[str]) -> list[str]:
    return [_one_line(line) for line in lines]


def opened_lines(
    incident: Incident, now: float, actions: Sequence[ActionRecord] = (), *,
    settings: Settings | None = None,
) -> list[str]:
    """Phase 2's four lines for a new incident, then its ``Incident ID:``."""
    return _clean([
        _header(incident.severity, now, incident, settings),
        _severity_line(incident.severity),
        _impact_line(opening_reasons(incident)),
        _action_line(actions),
        _id_line(incident),
    ])


_CHANGE_WORDS = {
    Event.ESCALATED: "Escalated",
    Event.ESCALATED_TIMER: "Escalated",
    Event.DEESCALATED: "De-escalated",
}


def severity_lines(
    incident: Incident, entry: TimelineEntry, actions: Sequence[ActionRecord] = (), *,
    settings: Settings | None = None,
) -> list[str]:
    """The Phase 2 block again for a severity change: header and ``Severity:`` at the new level,
    ``Escalated: from SEV-2 to SEV-1`` (or ``De-escalated:``), the entry's reasons as impact."""
    word = _CHANGE_WORDS.get(entry.event, "Changed")
    before = entry.detail.get("from") if isinstance(entry.detail, Mapping) else None
    change = f"{word}: from {before} to {entry.severity.value}" if before else (
        f"{word}: to {entry.severity.value}")
    return _clean([
        _header(entry.severity, entry.at, incident, settings),
        _severity_line(entry.severity),
        change,
        _impact_line(entry.reasons or incident.reasons),
        _action_line(actions),
        _id_line(incident),
    ])


def action_lines(
    incident: Incident, actions: Sequence[ActionRecord], now: float, *,
    settings: Settings | None = None,
) -> list[str]:
    """Phase 2's ``Action Taken:`` for mitigations just taken, under the current severity."""
    return _clean([
        _header(incident.severity, now, incident, settings),
        _severity_line(incident.severity),
        _action_line(actions),
        _id_line(incident),
    ])


def resolved_lines(incident: Incident, root_cause: str) -> list[str]:
    """Phase 5's three lines: ``INCIDENT RESOLVED``, ``Duration:``, ``Root Cause:``."""
    end = incident.resolved_at if incident.resolved_at is not None else incident.updated_at
    return _clean([
        f"[{iso_utc(end)}] INCIDENT RESOLVED",
        f"Duration: {iso_utc(incident.opened_at)} to {iso_utc(end)} "
        f"({duration_min(end - incident.opened_at)} min)",
        f"Root Cause: {root_cause or 'unknown (no findings)'}",
        _id_line(incident),
    ])


# --- the file -------------------------------------------------------------------------------------


def _block(lines: Sequence[str]) -> bytes:
    """The lines, then a blank line: the next block starts apart, whoever writes it."""
    return ("\n".join(_clean(lines)) + "\n\n").encode("utf-8")


def _append_block(path: Path, block: bytes) -> None:
    """Append ``block`` with one ``write`` on a file opened ``O_APPEND``.

    Text someone else left without a blank line at its end gets the missing newlines first
    (in the same write). An advisory ``flock`` keeps journal writers (other ``Journal`` objects,
    other processes) from reading the end of the file while another one writes it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 2, max(0, size - 2)) if size else b""
        if tail and not tail.endswith(b"\n\n") and tail != b"\n":
            block = (b"\n" if tail.endswith(b"\n") else b"\n\n") + block
        written = os.write(fd, block)
        while written < len(block):  # only on a full disk or a signal; keep the text whole
            written += os.write(fd, block[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appends blocks of lines to the runbook's journal file; one writer at a time."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    async def append(self, lines: Sequence[str]) -> None:
        """Write ``lines`` as one block; ``OSError`` when the file cannot be written."""
        if not lines:
            return
        block = _block(lines)
        async with self._lock:
            await asyncio.to_thread(_append_block, self.path, block)
