"""The post-incident report (runbook Phase 6), in the runbook's "Incident Report Template".

``render_report`` is pure: an incident with its timeline, its samples, the store's action
records and the pages from the outbox, the settings and ``now`` go in; markdown comes out::

    # Incident Report: High Error Rate on hotdash-api (Agent SDK)
    **Incident ID**: INC-20260301-120005
    **Severity**: SEV-1 (Critical)          the worst severity the incident reached
    **Date**: 2026-03-01
    **Duration**: 2026-03-01T12:00:05Z to 2026-03-01T12:20:05Z (20 min)   ("to ongoing" if open)
    **Reporter**: hotdash-watch
    ## Summary / ## Timeline (table, then an inline SVG chart) / ## Impact / ## Root Cause /
    ## Resolution / ## Preventive Actions / ## Lessons Learned / ## Appendix

The timeline table has one row per timeline entry, in the store's order, with the pages and
the actions no entry speaks of merged in by time: an entry about a mitigation step names the
step's ``action_id``, and such a step is never a row of its own. An entry's cell reads
``**Incident detected** — opened, SEV-1, investigating: <reason><br><reason>`` so that
``parse_report`` can read event, severity, state and reasons back exactly (``&``, ``<``, ``|``,
``\\`` and line breaks in reasons are written as HTML entities).

``load_report`` reads everything the report shows from the store (incident, samples, action
records, outbox rows) and the incident's folder; ``write_report`` (at resolution) and
``report_text`` (``hotdash-watch report``) render the same loaded values the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hotdash_watch.model.action import ActionRecord, Outcome
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.page import OutboxRow
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.chart import svg_chart
from hotdash_watch.records.diagnostics import artifact_names, incident_dir
from hotdash_watch.records.findings import (
    Cause,
    causes,
    condition_reasons,
    describe,
    duration_min,
    iso_utc,
    mitigations,
    opening_reasons,
    preliminary_root_cause,
    root_cause_findings,
)

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = [
    "LEAD_IN_S",
    "REPORTER",
    "REPORT_FILE",
    "IncidentNotFound",
    "PageRecord",
    "ReportInputs",
    "ReportSource",
    "incident_chart",
    "load_report",
    "page_record",
    "parse_report",
    "render_loaded",
    "render_report",
    "report_text",
    "report_title",
    "write_report",
]


# --- text forms -------------------------------------------------------------------------------


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


# --- the timeline and the chart ---------------------------------------------------------------


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


# --- sections ---------------------------------------------------------------------------------


_TITLES = {
    Cause.ALL_MACHINES_DOWN: "All Machines Down",
    Cause.PARTIAL_OUTAGE: "Partial Outage",
    Cause.ERROR_RATE: "High Error Rate",
    Cause.LATENCY: "High Latency",
    Cause.OOM: "OOM (Out of Memory) Kills",
    Cause.AUTOSCALING: "Auto-scaling Not Working",
    Cause.DEPENDENCY: "Dependency Failure",
    Cause.RECENT_RELEASE: "Bad Release",
    Cause.SIGNAL: "Reported Incident",
}

_PREVENT: dict[Cause, tuple[str, ...]] = {
    Cause.ALL_MACHINES_DOWN: (
        "Find why every machine stopped (bad deployment, configuration error, resource "
        "exhaustion or a Fly.io platform issue: runbook Scenario 1) and fix it at the source",
        "Keep at least two machines running (min_machines_running) so that one failure is not "
        "an outage",
    ),
    Cause.PARTIAL_OUTAGE: (
        "Find why some machines went down while others served (the machines-detail.txt event "
        "logs name the exits)",
    ),
    Cause.ERROR_RATE: (
        "Identify the error pattern in the logs (logs-<app>.txt) and add a test that "
        "reproduces it",
    ),
    Cause.LATENCY: (
        "Find the slow operation (logs, queries) and size the machines for the load: set "
        "[[vm]] memory/cpus in fly.toml or raise min_machines_running",
    ),
    Cause.OOM: (
        "Set [[vm]] memory in fly.toml: a memory raise through the API lasts until the next "
        "deploy",
        "Look for a memory leak: profile the application and review recent changes",
    ),
    Cause.AUTOSCALING: (
        "Verify auto_stop_machines / auto_start_machines in fly.toml and that health checks or "
        "open connections do not keep idle machines alive (runbook Scenario 5)",
    ),
    Cause.DEPENDENCY: (
        "Add a circuit breaker around the failing dependency and a status page check "
        "(Supabase, OpenAI) to the watcher",
    ),
    Cause.RECENT_RELEASE: (
        "Add a canary / smoke test (synthetic check) to the deploy so that a bad release is "
        "rolled back before it takes all traffic",
    ),
    Cause.SIGNAL: (
        "Turn the reported condition into a measured signal the watcher can grade",
    ),
}

_RAISED = (Event.ESCALATED, Event.ESCALATED_TIMER)


def _worked(acts: Sequence[ActionRecord]) -> list[ActionRecord]:
    return [a for a in acts if a.outcome is Outcome.OK]


def report_title(incident: Incident, settings: Settings) -> str:
    """``High Error Rate on hotdash-api (Agent SDK)``: the first cause, the app, the service."""
    found = causes(incident, recent_release_s=settings.fly.recent_release_s)
    kind = _TITLES[found[0]] if found else "Incident"
    return f"{kind} on {incident.app} ({settings.service_name})"


def _end(incident: Incident, now: float) -> float:
    return incident.resolved_at if incident.resolved_at is not None else now


def _severity_minutes(incident: Incident, now: float) -> list[tuple[Severity, float]]:
    spent: dict[Severity, float] = {}
    entries = list(incident.timeline)
    end = _end(incident, now)
    for i, e in enumerate(entries):
        until = entries[i + 1].at if i + 1 < len(entries) else end
        if e.event is Event.RESOLVED:
            break
        spent[e.severity] = spent.get(e.severity, 0.0) + max(0.0, until - e.at)
    return sorted(spent.items(), key=lambda kv: -kv[0].rank)


def _peaks(samples: Sequence[Sequence[Any]], incident: Incident
           ) -> tuple[float | None, float | None, str]:
    during = [s for s in samples if s[0] >= incident.opened_at] or list(samples)
    ratios = [float(s[1]) for s in during if s[1] is not None]
    p95s = [float(s[2]) for s in during if s[2] is not None]
    if ratios or p95s:
        return (max(ratios) if ratios else None, max(p95s) if p95s else None,
                f"{len(during)} samples")
    ev = incident.evidence
    ratio, p95 = ev.get("error_ratio"), ev.get("p95_ms")
    return (float(ratio) if isinstance(ratio, int | float) else None,
            float(p95) if isinstance(p95, int | float) else None, "the last assessment")


def summary(incident: Incident, acts: Sequence[ActionRecord], settings: Settings,
            now: float) -> list[str]:
    reasons = opening_reasons(incident)
    first = reasons[0] if reasons else "a condition the watcher graded"
    opened = next((e for e in incident.timeline if e.event is Event.OPENED), None)
    start_sev = opened.severity if opened else incident.max_severity
    text = (f"{settings.service_name} app `{incident.app}` had a {sev(incident.max_severity)} "
            f"incident. hotdash-watch detected it at {hms(incident.opened_at)} UTC as "
            f"{start_sev.value}: {first}.")
    raised = [e for e in incident.timeline if e.event in _RAISED]
    if raised:
        text += " It was escalated " + ", then ".join(
            f"to {e.severity.value} at {hms(e.at)}" for e in raised) + "."
    worked = _worked(acts)
    if worked:
        text += f" It was mitigated by {describe(worked[-1])} at {hms(worked[-1].at)}."
    elif acts:
        text += f" {len(acts)} mitigation(s) were tried without success."
    if incident.resolved_at is not None:
        text += (f" Recovery was verified and the incident resolved at "
                 f"{hms(incident.resolved_at)} UTC, "
                 f"{duration_min(incident.resolved_at - incident.opened_at)} min after "
                 "detection.")
    else:
        text += (f" It is ongoing ({incident.state.status}) as of {iso_utc(now)}, "
                 f"{duration_min(now - incident.opened_at)} min after detection.")
    return [text]


def impact(incident: Incident, samples: Sequence[Sequence[Any]], settings: Settings,
           now: float) -> list[str]:
    peak_ratio, peak_p95, source = _peaks(samples, incident)
    measured = []
    if peak_ratio is not None:
        measured.append(f"up to {peak_ratio * 100:.1f} % of requests failed (peak error rate)")
    if peak_p95 is not None:
        measured.append(f"p95 latency peaked at {peak_p95:.0f} ms")
    users = ("; ".join(measured) + f", from {source}") if measured else "not measured"
    found = causes(incident, recent_release_s=settings.fly.recent_release_s)
    if Cause.ALL_MACHINES_DOWN in found:
        state = "down (all machines down)"
    elif Cause.PARTIAL_OUTAGE in found:
        state = "degraded (partial outage)"
    else:
        state = "degraded, not down"
    minutes = duration_min(_end(incident, now) - incident.opened_at)
    ongoing = "" if incident.resolved_at is not None else " so far (ongoing)"
    spent = ", ".join(f"{level.value} {duration_min(s)} min"
                      for level, s in _severity_minutes(incident, now))
    lines = [
        f"- **Users Affected**: {users}",
        f"- **Services Down**: {settings.service_name} `{incident.app}`: {state}",
        f"- **Duration**: {minutes} minutes{ongoing}",
        f"- **Peak Severity**: {sev(incident.max_severity)}",
    ]
    if spent:
        lines.append(f"- **Time at Each Severity**: {spent}")
    return lines


def root_cause(incident: Incident, acts: Sequence[ActionRecord],
               settings: Settings) -> list[str]:
    recent = settings.fly.recent_release_s
    findings_line = preliminary_root_cause(incident, acts, recent_release_s=recent)
    out = [f"**Preliminary findings**: {findings_line}",
           "", "Reasons given by the classifier when the incident opened:", ""]
    out += [f"- {r}" for r in opening_reasons(incident)] or ["- none recorded"]
    first = set(opening_reasons(incident))
    later = [r for r in condition_reasons(incident) if r not in first]
    if later:
        out += ["", "Reasons given later in the incident:", ""]
        out += [f"- {r}" for r in later]
    evidence = root_cause_findings(incident, recent_release_s=recent)
    if evidence:
        out += ["", "Evidence pointing at a cause:", ""]
        out += [f"- {f}" for f in evidence]
    worked = _worked(acts)
    out += ["", "Mitigation that worked: " + (
        f"{describe(worked[-1])} at {hms(worked[-1].at)} UTC" if worked
        else "none by the watcher")]
    out += ["", "_The confirmed root cause is to be completed by the team._"]
    return out


_CHECK_LINES = (
    ("quiet_for_s", "stabilization_s", "Stabilization: quiet for {0:g} s (required {1:g} s)"),
    ("consecutive_good_checks", "good_checks_required",
     "Health checks: {0} consecutive good (required {1})"),
)


def _verification(detail: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    used: set[str] = set()
    for have, need, text in _CHECK_LINES:
        if have in detail:
            out.append("- " + text.format(detail[have], detail.get(need, "?")))
            used |= {have, need}
    if "error_ratio" in detail:
        ratio, limit = detail["error_ratio"], detail.get("resolve_error_ratio")
        shown = "not measured" if ratio is None else f"{float(ratio) * 100:.2f} %"
        limit_s = "" if limit is None else f" (threshold {float(limit) * 100:.1f} %)"
        samples = f", over {detail['samples']} samples" if "samples" in detail else ""
        out.append(f"- Error rate: {shown}{limit_s}{samples}")
        used |= {"error_ratio", "resolve_error_ratio", "samples"}
    out += [f"- {k}: {v}" for k, v in detail.items() if k not in used]
    return out


def resolution(incident: Incident, acts: Sequence[ActionRecord], now: float) -> list[str]:
    out = ["Actions taken:", ""]
    if acts:
        for i, a in enumerate(acts, start=1):
            note = action_note(incident, a)
            out.append(f"{i}. {hms(a.at)} UTC: {describe(a)}" + (f" ({note})" if note else ""))
    else:
        out.append("- no automatic mitigation was taken by the watcher")
    resolved = next((e for e in reversed(incident.timeline) if e.event is Event.RESOLVED), None)
    out += ["", "Verification (runbook Phase 5):", ""]
    if resolved is not None:
        out += [f"- Resolved at {iso_utc(resolved.at)}: " + "; ".join(resolved.reasons)]
        out += _verification(resolved.detail)
    elif incident.state is State.RESOLVED:
        out.append("- resolved; no verification evidence was recorded")
    else:
        out.append(f"- not resolved yet: the incident is {incident.state.status} as of "
                   f"{iso_utc(now)}")
    return out


def preventive(incident: Incident, acts: Sequence[ActionRecord],
               settings: Settings) -> list[str]:
    items: list[str] = []
    for cause in causes(incident, recent_release_s=settings.fly.recent_release_s):
        items += [i.replace("<app>", incident.app) for i in _PREVENT[cause] if i not in items]
    if acts and not _worked(acts):
        items.append("Review why the automatic mitigations did not help and update the "
                     "runbook's mitigation table")
    items.append("Update the runbook with this failure mode and review the alert thresholds "
                 "(Phase 6)")
    return [f"{i}. {item} (Owner: TBD, Due: TBD)" for i, item in enumerate(items, start=1)]


def lessons(incident: Incident, acts: Sequence[ActionRecord],
            pages: Sequence[PageRecord]) -> list[str]:
    well: list[str] = []
    better: list[str] = []
    if pages:
        first = pages[0]
        well.append(f"the first page went out {max(0.0, first.at - incident.opened_at):.0f} s "
                    "after detection")
    if acts:
        well.append(f"the first mitigation started "
                    f"{duration_min(acts[0].at - incident.opened_at)} min after detection")
        failed = [a for a in acts if a.outcome is not Outcome.OK]
        if failed:
            better.append(f"{len(failed)} of {len(acts)} mitigations did not work: "
                          + ", ".join(describe(a) for a in failed))
    monitoring = next((e for e in incident.timeline if e.event is Event.MONITORING), None)
    if monitoring is not None:
        well.append(f"the signals cleared {duration_min(monitoring.at - incident.opened_at)} "
                    "min after detection")
    regressions = sum(e.event is Event.REGRESSED for e in incident.timeline)
    if regressions:
        better.append(f"the signals came back {regressions} time(s) during verification")
    raised = [e for e in incident.timeline if e.event in _RAISED]
    if raised:
        better.append(f"the incident got worse after detection ({len(raised)} escalation(s))")
    if not acts:
        better.append("no automatic mitigation was taken; check the policy covers this case")
    return [
        "_Generated from the timeline; to be completed by the team._",
        "",
        "- What went well: " + ("; ".join(well) if well else "to be completed by the team"),
        "- What could be improved: " + ("; ".join(better) if better
                                        else "to be completed by the team"),
        "- What we learned: to be completed by the team",
    ]


def appendix(incident: Incident, diagnostics_dir: str | None, link_base: str | None,
             settings: Settings) -> list[str]:
    out = []
    if diagnostics_dir is None:
        out.append("- Diagnostic artifacts: not captured")
    else:
        base = (link_base if link_base is not None else diagnostics_dir).rstrip("/")
        out.append(f"- Diagnostic artifacts (runbook Phase 3): `{diagnostics_dir}`")
        out += [f"  - [{name}]({base}/{name})" for name in artifact_names([incident.app])]
    out += [
        f"- Incident API: `/api/incidents/{incident.id}`",
        f"- This report from the store: `hotdash-watch report {incident.id}`",
        f"- Journal: `{settings.notify.journal_path}`",
        "- Related incidents: `hotdash-watch incidents`",
    ]
    return out


# --- the report -------------------------------------------------------------------------------


REPORTER = "hotdash-watch"


def _duration(incident: Incident, now: float) -> str:
    end = incident.resolved_at
    if end is not None:
        return (f"{iso_utc(incident.opened_at)} to {iso_utc(end)} "
                f"({duration_min(end - incident.opened_at)} min)")
    return (f"{iso_utc(incident.opened_at)} to ongoing "
            f"({duration_min(now - incident.opened_at)} min as of {iso_utc(now)})")


def render_report(
    incident: Incident,
    *,
    samples: Sequence[Sequence[Any]],
    actions: Sequence[ActionRecord] = (),
    pages: Sequence[PageRecord] = (),
    diagnostics_dir: str | None,
    settings: Settings,
    now: float,
    link_base: str | None = None,
) -> str:
    """The report of ``incident`` (see the module docstring).

    ``samples`` are the store's ``(at, error_ratio, p95_ms, severity)``; ``actions`` the
    store's action records of the incident; ``pages`` its outbox rows as ``PageRecord``s,
    oldest first. Links to the diagnostics use ``link_base`` when given (the report sits next
    to them), else ``diagnostics_dir``.
    """
    acts = mitigations(actions)
    pages = sorted(pages, key=lambda p: p.at)
    samples = list(samples)
    shown_day = day(incident.opened_at)
    lines = [
        f"# Incident Report: {report_title(incident, settings)}",
        "",
        f"**Incident ID**: {incident.id}  ",
        f"**Severity**: {sev(incident.max_severity)}  ",
        f"**Date**: {shown_day}  ",
        f"**Duration**: {_duration(incident, now)}  ",
        f"**Reporter**: {REPORTER}  ",
        f"**App**: {incident.app}  ",
        f"**Status**: {incident.state.status}",
        "",
        "## Summary",
        "",
        *summary(incident, acts, settings, now),
        "",
        "## Timeline",
        "",
        "Times are UTC.",
        "",
        *timeline_lines(incident, actions, pages, shown_day),
        "",
        incident_chart(incident, samples, acts, now=now),
        "",
        f"_Error rate and p95 latency from {len(samples)} samples, from "
        f"{LEAD_IN_S / 60:.0f} min before detection; dashed lines are the runbook's "
        "thresholds._",
        "",
        "## Impact",
        "",
        *impact(incident, samples, settings, now),
        "",
        "## Root Cause",
        "",
        *root_cause(incident, acts, settings),
        "",
        "## Resolution",
        "",
        *resolution(incident, acts, now),
        "",
        "## Preventive Actions",
        "",
        *preventive(incident, acts, settings),
        "",
        "## Lessons Learned",
        "",
        *lessons(incident, acts, pages),
        "",
        "## Appendix",
        "",
        *appendix(incident, diagnostics_dir, link_base, settings),
        "",
    ]
    return "\n".join(lines)


# --- reading it back --------------------------------------------------------------------------


_TITLE = re.compile(r"^# Incident Report: (?P<title>.*?)\s*$")
_FIELD = re.compile(r"^\*\*(?P<key>[^*]+)\*\*: (?P<value>.*?)\s*$")
_ROW = re.compile(r"^\| (?P<time>[^|]*?) \| (?P<cell>.*) \|$")
_ENTRY = re.compile(
    r"^\*\*(?P<label>.*?)\*\* — (?P<event>[a-z_]+), (?P<severity>SEV-[123]), "
    r"(?P<state>[a-z]+)(?:: (?P<reasons>.*))?$"
)
_OTHER = re.compile(r"^\*\*(?P<kind>Action|Page)\*\* — (?P<text>.*)$")
_FIELD_KEYS = {"Incident ID": "incident_id", "Severity": "severity", "Date": "date",
               "Duration": "duration", "Reporter": "reporter", "App": "app",
               "Status": "status"}


def _timeline_row(time: str, cell: str) -> dict[str, Any]:
    entry = _ENTRY.match(cell)
    if entry:
        reasons = entry.group("reasons")
        return {"time": time, "kind": "entry", "label": entry.group("label"),
                "event": entry.group("event"), "severity": entry.group("severity"),
                "state": entry.group("state"),
                "reasons": [] if reasons is None else [uncell(r) for r in reasons.split("<br>")]}
    other = _OTHER.match(cell)
    if other:
        return {"time": time, "kind": other.group("kind").lower(),
                "text": uncell(other.group("text"))}
    return {"time": time, "kind": "unknown", "text": uncell(cell)}


def parse_report(markdown: str) -> dict[str, Any]:
    """The header fields, section names, timeline rows and chart of a rendered report.

    Returns ``title``, ``incident_id``, ``severity``, ``date``, ``duration``, ``reporter``,
    ``app``, ``status`` (``fields`` holds every ``**Key**: value`` of the header as written),
    ``sections`` (the ``##`` headings), ``timeline`` (one dict per row: ``time``, ``kind``
    ``entry`` with ``event``, ``severity``, ``state``, ``reasons``, or ``action``/``page`` with
    ``text``) and ``svg`` (the inline chart, or ``None``).
    """
    out: dict[str, Any] = {"title": None, "fields": {}, "sections": [], "timeline": [],
                           "svg": None}
    section: str | None = None
    svg: list[str] | None = None
    header_rows = 0
    for line in markdown.splitlines():
        if svg is not None:
            svg.append(line)
            if line.strip().endswith("</svg>"):
                out["svg"] = "\n".join(svg)
                svg = None
            continue
        if out["title"] is None and (m := _TITLE.match(line)):
            out["title"] = m.group("title")
            continue
        if line.startswith("## "):
            section = line[3:].strip()
            out["sections"].append(section)
            continue
        if section is None and (m := _FIELD.match(line)):
            out["fields"][m.group("key")] = m.group("value")
            continue
        if section == "Timeline":
            if line.startswith("<svg") and out["svg"] is None:
                svg = [line]
                if line.strip().endswith("</svg>"):
                    out["svg"], svg = line, None
                continue
            if (m := _ROW.match(line)):
                header_rows += 1
                if header_rows <= 2:  # the heading row and the --- row
                    continue
                out["timeline"].append(_timeline_row(m.group("time"), m.group("cell")))
    for key, name in _FIELD_KEYS.items():
        out[name] = out["fields"].get(key)
    return out


# --- I/O --------------------------------------------------------------------------------------


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
