"""Reading a rendered report back: its header fields, sections, timeline rows and chart. Pure.

The inverse of what ``render_report`` writes, for tests and tools that check a report against
the store it came from: an entry's row gives back its event, severity, state and reasons exactly.
"""

from __future__ import annotations

import re
from typing import Any

from hotdash_watch.records.report.markup import uncell

__all__ = ["parse_report"]

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
