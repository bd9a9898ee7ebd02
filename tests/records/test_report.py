"""The post-incident report: rendered from the store, parsed back, timeline equal to the store's.

The incident is the state machine's own (``run_story``): SEV-2 at 12:00:05, SEV-1 at 12:01:05,
signals clear at 12:04:05, resolved at 12:14:10 after the 600 s stabilization.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hotdash_watch.clock import ManualClock
from hotdash_watch.config import Settings
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.page import OutboxRow, PageState
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.diagnostics import capture
from hotdash_watch.records.report import (
    IncidentNotFound,
    PageRecord,
    page_record,
    parse_report,
    render_report,
    report_text,
    write_report,
)
from hotdash_watch.records.store import Store
from tests.records.conftest import APP, T0, Story, action, run_story
from tests.support.factories import settings as make_settings

SVG = "{http://www.w3.org/2000/svg}"
SECTIONS = ["Summary", "Timeline", "Impact", "Root Cause", "Resolution", "Preventive Actions",
            "Lessons Learned", "Appendix"]


def hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def expected_rows(incident: Incident) -> list[dict[str, object]]:
    return [{"time": hms(e.at), "event": e.event.value, "severity": e.severity.value,
             "state": e.state.value, "reasons": list(e.reasons)} for e in incident.timeline]


def entry_rows(parsed: dict) -> list[dict[str, object]]:
    return [{k: row[k] for k in ("time", "event", "severity", "state", "reasons")}
            for row in parsed["timeline"] if row["kind"] == "entry"]


def samples_for(story: Story) -> list[tuple[str, float, float | None, float | None, str]]:
    """A sample every 15 s from 6 min before the opening to the end; a gap at +120..+150 s."""
    rows = []
    end = story.incident.resolved_at or T0 + 300
    t = T0 - 360
    while t <= end:
        dt = t - T0
        if dt < 0:
            ratio, p95 = 0.004, 90.0
        elif dt < 60:
            ratio, p95 = 0.2, 900.0
        elif dt < 240:
            ratio, p95 = 0.62, 2400.0
        else:
            ratio, p95 = 0.003, 85.0
        if 120 <= dt <= 150:
            ratio = p95 = None
        if dt < -300:
            p95 = 9999.0  # before the report's window: must not show
        rows.append((APP, t, ratio, p95, "SEV-1"))
        t += 15
    return rows


async def save(store: Store, story: Story) -> None:
    for inc, entries in story.steps:
        await store.save_incident(inc, entries)
    await store.add_samples(samples_for(story))


class TestRenderReport:
    """render_report fills the runbook's template from the incident alone (pure)."""

    def test_template_sections_and_header(self, settings: Settings) -> None:
        """The header has the template's fields and the sections come in its order."""
        story = run_story(settings)
        parsed = parse_report(render_report(story.incident, samples=[], diagnostics_dir=None,
                                            settings=settings, now=T0 + 900))
        assert parsed["title"] == "High Error Rate on hotdash-api (Agent SDK)"
        assert parsed["sections"] == SECTIONS
        assert parsed["incident_id"] == story.incident.id
        assert parsed["severity"] == "SEV-1 (Critical)"
        assert parsed["date"] == "2026-03-01"
        assert parsed["duration"] == "2026-03-01T12:00:05Z to 2026-03-01T12:14:10Z (14 min)"
        assert parsed["reporter"] == "hotdash-watch"
        assert parsed["status"] == "Resolved"

    def test_ongoing_incident(self, settings: Settings) -> None:
        """An open incident's duration runs to "ongoing" and the resolution says so."""
        story = run_story(settings, resolve=False)
        text = render_report(story.incident, samples=[], diagnostics_dir=None,
                             settings=settings, now=T0 + 600)
        parsed = parse_report(text)
        assert parsed["duration"] == (
            "2026-03-01T12:00:05Z to ongoing (10 min as of 2026-03-01T12:10:05Z)")
        assert parsed["status"] == "Monitoring"
        assert "- not resolved yet: the incident is Monitoring" in text

    def test_actions_and_pages_merge_in_time_order(self, settings: Settings) -> None:
        """Actions and pages sit between the timeline entries by time, with their outcomes."""
        story = run_story(settings)
        text = render_report(
            story.incident, samples=[], diagnostics_dir=None, settings=settings, now=T0,
            actions=[action(T0 + 90, "restart", "m1", "ok", text="checks critical")],
            pages=[PageRecord(T0 + 1, "slack", "opened", "SEV-2", "Investigating", "sent")])
        rows = parse_report(text)["timeline"]
        assert [(r["time"], r["kind"]) for r in rows] == [
            ("12:00:05", "entry"), ("12:00:06", "page"), ("12:01:05", "entry"),
            ("12:01:35", "action"), ("12:04:05", "entry"), ("12:14:10", "entry")]
        assert rows[3]["text"] == "restart m1 (ok): checks critical"
        assert rows[1]["text"] == "SEV-2 Investigating (opened) via slack: sent"
        assert "Mitigation that worked: restart m1 (ok) at 12:01:35 UTC" in text

    def test_awkward_reasons_read_back_exactly(self, settings: Settings) -> None:
        """Pipes, markup and ampersands in reasons survive the table."""
        reasons = ("operator: a | b", "x <br> y & z", "<script>", " two\nlines\\ ", "")
        inc = dataclasses.replace(run_story(settings).incident, timeline=(
            TimelineEntry(T0, Event.OPENED, State.INVESTIGATING, Severity.SEV1, notes=reasons),))
        parsed = parse_report(render_report(inc, samples=[], diagnostics_dir=None,
                                            settings=settings, now=T0))
        assert entry_rows(parsed) == expected_rows(inc)

    @hypothesis_settings(max_examples=60, deadline=None)
    @given(st.lists(st.text(max_size=30), max_size=4))
    def test_any_reasons_read_back_exactly(self, reasons: list[str]) -> None:
        """Whatever the reasons hold (line breaks, spaces, markup), they read back equal."""
        settings = make_settings(apps=[{"name": APP, "health_url": "http://127.0.0.1:9/h"}])
        entry = TimelineEntry(T0, Event.OPENED, State.INVESTIGATING, Severity.SEV1,
                              notes=tuple(reasons))
        inc = dataclasses.replace(run_story(settings).incident, timeline=(entry,))
        parsed = parse_report(render_report(inc, samples=[], diagnostics_dir=None,
                                            settings=settings, now=T0))
        assert entry_rows(parsed) == expected_rows(inc)

    @pytest.mark.parametrize(("reasons", "evidence", "expected"), [
        ((Finding(Reason.OOM_KILLS_MULTIPLE, Severity.SEV2,
                  "2 OOM kills in the window (exit 137, oom_killed)"),), {},
         "Set [[vm]] memory in fly.toml: a memory raise through the API lasts until the next "
         "deploy"),
        ((Finding(Reason.ERROR_RATE_MAJOR, Severity.SEV2,
                  "error rate 30.0 % over 60 s (30/100 probes) >= 10.0 %"),),
         {"release": {"current_version": 7, "deployed_s_ago": 120}},
         "Add a canary / smoke test"),
        ((Finding(Reason.ERROR_RATE_MAJOR, Severity.SEV2,
                  "error rate 30.0 % over 60 s (30/100 probes) >= 10.0 %"),),
         {"logs": {"dependency_hints": ["supabase"]}},
         "Add a circuit breaker around the failing dependency and a status page check"),
        ((Finding(Reason.ALL_MACHINES_DOWN, Severity.SEV1,
                  "all machines down: 0 of 3 started and healthy (Machines API)"),), {},
         "Keep at least two machines running"),
    ])
    def test_preventive_actions_follow_the_reasons(
        self, settings: Settings, reasons: tuple[Finding, ...], evidence: dict, expected: str
    ) -> None:
        """Each cause suggests its runbook remedy, with owner TBD."""
        base = run_story(settings).incident
        inc = dataclasses.replace(base, findings=reasons, evidence=evidence, timeline=(
            TimelineEntry(T0, Event.OPENED, State.INVESTIGATING, Severity.SEV2, reasons),
            *base.timeline[2:]))
        text = render_report(inc, samples=[], diagnostics_dir=None, settings=settings, now=T0)
        section = text.split("## Preventive Actions")[1].split("## ")[0]
        line = next(line for line in section.splitlines() if expected in line)
        assert line.endswith("(Owner: TBD, Due: TBD)")

    def test_appendix_links(self, settings: Settings) -> None:
        """The appendix links every diagnostics file and names the incident API path."""
        story = run_story(settings)
        text = render_report(story.incident, samples=[], diagnostics_dir="art/incident-x",
                             settings=settings, now=T0)
        appendix = text.split("## Appendix")[1]
        assert "[app-status.txt](art/incident-x/app-status.txt)" in appendix
        assert f"[logs-{APP}.txt](art/incident-x/logs-{APP}.txt)" in appendix
        assert f"`/api/incidents/{story.incident.id}`" in appendix


