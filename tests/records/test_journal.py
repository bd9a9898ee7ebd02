"""The runbook's journal: exact line formats, root-cause text, and appends that never tear."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdash_watch.config import Settings
from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.findings import (
    CAUSE_OF,
    Cause,
    causes,
    describe,
    duration_min,
    iso_utc,
    mitigations,
    preliminary_root_cause,
)
from hotdash_watch.records.journal import (
    Journal,
    action_lines,
    opened_lines,
    resolved_lines,
    severity_lines,
)
from tests.records.conftest import APP, T0, action, run_story

REASON = "error rate 62.0 % over 60 s (62/100 probes) > 50.0 %"


def incident(severity: Severity = Severity.SEV1, *, reasons: tuple[str | Finding, ...] = (REASON,),
             evidence: dict | None = None, resolved_at: float | None = None,
             timeline: tuple[TimelineEntry, ...] | None = None) -> Incident:
    """An incident opened at T0 with ``reasons`` as its findings (a sentence stands for an
    error-rate finding)."""
    findings = tuple(r if isinstance(r, Finding) else
                     Finding(Reason.ERROR_RATE_CRITICAL, severity, r) for r in reasons)
    opened = TimelineEntry(T0, Event.OPENED, State.INVESTIGATING, severity, findings)
    return Incident(
        id="INC-20260301-120005", app=APP,
        state=State.RESOLVED if resolved_at is not None else State.INVESTIGATING,
        severity=severity, max_severity=severity, opened_at=T0, updated_at=T0,
        severity_since=T0, resolved_at=resolved_at, findings=findings, evidence=evidence or {},
        timeline=(opened,) if timeline is None else timeline)


class TestOpenedLines:
    """opened_lines writes Phase 2's lines in the runbook's exact wording."""

    @pytest.mark.parametrize(("severity", "title"), [
        (Severity.SEV1, "Critical"), (Severity.SEV2, "Major"), (Severity.SEV3, "Minor")])
    def test_runbook_lines(self, severity: Severity, title: str) -> None:
        """Header, Severity, Impact and Action Taken follow the runbook's echo lines."""
        assert opened_lines(incident(severity), T0) == [
            f"[2026-03-01T12:00:05Z] {severity.value} INCIDENT - Agent SDK ({APP})",
            f"Severity: {severity.value} ({title})",
            f"Impact: {REASON}",
            "Action Taken: none yet (investigating)",
            "Incident ID: INC-20260301-120005",
        ]

    def test_service_name_and_actions(self) -> None:
        """The service name comes from settings and the actions fill Action Taken."""
        lines = opened_lines(
            incident(), T0 + 3, [action(T0 + 1, "restart", "148e21ea7e0389", "ok")],
            settings=Settings(service_name="LlamaIndex MCP"))
        assert lines[0] == f"[2026-03-01T12:00:08Z] SEV-1 INCIDENT - LlamaIndex MCP ({APP})"
        assert lines[3] == "Action Taken: restart 148e21ea7e0389 (ok)"

    def test_several_reasons_share_the_impact_line(self) -> None:
        """Every opening reason is on the one Impact line, separated by semicolons."""
        lines = opened_lines(incident(reasons=("a", "b")), T0)
        assert lines[2] == "Impact: a; b"

    @given(st.text(max_size=60))
    def test_no_reason_breaks_a_line(self, reason: str) -> None:
        """Whatever a reason holds, each formatted line stays one line."""
        for line in opened_lines(incident(reasons=(reason,)), T0):
            assert "\n" not in line and "\r" not in line


class TestSeverityLines:
    """severity_lines records escalations and de-escalations under the new severity."""

    @pytest.mark.parametrize(("event", "before", "after", "word"), [
        (Event.ESCALATED, "SEV-2", Severity.SEV1, "Escalated"),
        (Event.ESCALATED_TIMER, "SEV-3", Severity.SEV2, "Escalated"),
        (Event.DEESCALATED, "SEV-1", Severity.SEV2, "De-escalated"),
    ])
    def test_change_lines(self, event: Event, before: str, after: Severity, word: str) -> None:
        """The block repeats the header at the new level and names the change."""
        entry = TimelineEntry(T0 + 60, event, State.INVESTIGATING, after, notes=("why",),
                              detail={"from": before})
        assert severity_lines(incident(), entry) == [
            f"[2026-03-01T12:01:05Z] {after.value} INCIDENT - Agent SDK ({APP})",
            f"Severity: {after.value} ({after.title})",
            f"{word}: from {before} to {after.value}",
            "Impact: why",
            "Action Taken: none yet (investigating)",
            "Incident ID: INC-20260301-120005",
        ]


