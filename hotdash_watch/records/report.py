"""The post-incident report (runbook Phase 6), in the runbook's "Incident Report Template".

``render_report`` is pure: an incident with its timeline, its samples, the actions taken and the
pages sent, the settings and ``now`` go in; markdown comes out::

    # Incident Report: High Error Rate on hotdash-api (Agent SDK)
    **Incident ID**: INC-20260301-120005
    **Severity**: SEV-1 (Critical)          the worst severity the incident reached
    **Date**: 2026-03-01
    **Duration**: 2026-03-01T12:00:05Z to 2026-03-01T12:20:05Z (20 min)   ("to ongoing" if open)
    **Reporter**: hotdash-watch
    ## Summary / ## Timeline (table, then an inline SVG chart) / ## Impact / ## Root Cause /
    ## Resolution / ## Preventive Actions / ## Lessons Learned / ## Appendix

The timeline table has one row per timeline entry, in the store's order, with actions and pages
merged in by time. An entry's cell reads ``**Incident detected** — opened, SEV-1,
investigating: <reason><br><reason>`` so that ``parse_report`` can read event, severity, state
and reasons back exactly (``&``, ``<``, ``|``, ``\\`` and line breaks in reasons are written as
HTML entities).

``write_report`` and ``report_text`` are the thin I/O around it: they read the incident and its
samples (from 5 minutes before the opening to the resolution, or ``now``) from the store.
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

from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.chart import svg_chart
from hotdash_watch.records.diagnostics import artifact_names, incident_dir
from hotdash_watch.records.findings import (
    Cause,
    causes,
    condition_reasons,
    duration_min,
    iso_utc,
    opening_reasons,
    root_cause_findings,
)
from hotdash_watch.records.journal import (
    ActionRecord,
    PageRecord,
    actions_in_timeline,
    as_actions,
    as_pages,
    preliminary_root_cause,
)

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = [
    "LEAD_IN_S",
    "REPORTER",
    "IncidentNotFound",
    "incident_chart",
    "parse_report",
    "render_report",
    "report_text",
    "report_title",
    "write_report",
]

REPORTER = "hotdash-watch"
#: How far before the opening the samples and the chart reach.
LEAD_IN_S = 300.0
REPORT_FILE = "report.md"


class IncidentNotFound(LookupError):
    """No incident with that ID is in the store."""


class IncidentSource(Protocol):
    """What the report reads from the store (``records.store.Store`` is one)."""

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def samples(self, app: str, start: float, end: float) -> Sequence[Sequence[Any]]: ...


# --- words ----------------------------------------------------------------------------------------

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


def _hms(ts: float, day: str | None = None) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    if day is not None and dt.strftime("%Y-%m-%d") != day:
        return dt.strftime("%Y-%m-%d %H:%M:%S")
    return dt.strftime("%H:%M:%S")


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _sev(severity: Severity) -> str:
    return f"{severity.value} ({severity.title})"


# Characters that would end a table row (str.splitlines breaks on each), written as entities.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_CELL_ESCAPES = {"&": "&amp;", "<": "&lt;", "|": "&#124;", "\\": "&#92;",
                 **{ch: f"&#{ord(ch)};" for ch in _LINE_BREAKS}}


def _cell(text: str) -> str:
    """``text`` safe in one table cell and exactly recoverable (``_uncell``)."""
    return "".join(_CELL_ESCAPES.get(ch, ch) for ch in str(text))


_ENTITY = re.compile(r"&(amp|lt|#[0-9]+);")


def _uncell(text: str) -> str:
    """The inverse of ``_cell``: only the entities it writes are read (not ``html.unescape``,
    which maps some control characters elsewhere)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return {"amp": "&", "lt": "<"}.get(name) or chr(int(name[1:]))

    return _ENTITY.sub(one, text)


def report_title(incident: Incident, settings: Settings) -> str:
    """``High Error Rate on hotdash-api (Agent SDK)``: the first cause, the app, the service."""
    found = causes(incident, recent_release_s=settings.fly.recent_release_s)
    kind = _TITLES[found[0]] if found else "Incident"
    return f"{kind} on {incident.app} ({settings.service_name})"


# --- the timeline ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    at: float
    cell: str