class TestWriteReport:
    """write_report renders from a real store; the file parses back to the store's timeline."""

    async def test_round_trip_through_the_store(self, tmp_path: Path, settings: Settings,
                                                store: Store) -> None:
        """Header fields and timeline rows equal the store's; the chart is well-formed SVG."""
        story = run_story(settings)
        await save(store, story)
        path = await write_report(store, story.incident.id, tmp_path, settings=settings,
                                  now=T0 + 3600)
        assert path == tmp_path / "incident-20260301-120005" / "report.md"
        stored = await store.get_incident(story.incident.id)
        assert stored is not None
        parsed = parse_report(path.read_text(encoding="utf-8"))
        assert parsed["incident_id"] == stored.id
        assert parsed["severity"] == f"{stored.max_severity.value} (Critical)"
        assert parsed["duration"] == "2026-03-01T12:00:05Z to 2026-03-01T12:14:10Z (14 min)"
        assert entry_rows(parsed) == expected_rows(stored)
        assert [r["event"] for r in entry_rows(parsed)] == [
            "opened", "escalated", "monitoring", "resolved"]

        root = ET.fromstring(parsed["svg"])
        assert root.tag == f"{SVG}svg"
        paths = {g.get("data-series"): len(g.findall(f"{SVG}path"))
                 for g in root.iter(f"{SVG}g") if g.get("data-series")}
        assert paths == {"error_rate_pct": 2, "p95_ms": 2}  # the gap at +120..+150 s
        marks = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "marks"
                 for t in g.iter(f"{SVG}text")]
        assert marks == ["opened SEV-2", "SEV-1", "monitoring", "resolved"]

    async def test_impact_is_measured_from_the_samples(self, tmp_path: Path,
                                                       settings: Settings, store: Store) -> None:
        """Peak error rate and p95 come from the samples inside the report's window."""
        story = run_story(settings)
        await save(store, story)
        text = (await write_report(store, story.incident.id, tmp_path, settings=settings,
                                   now=T0)).read_text(encoding="utf-8")
        assert ("**Users Affected**: up to 62.0 % of requests failed (peak error rate); "
                "p95 latency peaked at 2400 ms") in text
        assert "9999" not in text
        assert "- Stabilization: quiet for 605 s (required 600 s)" in text
        assert "- Health checks: 10 consecutive good (required 5)" in text

    async def test_links_to_diagnostics_captured_beside_it(
        self, tmp_path: Path, settings: Settings, store: Store
    ) -> None:
        """When diagnostics were captured, the report sits with them and links them."""
        story = run_story(settings)
        await save(store, story)
        await capture(None, [APP], story.incident, tmp_path, clock=ManualClock())
        path = await write_report(store, story.incident.id, tmp_path, settings=settings,
                                  now=T0)
        text = path.read_text(encoding="utf-8")
        assert "[machines-detail.txt](./machines-detail.txt)" in text
        assert f"`{path.parent}`" in text

    async def test_report_text_prints_the_same_report(self, tmp_path: Path,
                                                      store: Store) -> None:
        """report_text renders the stored incident again, equal to the written file."""
        settings = make_settings(apps=[{"name": APP, "health_url": "http://127.0.0.1:9/h"}],
                                 notify={"artifacts_dir": str(tmp_path)})
        story = run_story(settings)
        await save(store, story)
        path = await write_report(store, story.incident.id, tmp_path, settings=settings,
                                  now=T0)
        again = await report_text(store, story.incident.id, settings=settings, now=T0)
        assert again == path.read_text(encoding="utf-8")

    async def test_unknown_incident(self, tmp_path: Path, settings: Settings,
                                    store: Store) -> None:
        """An ID the store does not know raises IncidentNotFound."""
        with pytest.raises(IncidentNotFound, match="INC-19990101-000000"):
            await write_report(store, "INC-19990101-000000", tmp_path, settings=settings,
                               now=T0)
        with pytest.raises(IncidentNotFound):
            await report_text(store, "INC-19990101-000000", settings=settings, now=T0)


