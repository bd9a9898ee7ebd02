"""The report in the runbook's "Incident Report Template", from values already loaded. Pure::

    # Incident Report: High Error Rate on hotdash-api (Agent SDK)
    **Incident ID**: INC-20260301-120005
    **Severity**: SEV-1 (Critical)          the worst severity the incident reached
    **Date**: 2026-03-01
    **Duration**: 2026-03-01T12:00:05Z to 2026-03-01T12:20:05Z (20 min)   ("to ongoing" if open)
    **Reporter**: hotdash-watch
    ## Summary / ## Timeline (table, then an inline SVG chart) / ## Impact / ## Root Cause /
    ## Resolution / ## Preventive Actions / ## Lessons Learned / ## Appendix
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hotdash_watch.model.action import ActionRecord
from hotdash_watch.model.incident import Incident
from hotdash_watch.records.findings import duration_min, iso_utc, mitigations
from hotdash_watch.records.report import sections
from hotdash_watch.records.report.markup import day, sev
from hotdash_watch.records.report.timeline import (
    LEAD_IN_S,
    PageRecord,
    incident_chart,
    timeline_lines,
)

if TYPE_CHECKING:
    from hotdash_watch.config import Settings

__all__ = ["REPORTER", "render_report"]

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
        f"# Incident Report: {sections.report_title(incident, settings)}",
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
        *sections.summary(incident, acts, settings, now),
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
        *sections.impact(incident, samples, settings, now),
        "",
        "## Root Cause",
        "",
        *sections.root_cause(incident, acts, settings),
        "",
        "## Resolution",
        "",
        *sections.resolution(incident, acts, now),
        "",
        "## Preventive Actions",
        "",
        *sections.preventive(incident, acts, settings),
        "",
        "## Lessons Learned",
        "",
        *sections.lessons(incident, acts, pages),
        "",
        "## Appendix",
        "",
        *sections.appendix(incident, diagnostics_dir, link_base, settings),
        "",
    ]
    return "\n".join(lines)