def _entry_cell(e: TimelineEntry) -> str:
    label = _LABELS.get(e.event, e.event.value)
    before = e.detail.get("from") if isinstance(e.detail, Mapping) else None
    if before and e.event in (Event.ESCALATED, Event.ESCALATED_TIMER, Event.DEESCALATED):
        label += f" from {before}"
    head = f"**{label}** — {e.event.value}, {e.severity.value}, {e.state.value}"
    if e.reasons:
        head += ": " + "<br>".join(_cell(r) for r in e.reasons)
    return head


def _action_cell(a: ActionRecord) -> str:
    text = f"**Action** — {_cell(a.describe())}"
    return text + (f": {_cell(a.reason)}" if a.reason else "")


def _page_cell(p: PageRecord) -> str:
    return f"**Page** — {_cell(p.describe())}"


def _timeline_rows(incident: Incident, actions: Sequence[ActionRecord],
                   pages: Sequence[PageRecord]) -> list[_Row]:
    entries = [_Row(e.at, _entry_cell(e)) for e in incident.timeline]
    acts = [_Row(a.at, _action_cell(a)) for a in actions]
    sent = [_Row(p.at, _page_cell(p)) for p in pages]
    # A merge, not a sort: the timeline keeps the store's order whatever its times.
    return list(heapq.merge(entries, acts, sent, key=lambda r: r.at))


# --- the chart ------------------------------------------------------------------------------------


def _points(samples: Iterable[Sequence[Any]]) -> list[tuple[float, float | None, float | None]]:
    return [(float(s[0]), s[1], s[2]) for s in samples]


def incident_chart(incident: Incident, samples: Iterable[Sequence[Any]],
                   actions: Iterable[Any] = (), *, now: float) -> str:
    """The report's SVG: samples from ``LEAD_IN_S`` before the opening to the end."""
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
        elif e.event in (Event.ESCALATED, Event.ESCALATED_TIMER, Event.DEESCALATED):
            marks.append((e.at, e.severity.value))
    marks += [(a.at, a.kind) for a in as_actions(actions)]
    return svg_chart(_points(samples), start=start, end=end, marks=marks,
                     title=f"Error rate and p95 latency of {incident.app}, {incident.id}")


# --- sections -------------------------------------------------------------------------------------


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


def _summary(incident: Incident, acts: Sequence[ActionRecord], settings: Settings,
             now: float) -> list[str]:
    reasons = opening_reasons(incident)
    first = reasons[0] if reasons else "a condition the watcher graded"
    opened = next((e for e in incident.timeline if e.event is Event.OPENED), None)
    start_sev = opened.severity if opened else incident.max_severity
    text = (f"{settings.service_name} app `{incident.app}` had a {_sev(incident.max_severity)} "
            f"incident. hotdash-watch detected it at {_hms(incident.opened_at)} UTC as "
            f"{start_sev.value}: {first}.")
    raised = [e for e in incident.timeline
              if e.event in (Event.ESCALATED, Event.ESCALATED_TIMER)]
    if raised:
        text += " It was escalated " + ", then ".join(
            f"to {e.severity.value} at {_hms(e.at)}" for e in raised) + "."
    worked = [a for a in acts if a.worked]
    if worked:
        text += f" It was mitigated by {worked[-1].describe()} at {_hms(worked[-1].at)}."
    elif acts:
        text += f" {len(acts)} mitigation(s) were tried without success."
    if incident.resolved_at is not None:
        text += (f" Recovery was verified and the incident resolved at "
                 f"{_hms(incident.resolved_at)} UTC, "
                 f"{duration_min(incident.resolved_at - incident.opened_at)} min after "
                 "detection.")
    else:
        text += (f" It is ongoing ({incident.state.status}) as of {iso_utc(now)}, "
                 f"{duration_min(now - incident.opened_at)} min after detection.")
    return [text]


