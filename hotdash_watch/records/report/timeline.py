"""The report's timeline: the table of entries, actions and pages, and the chart under it.

One row per timeline entry, in the store's order, with the pages and the actions no entry
speaks of merged in by time. An entry about a mitigation step names the step's ``action_id``;
such a step is the entry's row, never a row of its own, so no action is listed twice. A cell
reads ``**Incident detected** — opened, SEV-1, investigating: <reason><br><reason>`` so that
``parse_report`` can read event, severity, state and reasons back exactly.

A page is shown from its outbox row (``page_record``): when it was sent (else queued), its
channel, event, severity, the page's STATUS and how delivery stands. Pure.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hotdash_watch.model.action import ActionRecord
from hotdash_watch.model.incident import Event, Incident, TimelineEntry
from hotdash_watch.model.page import OutboxRow
from hotdash_watch.records.chart import svg_chart
from hotdash_watch.records.findings import describe, mitigations
from hotdash_watch.records.report.markup import cell, hms

__all__ = [
    "LEAD_IN_S",
    "PageRecord",
    "action_note",
    "incident_chart",
    "page_record",
    "timeline_lines",
]

#: How far before the opening the samples and the chart reach.
LEAD_IN_S = 300.0

_LABELS = {
    Event.OPENED: "Incident detected",
    Event.ESCALATED: "Severity raised",
    Event.ESCALATED_TIMER: "Escalated by the SEV-3 timer",
    Event.DEESCALATED: "Severity lowered",
    Event.MITIGATING: "Mitigation started",
    Event.MONITORING: "Signals clear, verifying recovery",
    Event.REGRESSED: "Signals came back",
    Event.RESUMED: "Watcher resumed the incident",
    Event.RESOLVED: "Issue resolved",
    Event.NOTE: "Note",
}

_MARKS = {
    Event.OPENED: "opened",
    Event.MITIGATING: "mitigation",
    Event.MONITORING: "monitoring",
    Event.REGRESSED: "regressed",
    Event.RESOLVED: "resolved",
}

_SEVERITY_CHANGES = (Event.ESCALATED, Event.ESCALATED_TIMER, Event.DEESCALATED)


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One page of the incident as the report shows it (see ``page_record``)."""

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


def page_record(row: OutboxRow) -> PageRecord:
    """An outbox row as the report shows it: sent at ``sent_at`` (queued at ``created_at``
    while not sent), the page's STATUS, and the row's state as the outcome."""
    status = row.page.get("status") if isinstance(row.page, Mapping) else None
    return PageRecord(at=row.sent_at if row.sent_at is not None else row.created_at,
                      channel=row.channel, event=row.event, severity=row.severity,
                      status=str(status or ""), outcome=row.state.value)


def action_note(incident: Incident, action: ActionRecord) -> str:
    """What the timeline says of how ``action`` ended (its entry at or after the end), else the
    step's own text."""
    if action.ended_at is not None:
        for e in reversed(incident.timeline):
            if e.action_id is not None and e.action_id == action.id and e.at >= action.ended_at:
                return "; ".join(e.reasons)
    return action.text


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    at: float
    cell: str


def _entry_cell(e: TimelineEntry) -> str:
    label = _LABELS.get(e.event, e.event.value)
    before = e.detail.get("from") if isinstance(e.detail, Mapping) else None
    if before and e.event in _SEVERITY_CHANGES:
        label += f" from {before}"
    head = f"**{label}** — {e.event.value}, {e.severity.value}, {e.state.value}"
    if e.reasons:
        head += ": " + "<br>".join(cell(r) for r in e.reasons)
    return head


def _action_cell(incident: Incident, a: ActionRecord) -> str:
    note = action_note(incident, a)
    return f"**Action** — {cell(describe(a))}" + (f": {cell(note)}" if note else "")


def _page_cell(p: PageRecord) -> str:
    return f"**Page** — {cell(p.describe())}"


def timeline_lines(incident: Incident, actions: Sequence[ActionRecord],
                   pages: Sequence[PageRecord], day: str) -> list[str]:
    """The timeline table: header, then one row per entry, unlinked action and page."""
    linked = {e.action_id for e in incident.timeline if e.action_id is not None}
    entries = [_Row(e.at, _entry_cell(e)) for e in incident.timeline]
    acts = [_Row(a.at, _action_cell(incident, a)) for a in sorted(actions, key=lambda a: a.at)
            if a.id is None or a.id not in linked]
    sent = [_Row(p.at, _page_cell(p)) for p in pages]
    # A merge, not a sort: the timeline keeps the store's order whatever its times.
    rows = heapq.merge(entries, acts, sent, key=lambda r: r.at)
    return ["| Time | Event |", "| ---- | ----- |",
            *(f"| {hms(r.at, day)} | {r.cell} |" for r in rows)]


# --- the chart ------------------------------------------------------------------------------------


def _points(samples: Iterable[Sequence[Any]]) -> list[tuple[float, float | None, float | None]]:
    return [(float(s[0]), s[1], s[2]) for s in samples]


def incident_chart(incident: Incident, samples: Iterable[Sequence[Any]],
                   actions: Iterable[ActionRecord] = (), *, now: float) -> str:
    """The report's SVG: samples from ``LEAD_IN_S`` before the opening to the end, with the
    state changes, severity changes and mitigations marked."""
    end = incident.resolved_at if incident.resolved_at is not None else max(now,
                                                                            incident.updated_at)
    start = incident.opened_at - LEAD_IN_S
    marks: list[tuple[float, str]] = []
    for e in incident.timeline:
        if e.event in _MARKS:
            label = _MARKS[e.event]
            if e.event is Event.OPENED:
                label = f"opened {e.severity.value}"
            marks.append((e.at, label))
        elif e.event in _SEVERITY_CHANGES:
            marks.append((e.at, e.severity.value))
    marks += [(a.at, a.kind.value) for a in mitigations(actions)]
    return svg_chart(_points(samples), start=start, end=end, marks=marks,
                     title=f"Error rate and p95 latency of {incident.app}, {incident.id}")
