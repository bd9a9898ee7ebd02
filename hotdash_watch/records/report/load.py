"""The report's I/O: everything it shows, read from the store in one place, then rendered.

``load_report`` reads the incident with its timeline, its samples (from ``LEAD_IN_S`` before the
opening to the resolution, or ``now``), its action records and its outbox rows, and looks
whether diagnostics were captured in the incident's folder. ``write_report`` (at resolution,
and for each incident a simulate run keeps) and ``report_text`` (``hotdash-watch report``)
render the same loaded values the same way, so for one store and one ``now`` they give the same
text, byte for byte. Links to the diagnostics are relative to that folder, where the report
file sits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hotdash_watch.model.action import ActionRecord
from hotdash_watch.model.incident import Incident
from hotdash_watch.model.page import OutboxRow
from hotdash_watch.records.diagnostics import incident_dir
from hotdash_watch.records.report.render import render_report
from hotdash_watch.records.report.timeline import LEAD_IN_S, PageRecord, page_record

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = [
    "REPORT_FILE",
    "IncidentNotFound",
    "ReportInputs",
    "ReportSource",
    "load_report",
    "render_loaded",
    "report_text",
    "write_report",
]

REPORT_FILE = "report.md"
#: The most outbox rows of one incident a report lists.
PAGES_LIMIT = 1000


class IncidentNotFound(LookupError):
    """No incident with that ID is in the store."""


class ReportSource(Protocol):
    """What the report reads from the store (``records.store.Store`` is one)."""

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def samples(self, app: str, start: float, end: float) -> Sequence[Sequence[Any]]: ...

    async def actions_since(self, since: float, *, app: str | None = None,
                            incident_id: str | None = None) -> list[ActionRecord]: ...

    async def list_pages(self, incident_id: str | None = None, limit: int = 100
                         ) -> list[OutboxRow]: ...


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything a report shows, as read from the store and the incident's folder."""

    incident: Incident
    samples: tuple[Sequence[Any], ...]
    actions: tuple[ActionRecord, ...]
    pages: tuple[PageRecord, ...]
    directory: Path  # the incident's folder, where report.md goes
    captured: bool  # whether diagnostics are in it


def _has_diagnostics(directory: Path) -> bool:
    return directory.is_dir() and any(
        p.name != REPORT_FILE and not p.name.endswith(".tmp") for p in directory.iterdir())


def _sent_order(row: OutboxRow) -> tuple[float, int]:
    return (row.sent_at if row.sent_at is not None else row.created_at, row.id)


async def load_report(store: ReportSource, incident_id: str, out_dir: Path, *,
                      now: float) -> ReportInputs:
    """Read what the report of ``incident_id`` shows. ``IncidentNotFound`` for an unknown ID,
    ``StoreError`` when the store cannot be read."""
    incident = await store.get_incident(incident_id)
    if incident is None:
        raise IncidentNotFound(f"no incident {incident_id!r} in the store")
    end = incident.resolved_at if incident.resolved_at is not None else now
    samples = await store.samples(incident.app, incident.opened_at - LEAD_IN_S, end)
    actions = await store.actions_since(0.0, incident_id=incident.id)
    rows = await store.list_pages(incident_id=incident.id, limit=PAGES_LIMIT)
    directory = incident_dir(Path(out_dir), incident)
    captured = await asyncio.to_thread(_has_diagnostics, directory)
    return ReportInputs(incident=incident, samples=tuple(samples), actions=tuple(actions),
                        pages=tuple(page_record(r) for r in sorted(rows, key=_sent_order)),
                        directory=directory, captured=captured)


def render_loaded(inputs: ReportInputs, *, settings: Settings, now: float) -> str:
    """The report of loaded values; links to the diagnostics are relative to their folder."""
    return render_report(inputs.incident, samples=inputs.samples, actions=inputs.actions,
                         pages=inputs.pages,
                         diagnostics_dir=str(inputs.directory) if inputs.captured else None,
                         link_base="." if inputs.captured else None, settings=settings, now=now)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


async def write_report(store: ReportSource, incident_id: str, out_dir: Path, *,
                       settings: Settings, now: float, pages: object = None) -> Path:
    """Render the incident from the store to ``out_dir/incident-<ts>/report.md``; its path.

    ``IncidentNotFound`` for an unknown ID; ``StoreError`` or ``OSError`` when reading or
    writing fails. ``pages`` is not used (the pages are read from the store's outbox); it is
    accepted so that callers which still pass them keep working.
    """
    del pages
    inputs = await load_report(store, incident_id, out_dir, now=now)
    path = inputs.directory / REPORT_FILE
    await asyncio.to_thread(_write_text, path, render_loaded(inputs, settings=settings, now=now))
    return path


async def report_text(store: ReportSource, incident_id: str, *, settings: Settings,
                      now: float) -> str:
    """The report of ``incident_id`` as ``write_report`` writes it to the configured
    ``notify.artifacts_dir`` (``hotdash-watch report``)."""
    inputs = await load_report(store, incident_id, Path(settings.notify.artifacts_dir), now=now)
    return render_loaded(inputs, settings=settings, now=now)
