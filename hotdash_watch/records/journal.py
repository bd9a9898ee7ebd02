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

``preliminary_root_cause`` is the journal's ``Root Cause:`` and the report's root cause: the
classifier's opening reasons, the evidence that points somewhere (dependency hints in the logs,
a release deployed shortly before, OOM kills) and the mitigation that worked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hotdash_watch.config.sections import SERVICE_NAME
from hotdash_watch.model.incident import Event, Incident, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.findings import (
    duration_min,
    iso_utc,
    opening_reasons,
    root_cause_findings,
    worst_reasons,
)

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = [
    "ActionRecord",
    "Journal",
    "PageRecord",
    "action_lines",
    "actions_in_timeline",
    "as_actions",
    "as_pages",
    "opened_lines",
    "preliminary_root_cause",
    "resolved_lines",
    "severity_lines",
]

#: The service name when no settings are given (the ``service_name`` setting's default).
DEFAULT_SERVICE = SERVICE_NAME
#: Outcomes that mean an action did what it was meant to.
WORKED = frozenset({"ok", "success", "succeeded", "done", "healthy", "recovered"})
NO_ACTION = "none yet (investigating)"


# --- small values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One mitigation the watcher took, planned or was refused, as journal and report show it.

    ``kind`` is the action (restart, start, rollback, scale_memory ...), ``target`` what it
    acted on (a machine id, a release), ``outcome`` how it ended (ok, failed, vetoed, dry_run).
    """

    at: float
    kind: str
    target: str = ""
    outcome: str = ""
    reason: str = ""

    @property
    def worked(self) -> bool:
        return self.outcome.lower() in WORKED

    def describe(self) -> str:
        """``restart 148e21ea7e0389 (ok)``, ``rollback v4 (failed)``."""
        what = f"{self.kind} {self.target}" if self.target else self.kind
        return f"{what} ({self.outcome})" if self.outcome else what


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One page sent (or queued) for the incident: its channel, event and delivery outcome."""

    at: float
    channel: str
    event: str = ""
    severity: str = ""
    status: str = ""
    outcome: str = ""

    def describe(self) -> str:
        """``SEV-1 Investigating (opened) via slack: sent``."""
        head = " ".join(p for p in (self.severity, self.status) if p) or "page"
        if self.event:
            head += f" ({self.event})"
        text = f"{head} via {self.channel}" if self.channel else head
        return f"{text}: {self.outcome}" if self.outcome else text


_R = TypeVar("_R", ActionRecord, PageRecord)

# Other names the same facts go by: the simulate report (``at_s``), the outbox rows of the store
# (``sent_at``/``created_at``, ``state``) and the action results (``target``/``machine``).
_ALIASES = {"at": ("at_s", "sent_at", "created_at"), "outcome": ("state",),
            "target": ("machine",)}


def _coerce(item: Any, cls: type[_R]) -> _R:
    if isinstance(item, cls):
        return item
    names = [f.name for f in dataclasses.fields(cls)]

    def get(name: str) -> Any:
        if isinstance(item, Mapping):
            return item.get(name)
        return getattr(item, name, None)

    values: dict[str, Any] = {}
    for name in names:
        for key in (name, *_ALIASES.get(name, ())):
            value = get(key)
            if value is not None:
                values[name] = value
                break
    nested = get("page")
    if cls is PageRecord and "status" not in values and isinstance(nested, Mapping):
        values["status"] = nested.get("status") or ""
    if "at" not in values:
        raise ValueError(f"{cls.__name__} needs a time (at): {item!r}")
    values["at"] = float(values["at"])
    for name in names[1:]:
        if name in values:
            value = values[name]
            values[name] = str(getattr(value, "value", value))
    return cls(**values)


def as_actions(items: Iterable[Any]) -> list[ActionRecord]:
    """``ActionRecord``s from records, mappings (``at``/``at_s``, ``kind``, ``target``,
    ``outcome``, ``reason``) or any object with those attributes; sorted by time."""
    return sorted((_coerce(i, ActionRecord) for i in items), key=lambda a: a.at)


def as_pages(items: Iterable[Any]) -> list[PageRecord]:
    """``PageRecord``s from records, mappings or objects with the same fields; sorted by time."""
    return sorted((_coerce(i, PageRecord) for i in items), key=lambda p: p.at)


def actions_in_timeline(incident: Incident) -> list[ActionRecord]:
    """Actions the timeline itself records: entries whose ``detail`` names an ``action``, at
    the time the action started (``detail.started_at``) when the entry records its end."""
    found = []
    for e in incident.timeline:
        kind = e.detail.get("action") if isinstance(e.detail, Mapping) else None
        if isinstance(kind, str) and kind:
            started = e.detail.get("started_at")
            found.append(ActionRecord(
                at=float(started) if isinstance(started, (int, float)) else e.at, kind=kind,
                target=str(e.detail.get("target") or ""),
                outcome=str(e.detail.get("outcome") or ""), reason="; ".join(e.reasons)))
    return found


# --- the root cause line -----------------------------------------------------------------------


def _mitigation(actions: Sequence[ActionRecord], incident: Incident) -> str:
    if not actions:
        if incident.is_open:
            return "no mitigation taken yet"
        return "recovered without a mitigation by the watcher"
    worked = [a for a in actions if a.worked]
    if worked:
        best = worked[-1]
        return f"mitigated by {best.describe()} at {iso_utc(best.at)}"
    tried = ", ".join(a.describe() for a in actions)
    if incident.is_open:
        return f"mitigations tried without success so far: {tried}"
    return f"recovered although no mitigation succeeded (tried: {tried})"


def preliminary_root_cause(
    incident: Incident, actions: Iterable[Any] = (), *, recent_release_s: float
) -> str:
    """One line of preliminary findings: opening reasons; evidence; the mitigation that worked.

    Actions recorded in the timeline (``actions_in_timeline``) count as well as ``actions``.
    """
    acts = _merge_actions(as_actions(actions), actions_in_timeline(incident))
    opening = opening_reasons(incident)
    parts = ["; ".join(opening) or "no classifier reason recorded"]
    worst = [r for r in worst_reasons(incident) if r not in opening]
    if worst:
        parts.append(f"at its worst ({incident.max_severity.value}): " + "; ".join(worst))
    findings = root_cause_findings(incident, recent_release_s=recent_release_s)
    if findings:
        parts.append("evidence: " + ", ".join(findings))
    parts.append(_mitigation(acts, incident))
    return _one_line("; ".join(parts))


def _merge_actions(
    given: Sequence[ActionRecord], recorded: Sequence[ActionRecord]
) -> list[ActionRecord]:
    seen = {(a.at, a.kind, a.target) for a in given}
    merged = list(given) + [a for a in recorded if (a.at, a.kind, a.target) not in seen]
    return sorted(merged, key=lambda a: a.at)


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


def _action_line(actions: Iterable[Any]) -> str:
    acts = as_actions(actions)
    return "Action Taken: " + ("; ".join(a.describe() for a in acts) if acts else NO_ACTION)


def _id_line(incident: Incident) -> str:
    return f"Incident ID: {incident.id}"


def _clean(lines: Iterable[str]) -> list[str]:
    return [_one_line(line) for line in lines]


def opened_lines(
    incident: Incident, now: float, actions: Iterable[Any] = (), *,
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
    incident: Incident, entry: TimelineEntry, actions: Iterable[Any] = (), *,
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
    incident: Incident, actions: Iterable[Any], now: float, *,
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