class TestActionsAndPages:
    """Actions come from the store's records, linked to the entries that name them; pages
    from the outbox's rows."""

    def _with_rollback(self, settings: Settings) -> tuple[Incident, list]:
        """The story with a rollback (action 7) started at +20 s and ended at +200 s, both
        recorded in the timeline, and an unrecorded restart (action 8) at +30 s."""
        base = run_story(settings).incident
        started = TimelineEntry(T0 + 20, Event.MITIGATING, State.MITIGATING, Severity.SEV2,
                                notes=("started: roll back v3 -> v2",), action_id=7,
                                detail={"starting": "rollback"})
        ended = TimelineEntry(T0 + 200, Event.NOTE, State.MITIGATING, Severity.SEV1,
                              notes=("rollback of hotdash-api ok: 3 machines on v2",),
                              action_id=7, detail={"action": "rollback"})
        timeline = sorted((*base.timeline, started, ended), key=lambda e: e.at)
        inc = dataclasses.replace(base, timeline=tuple(timeline))
        acts = [action(T0 + 20, "rollback", APP, "ok", id=7, ended_at=T0 + 200,
                       text="roll back v3 -> v2"),
                action(T0 + 30, "restart", "m1", "failed", id=8, text="checks critical")]
        return inc, acts

    def test_an_action_in_the_timeline_is_not_listed_twice(self, settings: Settings) -> None:
        """The rollback's entries are its rows; the restart no entry names gets its own."""
        inc, acts = self._with_rollback(settings)
        text = render_report(inc, samples=[], diagnostics_dir=None, settings=settings,
                             now=T0, actions=acts)
        rows = parse_report(text)["timeline"]
        assert [r["text"] for r in rows if r["kind"] == "action"] == [
            "restart m1 (failed): checks critical"]
        assert [r["reasons"] for r in rows if r["kind"] == "entry"
                and r["event"] in ("mitigating", "note")] == [
            ["started: roll back v3 -> v2"], ["rollback of hotdash-api ok: 3 machines on v2"]]

    def test_resolution_lists_each_mitigation_once_with_how_it_ended(
        self, settings: Settings
    ) -> None:
        """Each ended step once, in time order, with the timeline's word on its end."""
        inc, acts = self._with_rollback(settings)
        text = render_report(inc, samples=[], diagnostics_dir=None, settings=settings,
                             now=T0, actions=[*acts, action(T0 + 40, "page", APP, "ok", id=9)])
        section = text.split("## Resolution")[1].split("## ")[0]
        assert [line for line in section.splitlines() if line[:1].isdigit()] == [
            "1. 12:00:25 UTC: rollback hotdash-api (ok) (rollback of hotdash-api ok: "
            "3 machines on v2)",
            "2. 12:00:35 UTC: restart m1 (failed) (checks critical)",
        ]
        assert "Mitigation that worked: rollback hotdash-api (ok) at 12:00:25 UTC" in text

    def test_page_record(self, settings: Settings) -> None:
        """A PageRecord becomes a Page row."""
        story = run_story(settings)
        text = render_report(story.incident, samples=[], diagnostics_dir=None,
                             settings=settings, now=T0,
                             pages=[PageRecord(T0 + 2, "pagerduty", "opened", "SEV-2")])
        rows = [r for r in parse_report(text)["timeline"] if r["kind"] == "page"]
        assert rows == [{"time": "12:00:07", "kind": "page",
                         "text": "SEV-2 (opened) via pagerduty"}]

    @pytest.mark.parametrize(("sent_at", "state", "at", "outcome"), [
        (T0 + 3, PageState.SENT, T0 + 3, "sent"),
        (None, PageState.PENDING, T0, "pending"),
        (None, PageState.HANDED_OVER, T0, "handed_over"),
    ])
    def test_from_an_outbox_row(self, sent_at: float | None, state: PageState, at: float,
                                outcome: str) -> None:
        """A row shows when it was sent (queued, while not sent), the page's STATUS and how
        delivery stands."""
        row = OutboxRow(id=1, key="k", channel="slack", incident_id="INC-1", event="opened",
                        severity="SEV-1", page={"status": "Investigating"}, state=state,
                        attempts=1, next_attempt_at=T0, created_at=T0, sent_at=sent_at,
                        last_error=None)
        assert page_record(row) == PageRecord(at, "slack", "opened", "SEV-1", "Investigating",
                                              outcome)