class TestActionLines:
    """action_lines writes the Action Taken line for mitigations as they happen."""

    def test_action_block(self) -> None:
        """Several actions are listed in time order with their outcomes."""
        lines = action_lines(incident(), [
            action(T0 + 30, "rollback", "v4", "failed"),
            action(T0 + 10, "restart", "m1", "ok"),
        ], T0 + 31)
        assert lines == [
            f"[2026-03-01T12:00:36Z] SEV-1 INCIDENT - Agent SDK ({APP})",
            "Severity: SEV-1 (Critical)",
            "Action Taken: restart m1 (ok); rollback v4 (failed)",
            "Incident ID: INC-20260301-120005",
        ]


class TestResolvedLines:
    """resolved_lines writes Phase 5's INCIDENT RESOLVED, Duration and Root Cause lines."""

    @pytest.mark.parametrize(("seconds", "minutes"), [(0, 0), (29, 0), (30, 1), (840, 14),
                                                      (3599, 60)])
    def test_duration(self, seconds: float, minutes: int) -> None:
        """Duration runs from the opening to the resolution, in whole minutes."""
        inc = incident(resolved_at=T0 + seconds)
        assert resolved_lines(inc, "cause") == [
            f"[{iso_utc(T0 + seconds)}] INCIDENT RESOLVED",
            f"Duration: 2026-03-01T12:00:05Z to {iso_utc(T0 + seconds)} ({minutes} min)",
            "Root Cause: cause",
            "Incident ID: INC-20260301-120005",
        ]
        assert duration_min(seconds) == minutes


