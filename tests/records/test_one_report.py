"""One report and one root cause: the report written at resolution is the one the CLI prints,
and the journal's ``Root Cause:`` is the report's preliminary findings.

The incident is the state machine's own (``run_story``), saved in a real store with a rollback
the store recorded (its timeline entries name it by ``action_id``), three pages in the outbox
and diagnostics captured beside the report.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotdash_watch import cli
from hotdash_watch.clock import ManualClock
from hotdash_watch.config import Settings
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.diagnostics import capture
from hotdash_watch.records.report import parse_report
from hotdash_watch.records.store import Store
from hotdash_watch.respond import Responder
from tests.records.conftest import APP, T0, run_story
from tests.support.factories import settings as make_settings

#: Three hours: older than the 2 h default window, younger than the 4 h one configured here.
RELEASE_AGE_S = 3 * 3600.0
NOW = T0 + 3600


def _settings(tmp_path: Path, recent_release_s: float) -> Settings:
    return make_settings(apps=[{"name": APP, "health_url": "http://127.0.0.1:9/h"}],
                         fly={"recent_release_s": recent_release_s},
                         notify={"artifacts_dir": str(tmp_path / "artifacts"),
                                 "journal_path": str(tmp_path / "reliability.md")})


async def _stored_incident(store: Store, settings: Settings) -> Incident:
    """The story with a release ``RELEASE_AGE_S`` old at detection, a rollback from +20 s to
    +200 s recorded by the store and in the timeline, and three pages; as the store has it."""
    story = run_story(settings)
    rollback = await store.add_action(ActionRecord(
        id=None, app=APP, incident_id=story.incident.id, kind=ActionKind.ROLLBACK, target=APP,
        reason="errors_after_release", text="roll back v4 -> v3", outcome=Outcome.STARTED,
        at=T0 + 20))
    assert rollback.id is not None
    await store.end_action(rollback.id, Outcome.OK, T0 + 200, {"result": "3 machines on v3"})
    for inc, entries in story.steps:
        evidence = {**inc.evidence, "probes": {"at": T0},
                    "release": {"current_version": 4, "deployed_s_ago": RELEASE_AGE_S}}
        inc = dataclasses.replace(inc, evidence=evidence)
        extra = []
        if entries[0].event is Event.ESCALATED:  # the rollback, between opening and SEV-1
            extra = [TimelineEntry(T0 + 20, Event.MITIGATING, State.MITIGATING, Severity.SEV2,
                                   notes=("started: roll back v4 -> v3",),
                                   detail={"starting": "rollback"}, action_id=rollback.id)]
        if entries[0].event is Event.MONITORING:
            extra = [TimelineEntry(T0 + 200, Event.NOTE, State.MONITORING, Severity.SEV1,
                                   notes=(f"rollback of {APP} ok: 3 machines on v3",),
                                   detail={"action": "rollback"}, action_id=rollback.id)]
        entries = tuple(sorted((*extra, *entries), key=lambda e: e.at))
        await store.save_incident(inc, entries)
    await store.enqueue_pages([
        {"key": f"{story.incident.id}:{event}:{n}", "channel": "slack",
         "incident_id": story.incident.id, "event": event, "severity": severity,
         "page": {"status": status}, "state": "sent", "sent_at": at + 1,
         "next_attempt_at": at, "created_at": at}
        for n, (event, severity, status, at) in enumerate([
            ("opened", "SEV-2", "Investigating", T0),
            ("severity_changed", "SEV-1", "Mitigating", T0 + 60),
            ("resolved", "SEV-1", "Resolved", T0 + 845)], start=1)])
    stored = await store.get_incident(story.incident.id)
    assert stored is not None and stored.resolved_at is not None
    return stored


def _written_report(settings: Settings) -> Path:
    [path] = Path(settings.notify.artifacts_dir).glob("incident-*/report.md")
    return path


def _lines_after(path: Path, prefix: str) -> list[str]:
    return [line.removeprefix(prefix) for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith(prefix)]


def _responder(settings: Settings, store: Store) -> Responder:
    clock = ManualClock(datetime.fromtimestamp(NOW, UTC))
    return Responder(settings, clock, store, metrics=None)


class TestOneReport:
    async def test_resolution_and_cli_reports_are_byte_identical(
        self, tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The report written at resolution, with pages, actions and diagnostics links, is
        what ``hotdash-watch report`` prints for the same store and ``now``."""
        settings = _settings(tmp_path, 4 * 3600)
        inc = await _stored_incident(store, settings)
        await capture(None, [APP], inc, Path(settings.notify.artifacts_dir),
                      clock=ManualClock())
        await _responder(settings, store)._report(inc)
        written = _written_report(settings)

        monkeypatch.setattr("hotdash_watch.clock.SystemClock.timestamp", lambda self: NOW)
        capsys.readouterr()
        assert await cli._print_report(argparse.Namespace(id=inc.id), store, settings) == 0
        printed = capsys.readouterr().out

        assert printed.encode("utf-8") == written.read_bytes()
        rows = parse_report(printed)["timeline"]
        assert [r["text"] for r in rows if r["kind"] == "page"] == [
            "SEV-2 Investigating (opened) via slack: sent",
            "SEV-1 Mitigating (severity_changed) via slack: sent",
            "SEV-1 Resolved (resolved) via slack: sent"]
        assert not [r for r in rows if r["kind"] == "action"]  # the entries name the rollback
        assert f"1. 12:00:25 UTC: rollback {APP} (ok) (rollback of {APP} ok: 3 machines on v3)" \
            in printed
        assert "[machines-detail.txt](./machines-detail.txt)" in printed


class TestOneRootCause:
    @pytest.mark.parametrize(("window_s", "cited"), [(4 * 3600, True), (2 * 3600, False)])
    async def test_journal_and_report_agree_on_the_release(
        self, tmp_path: Path, store: Store, window_s: float, cited: bool
    ) -> None:
        """A release 3 h old at detection is cited by both with a 4 h window, by neither with
        2 h; the journal's Root Cause line is the report's preliminary findings."""
        settings = _settings(tmp_path, window_s)
        inc = await _stored_incident(store, settings)
        responder = _responder(settings, store)
        resolved = next(e for e in inc.timeline if e.event is Event.RESOLVED)
        await responder._journal(inc, resolved)
        await responder._report(inc)

        [journal_cause] = _lines_after(Path(settings.notify.journal_path), "Root Cause: ")
        [report_cause] = _lines_after(_written_report(settings), "**Preliminary findings**: ")
        assert journal_cause == report_cause
        assert ("release v4 was deployed 180 min before detection" in journal_cause) is cited
        assert journal_cause.endswith(f"mitigated by rollback {APP} (ok) at 2026-03-01T12:00:25Z")