def _impact(incident: Incident, samples: Sequence[Sequence[Any]], settings: Settings,
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
    spent = ", ".join(f"{sev.value} {duration_min(s)} min"
                      for sev, s in _severity_minutes(incident, now))
    lines = [
        f"- **Users Affected**: {users}",
        f"- **Services Down**: {settings.service_name} `{incident.app}`: {state}",
        f"- **Duration**: {minutes} minutes{ongoing}",
        f"- **Peak Severity**: {_sev(incident.max_severity)}",
    ]
    if spent:
        lines.append(f"- **Time at Each Severity**: {spent}")
    return lines


def _later_reasons(incident: Incident) -> list[str]:
    first = set(opening_reasons(incident))
    return [r for r in condition_reasons(incident) if r not in first]


def _root_cause(incident: Incident, acts: Sequence[ActionRecord],
                settings: Settings) -> list[str]:
    recent = settings.fly.recent_release_s
    findings_line = preliminary_root_cause(incident, acts, recent_release_s=recent)
    out = [f"**Preliminary findings**: {findings_line}",
           "", "Reasons given by the classifier when the incident opened:", ""]
    out += [f"- {r}" for r in opening_reasons(incident)] or ["- none recorded"]
    later = _later_reasons(incident)
    if later:
        out += ["", "Reasons given later in the incident:", ""]
        out += [f"- {r}" for r in later]
    findings = root_cause_findings(incident, recent_release_s=recent)
    if findings:
        out += ["", "Evidence pointing at a cause:", ""]
        out += [f"- {f}" for f in findings]
    worked = [a for a in acts if a.worked]
    out += ["", "Mitigation that worked: " + (
        f"{worked[-1].describe()} at {_hms(worked[-1].at)} UTC" if worked
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


def _resolution(incident: Incident, acts: Sequence[ActionRecord], now: float) -> list[str]:
    out = ["Actions taken:", ""]
    if acts:
        out += [f"{i}. {_hms(a.at)} UTC: {a.describe()}" + (f" ({a.reason})" if a.reason else "")
                for i, a in enumerate(acts, start=1)]
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


def _preventive(incident: Incident, acts: Sequence[ActionRecord],
                settings: Settings) -> list[str]:
    items: list[str] = []
    for cause in causes(incident, recent_release_s=settings.fly.recent_release_s):
        items += [i.replace("<app>", incident.app) for i in _PREVENT[cause] if i not in items]
    if acts and not any(a.worked for a in acts):
        items.append("Review why the automatic mitigations did not help and update the "
                     "runbook's mitigation table")
    items.append("Update the runbook with this failure mode and review the alert thresholds "
                 "(Phase 6)")
    return [f"{i}. {item} (Owner: TBD, Due: TBD)" for i, item in enumerate(items, start=1)]


def _lessons(incident: Incident, acts: Sequence[ActionRecord], pages: Sequence[PageRecord],
             now: float) -> list[str]:
    well: list[str] = []
    better: list[str] = []
    if pages:
        first = pages[0]
        well.append(f"the first page went out {max(0.0, first.at - incident.opened_at):.0f} s "
                    "after detection")
    if acts:
        well.append(f"the first mitigation started "
                    f"{duration_min(acts[0].at - incident.opened_at)} min after detection")
        failed = [a for a in acts if not a.worked]
        if failed:
            better.append(f"{len(failed)} of {len(acts)} mitigations did not work: "
                          + ", ".join(a.describe() for a in failed))
    monitoring = next((e for e in incident.timeline if e.event is Event.MONITORING), None)
    if monitoring is not None:
        well.append(f"the signals cleared {duration_min(monitoring.at - incident.opened_at)} "
                    "min after detection")
    regressions = sum(e.event is Event.REGRESSED for e in incident.timeline)
    if regressions:
        better.append(f"the signals came back {regressions} time(s) during verification")
    raised = [e for e in incident.timeline if e.event in (Event.ESCALATED, Event.ESCALATED_TIMER)]
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


def _appendix(incident: Incident, diagnostics_dir: str | None, link_base: str | None,
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


def render_report(
    incident: Incident,
    *,
    samples: Sequence[Sequence[Any]],
    actions: Iterable[Any] = (),
    pages: Iterable[Any] = (),
    diagnostics_dir: str | None,
    settings: Settings,
    now: float,
    link_base: str | None = None,
) -> str:
    """The report in the runbook's template (see the module docstring). Pure.

    ``samples`` are the store's ``(at, error_ratio, p95_ms, severity)``; ``actions`` and
    ``pages`` anything ``as_actions`` / ``as_pages`` take. Links to the diagnostics use
    ``link_base`` when given (the report sits next to them), else ``diagnostics_dir``.
    """
    given = as_actions(actions)
    seen = {(a.at, a.kind, a.target) for a in given}
    acts = sorted(given + [a for a in actions_in_timeline(incident)
                           if (a.at, a.kind, a.target) not in seen], key=lambda a: a.at)
    sent = as_pages(pages)
    samples = list(samples)
    end = incident.resolved_at
    duration = (f"{iso_utc(incident.opened_at)} to {iso_utc(end)} "
                f"({duration_min(end - incident.opened_at)} min)") if end is not None else (
        f"{iso_utc(incident.opened_at)} to ongoing "
        f"({duration_min(now - incident.opened_at)} min as of {iso_utc(now)})")
    day = _day(incident.opened_at)
    lines = [
        f"# Incident Report: {report_title(incident, settings)}",
        "",
        f"**Incident ID**: {incident.id}  ",
        f"**Severity**: {_sev(incident.max_severity)}  ",
        f"**Date**: {day}  ",
        f"**Duration**: {duration}  ",
        f"**Reporter**: {REPORTER}  ",
        f"**App**: {incident.app}  ",
        f"**Status**: {incident.state.status}",
        "",
        "## Summary",
        "",
        *_summary(incident, acts, settings, now),
        "",
        "## Timeline",
        "",
        "Times are UTC.",
        "",
        "| Time | Event |",
        "| ---- | ----- |",
        *(f"| {_hms(r.at, day)} | {r.cell} |"
          for r in _timeline_rows(incident, [a for a in acts if (a.at, a.kind, a.target) in seen],
                                  sent)),
        "",
        incident_chart(incident, samples, acts, now=now),
        "",
        f"_Error rate and p95 latency from {len(samples)} samples, from "
        f"{LEAD_IN_S / 60:.0f} min before detection; dashed lines are the runbook's "
        "thresholds._",
        "",
        "## Impact",
        "",
        *_impact(incident, samples, settings, now),
        "",
        "## Root Cause",
        "",
        *_root_cause(incident, acts, settings),
        "",
        "## Resolution",
        "",
        *_resolution(incident, acts, now),
        "",
        "## Preventive Actions",
        "",
        *_preventive(incident, acts, settings),
        "",
        "## Lessons Learned",
        "",
        *_lessons(incident, acts, sent, now),
        "",
        "## Appendix",
        "",
        *_appendix(incident, diagnostics_dir, link_base, settings),
        "",
    ]
    return "\n".join(lines)


# --- reading it back ------------------------------------------------------------------------------

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
                "reasons": [] if reasons is None else [_uncell(r) for r in reasons.split("<br>")]}
    other = _OTHER.match(cell)
    if other:
        return {"time": time, "kind": other.group("kind").lower(),
                "text": _uncell(other.group("text"))}
    return {"time": time, "kind": "unknown", "text": _uncell(cell)}


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


# --- I/O ------------------------------------------------------------------------------------------


async def _load(store: IncidentSource, incident_id: str, now: float
                ) -> tuple[Incident, list[Sequence[Any]]]:
    incident = await store.get_incident(incident_id)
    if incident is None:
        raise IncidentNotFound(f"no incident {incident_id!r} in the store")
    end = incident.resolved_at if incident.resolved_at is not None else now
    samples = await store.samples(incident.app, incident.opened_at - LEAD_IN_S, end)
    return incident, list(samples)


def _has_diagnostics(directory: Path) -> bool:
    return directory.is_dir() and any(
        p.name != REPORT_FILE and not p.name.endswith(".tmp") for p in directory.iterdir())


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


async def write_report(
    store: IncidentSource,
    incident_id: str,
    out_dir: Path,
    *,
    settings: Settings,
    now: float,
    actions: Iterable[Any] = (),
    pages: Iterable[Any] = (),
) -> Path:
    """Render the incident from the store to ``out_dir/incident-<ts>/report.md``; its path.

    ``IncidentNotFound`` for an unknown ID; ``StoreError`` or ``OSError`` when reading or
    writing fails.
    """
    incident, samples = await _load(store, incident_id, now)
    directory = incident_dir(Path(out_dir), incident)
    captured = await asyncio.to_thread(_has_diagnostics, directory)
    text = render_report(incident, samples=samples, actions=actions, pages=pages,
                         diagnostics_dir=str(directory) if captured else None,
                         link_base="." if captured else None, settings=settings, now=now)
    path = directory / REPORT_FILE
    await asyncio.to_thread(_write_text, path, text)
    return path


async def report_text(store: IncidentSource, incident_id: str, *, settings: Settings,
                      now: float, actions: Iterable[Any] = (), pages: Iterable[Any] = ()
                      ) -> str:
    """The report of ``incident_id`` rendered again from the store (``hotdash-watch report``)."""
    incident, samples = await _load(store, incident_id, now)
    directory = incident_dir(Path(settings.notify.artifacts_dir), incident)
    captured = await asyncio.to_thread(_has_diagnostics, directory)
    return render_report(incident, samples=samples, actions=actions, pages=pages,
                         diagnostics_dir=str(directory) if captured else None,
                         settings=settings, now=now)