class TestPreliminaryRootCause:
    """preliminary_root_cause names the opening reasons, the evidence and what worked."""

    def test_reasons_and_no_action(self) -> None:
        """Without actions, a resolved incident says it recovered on its own."""
        text = preliminary_root_cause(incident(resolved_at=T0 + 60), [], recent_release_s=7200)
        assert text == f"{REASON}; recovered without a mitigation by the watcher"

    def test_evidence_and_mitigation(self) -> None:
        """Dependency hints, a recent release and OOM kills are cited; the action that worked
        is named."""
        inc = incident(resolved_at=T0 + 600, evidence={
            "probes": {"at": T0 + 60},
            "logs": {"dependency_hints": ["openai", "supabase"]},
            "release": {"current_version": 5, "deployed_s_ago": 360},
            "machines": {"oom_kills": 2},
        })
        text = preliminary_root_cause(inc, [
            action(T0 + 20, "restart", "m1", "failed"),
            action(T0 + 90, "rollback", "v4", "ok"),
        ], recent_release_s=7200)
        assert text == (
            f"{REASON}; evidence: logs point at a dependency (openai, supabase), release v5 "
            "was deployed 5 min before detection, 2 OOM kills (exit 137, oom_killed); "
            "mitigated by rollback v4 (ok) at 2026-03-01T12:01:35Z")

    def test_old_release_is_not_a_suspect(self) -> None:
        """A release older than the recent-release span is not cited."""
        inc = incident(evidence={"release": {"current_version": 5, "deployed_s_ago": 90000}})
        assert "release" not in preliminary_root_cause(inc, [], recent_release_s=7200)
        assert Cause.RECENT_RELEASE not in causes(inc, recent_release_s=7200)

    def test_worst_reasons_follow_an_escalation(self, settings: Settings) -> None:
        """An incident that got worse names its reasons at the worst severity too."""
        story = run_story(settings)
        text = preliminary_root_cause(story.incident, [], recent_release_s=7200)
        assert text.startswith("error rate 20.0 % over 60 s (20/100 probes) >= 10.0 %; "
                               "at its worst (SEV-1): error rate 62.0 %")

    def test_the_action_records_are_the_mitigations(self) -> None:
        """The store's records name what worked; a timeline entry's detail is not a record."""
        base = incident(resolved_at=T0 + 600)
        mitigating = TimelineEntry(T0 + 30, Event.NOTE, State.MITIGATING, Severity.SEV1,
                                   notes=("restart of m1 ok",), action_id=3,
                                   detail={"action": "restart", "target": "m1", "outcome": "ok"})
        inc = dataclasses.replace(base, timeline=(*base.timeline, mitigating))
        assert preliminary_root_cause(inc, [action(T0 + 30, "restart", "m1", "ok", id=3)],
                                      recent_release_s=7200).endswith(
            "mitigated by restart m1 (ok) at 2026-03-01T12:00:35Z")
        assert preliminary_root_cause(inc, [], recent_release_s=7200).endswith(
            "recovered without a mitigation by the watcher")

    @pytest.mark.parametrize(("actions", "ending"), [
        ([action(T0 + 5, "page", "hotdash-api", "ok")],
         "recovered without a mitigation by the watcher"),
        ([action(T0 + 5, "rollback", "hotdash-api", "started")],
         "recovered without a mitigation by the watcher"),
        ([action(T0 + 5, "restart", "m1", "vetoed"), action(T0 + 9, "start", "m2", "failed")],
         "recovered although no mitigation succeeded (tried: restart m1 (vetoed), "
         "start m2 (failed))"),
        ([action(T0 + 5, "restart", "m1", "ok"), action(T0 + 9, "start", "m2", "ok")],
         "mitigated by start m2 (ok) at 2026-03-01T12:00:14Z"),
        (None, "mitigations not known (the action records could not be read)"),
    ])
    def test_what_the_mitigations_came_to(self, actions: list | None, ending: str) -> None:
        """A page-only step and a running one are not mitigations; the last that worked is
        named, else what was tried; unreadable records say so."""
        text = preliminary_root_cause(incident(resolved_at=T0 + 600), actions,
                                      recent_release_s=7200)
        assert text == f"{REASON}; {ending}"

    @pytest.mark.parametrize(("reason", "cause"), [
        (Reason.ALL_MACHINES_DOWN, Cause.ALL_MACHINES_DOWN),
        (Reason.PARTIAL_OUTAGE, Cause.PARTIAL_OUTAGE),
        (Reason.ERROR_RATE_CRITICAL, Cause.ERROR_RATE),
        (Reason.ERROR_RATE_MAJOR, Cause.ERROR_RATE),
        (Reason.ERROR_RATE_MINOR, Cause.ERROR_RATE),
        (Reason.LATENCY_MAJOR, Cause.LATENCY),
        (Reason.LATENCY_MINOR, Cause.LATENCY),
        (Reason.OOM_KILLS_MULTIPLE, Cause.OOM),
        (Reason.OOM_KILL_SINGLE, Cause.OOM),
        (Reason.AUTOSCALING, Cause.AUTOSCALING),
        (Reason.OPERATOR_SIGNAL, Cause.SIGNAL),
    ])
    def test_causes_from_the_finding_reason(self, reason: Reason, cause: Cause) -> None:
        """Each classifier reason maps to the runbook scenario it belongs to, whatever its
        sentence says."""
        found = causes(incident(reasons=(Finding(reason, Severity.SEV2, "words"),)),
                       recent_release_s=7200)
        assert found[0] is cause

    def test_every_reason_has_a_cause(self) -> None:
        """The table covers every reason the classifier can give."""
        assert set(CAUSE_OF) == set(Reason)

    def test_a_note_is_never_a_cause(self) -> None:
        """A verification note that mentions an error rate is not a finding: no cause."""
        inc = incident(reasons=())
        note = TimelineEntry(T0 + 60, Event.ESCALATED, State.INVESTIGATING, Severity.SEV1,
                             notes=("recovery verified: error rate below 1 %",))
        inc = dataclasses.replace(inc, timeline=(*inc.timeline, note))
        assert Cause.ERROR_RATE not in causes(inc, recent_release_s=7200)

    def test_journal_and_report_use_the_configured_release_window(self) -> None:
        """A release deployed 3 h before detection is a suspect with a 4 h window, not 2 h."""
        inc = incident(evidence={"release": {"deployed_s_ago": 3 * 3600, "current_version": 4}})
        assert Cause.RECENT_RELEASE in causes(inc, recent_release_s=4 * 3600)
        assert Cause.RECENT_RELEASE not in causes(inc, recent_release_s=2 * 3600)
        assert "release v4" in preliminary_root_cause(inc, [], recent_release_s=4 * 3600)
        assert "release v4" not in preliminary_root_cause(inc, [], recent_release_s=2 * 3600)


