"""The report's prose sections: title, Summary, Impact, Root Cause, Resolution, Preventive
Actions, Lessons Learned and Appendix, each a list of markdown lines.

``acts`` are the incident's mitigations (``records.findings.mitigations`` of the store's action
records: ended steps on Fly, oldest first); the root cause reads the same records through
``preliminary_root_cause``, as the journal does. Causes come from the typed findings and use
``fly.recent_release_s``. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hotdash_watch.model.action import ActionRecord, Outcome
from hotdash_watch.model.incident import Event, Incident, State
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.diagnostics import artifact_names
from hotdash_watch.records.findings import (
    Cause,
    causes,
    condition_reasons,
    describe,
    duration_min,
    iso_utc,
    opening_reasons,
    preliminary_root_cause,
    root_cause_findings,
)
from hotdash_watch.records.report.markup import hms, sev
from hotdash_watch.records.report.timeline import PageRecord, action_note

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = [
    "appendix",
    "impact",
    "lessons",
    "preventive",
    "report_title",
    "resolution",
    "root_cause",
    "summary",
]

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
