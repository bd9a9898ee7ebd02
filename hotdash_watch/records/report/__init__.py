"""The post-incident report (runbook Phase 6), in the runbook's "Incident Report Template".

``load`` reads everything a report shows from the store (incident and timeline, samples, action
records, outbox rows) and the incident's diagnostics folder; ``render`` fills the template from
those values, with the prose of ``sections`` and the table and chart of ``timeline``; ``parse``
reads a rendered report back. Only ``load`` does I/O. The report written at resolution and the
one ``hotdash-watch report`` prints come from the same ``load_report`` and ``render_loaded``.
"""

from hotdash_watch.records.report.load import (
    REPORT_FILE,
    IncidentNotFound,
    ReportInputs,
    ReportSource,
    load_report,
    render_loaded,
    report_text,
    write_report,
)
from hotdash_watch.records.report.parse import parse_report
from hotdash_watch.records.report.render import REPORTER, render_report
from hotdash_watch.records.report.sections import report_title
from hotdash_watch.records.report.timeline import (
    LEAD_IN_S,
    PageRecord,
    incident_chart,
    page_record,
)

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