class TestDescribe:
    """An action record reads as kind, target and outcome."""

    @pytest.mark.parametrize(("record", "text"), [
        (action(T0, "restart", "148e21ea7e0389", "ok"), "restart 148e21ea7e0389 (ok)"),
        (action(T0, "rollback", "v4", "failed"), "rollback v4 (failed)"),
        (action(T0, "rollback", "hotdash-api", "started"), "rollback hotdash-api (in progress)"),
        (action(T0, "raise_memory", "m1", "dry_run"), "raise_memory m1 (dry_run)"),
        (action(T0, "scale_out", "", "vetoed"), "scale_out (vetoed)"),
    ])
    def test_describe(self, record, text: str) -> None:
        assert describe(record) == text

    def test_mitigations_are_ended_steps_on_fly_oldest_first(self) -> None:
        """Pages and running steps are left out; the rest come in time order."""
        acts = [action(T0 + 9, "start", "m2", "ok"), action(T0 + 1, "page", "app", "ok"),
                action(T0 + 2, "restart", "m1", "deferred"),
                action(T0 + 3, "rollback", "app", "started")]
        assert [describe(a) for a in mitigations(acts)] == [
            "restart m1 (deferred)", "start m2 (ok)"]


def _block(writer: int, n: int) -> list[str]:
    return [f"[{writer}:{n}] SEV-1 INCIDENT - Agent SDK (app-{writer})",
            f"Severity: SEV-1 (Critical) {'x' * (n % 7) * 40}".rstrip(),
            f"Impact: block {writer}:{n}",
            f"Action Taken: none yet ({writer}:{n})"]


class TestJournal:
    """Journal.append writes whole blocks that concurrent writers never interleave."""

    async def test_creates_parent_directories(self, tmp_path: Path) -> None:
        """The journal's folders are created on the first append."""
        path = tmp_path / "feedback" / "deep" / "reliability.md"
        await Journal(path).append(["one", "two"])
        assert path.read_text() == "one\ntwo\n\n"

    async def test_blocks_are_separated_and_keep_foreign_text(self, tmp_path: Path) -> None:
        """A block after text without a final newline starts on a line of its own."""
        path = tmp_path / "reliability.md"
        path.write_text("# Reliability feedback\nsomeone else's note")
        journal = Journal(path)
        await journal.append(["a"])
        await journal.append(["b\nforged"])
        assert path.read_text() == (
            "# Reliability feedback\nsomeone else's note\n\na\n\nb forged\n\n")

    async def test_concurrent_appends_never_interleave(self, tmp_path: Path) -> None:
        """200 blocks from 200 tasks over two Journal objects read back whole."""
        path = tmp_path / "reliability.md"
        journals = [Journal(path), Journal(path)]
        blocks = [_block(w, n) for w in range(4) for n in range(50)]
        await asyncio.gather(*(journals[i % 2].append(b) for i, b in enumerate(blocks)))
        read = [chunk.split("\n") for chunk in path.read_text().rstrip("\n").split("\n\n")]
        assert len(read) == len(blocks)
        assert sorted(map(tuple, read)) == sorted(map(tuple, blocks))

    async def test_processes_appending_at_once_never_interleave(self, tmp_path: Path) -> None:
        """Two processes with their own Journal each append 100 blocks; all read back whole."""
        path = tmp_path / "reliability.md"
        script = (
            "import asyncio, sys\n"
            "from hotdash_watch.records.journal import Journal\n"
            "from tests.records.test_journal import _block\n"
            "w = int(sys.argv[2])\n"
            "async def main():\n"
            "    j = Journal(sys.argv[1])\n"
            "    await asyncio.gather(*(j.append(_block(w, n)) for n in range(100)))\n"
            "asyncio.run(main())\n")
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(path), str(w), cwd=Path(__file__).parents[2])
            for w in (7, 8)]
        assert [await p.wait() for p in procs] == [0, 0]
        read = [chunk.split("\n") for chunk in path.read_text().rstrip("\n").split("\n\n")]
        expected = [_block(w, n) for w in (7, 8) for n in range(100)]
        assert sorted(map(tuple, read)) == sorted(map(tuple, expected))

    async def test_empty_block_writes_nothing(self, tmp_path: Path) -> None:
        """No lines, no file."""
        path = tmp_path / "reliability.md"
        await Journal(path).append([])
        assert not path.exists()
