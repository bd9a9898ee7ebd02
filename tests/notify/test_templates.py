"""The runbook's Phase-4 templates: subjects, field order per severity, honest ETA, notes,
golden pages (``UPDATE_GOLDEN=1`` rewrites them), and no secret in any page."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hotdash_watch.model.incident import Event, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.notify.base import Page, PageEvent
from hotdash_watch.notify.templates import format_duration, render, subject
from tests.notify.conftest import APP, T0, assert_golden, incident, settings


def as_text(page: Page) -> str:
    return f"SUBJECT: {page.subject}\n\n{page.body}\n"


class TestSubject:
    @pytest.mark.parametrize(("severity", "resolved", "expected"), [
        (Severity.SEV1, False, "[SEV-1] Agent SDK Production Outage"),
        (Severity.SEV2, False, "[SEV-2] Agent SDK Degraded Performance"),
        (Severity.SEV3, False, "[SEV-3] Agent SDK Minor Issue"),
        (Severity.SEV1, True, "[RESOLVED] [SEV-1] Agent SDK Production Outage"),
        (Severity.SEV3, True, "[RESOLVED] [SEV-3] Agent SDK Minor Issue"),
    ])
    def test_runbook_subjects(self, severity, resolved, expected):
        """Subjects are the runbook's words, with the service name from the settings."""
        assert subject(severity, "Agent SDK", resolved=resolved) == expected

    def test_service_name_is_configurable(self):
        """``service_name`` replaces "Agent SDK"."""
        page = render(incident(), PageEvent.OPENED,
                      settings=settings().model_copy(update={"service_name": "Hotdash"}), now=T0)
        assert page.subject == "[SEV-1] Hotdash Production Outage"


class TestBody:
    @pytest.mark.parametrize(("severity", "fields"), [
        (Severity.SEV1, ["STATUS", "START TIME", "IMPACT", "AFFECTED", "ACTION", "ETA",
                         "UPDATES", "Contact", "Incident ID"]),
        (Severity.SEV2, ["STATUS", "START TIME", "IMPACT", "AFFECTED", "ACTION", "ETA",
                         "UPDATES", "Contact", "Incident ID"]),
        (Severity.SEV3, ["STATUS", "START TIME", "IMPACT", "ACTION", "ETA", "Contact",
                         "Incident ID"]),
    ])
    def test_fields_in_runbook_order(self, severity, fields):
        """Each severity has the runbook's lines in the runbook's order, then contact and ID."""
        page = render(incident(severity), PageEvent.OPENED, settings=settings(), now=T0)
        assert list(page.fields) == fields
        assert [line.split(": ")[0] for line in page.body.split("\n") if line] == fields

    def test_affected_is_the_setting_for_sev1_and_the_app_for_sev2(self):
        """SEV-1 names the services of notify.affected; SEV-2 names the app."""
        s = settings(affected="Agent SDK services (LlamaIndex MCP, Agent Service)")
        assert render(incident(Severity.SEV1), PageEvent.OPENED, settings=s,
                      now=T0).fields["AFFECTED"] == s.notify.affected
        assert render(incident(Severity.SEV2), PageEvent.OPENED, settings=s,
                      now=T0).fields["AFFECTED"] == APP

    def test_impact_joins_the_reasons_and_names_the_app(self):
        """IMPACT is the classifier's reasons joined, with the app in parentheses."""
        page = render(incident(), PageEvent.OPENED, settings=settings(), now=T0)
        assert page.fields["IMPACT"] == (
            "error rate 62 % over 60 s; all machines down: 0 of 3 started and healthy "
            f"(Machines API) ({APP})")
        assert page.evidence == {"error_ratio": 0.62, "machines.down": 3,
                                 "machines.started_healthy": 0, "machines.total": 3,
                                 "p95_ms": 5000.0}

    def test_impact_falls_back_to_the_evidence(self):
        """Without reasons, IMPACT states the error rate and p95 of the evidence."""
        page = render(incident(findings=()), PageEvent.OPENED, settings=settings(), now=T0)
        assert page.fields["IMPACT"] == f"error rate 62 %; p95 latency 5000 ms ({APP})"

    def test_eta_is_honest_while_monitoring(self):
        """While verifying recovery the ETA is unknown, with the earliest resolution time."""
        inc = incident(state=State.MONITORING, monitoring_since=T0 + 300)
        page = render(inc, PageEvent.STATUS, settings=settings(), now=T0 + 300)
        assert page.fields["ETA"] == ("unknown — verifying recovery, earliest "
                                      "2026-03-01T12:15:00Z (10-minute stabilization)")
        assert page.fields["STATUS"] == "Monitoring"
        assert render(incident(), PageEvent.OPENED, settings=settings(),
                      now=T0).fields["ETA"] == "unknown"

    def test_actions_fill_the_action_line(self):
        """ACTION lists the actions taken, else says the incident is being investigated."""
        page = render(incident(state=State.MITIGATING), PageEvent.STATUS, settings=settings(),
                      now=T0, actions=["restart in progress (machine m1)"])
        assert page.fields["ACTION"] == "restart in progress (machine m1)"
        assert render(incident(), PageEvent.OPENED, settings=settings(),
                      now=T0).fields["ACTION"] == "investigating"
        assert render(incident(Severity.SEV3), PageEvent.OPENED, settings=settings(),
                      now=T0).fields["ACTION"] == "investigation ongoing"

    def test_note_ends_the_body(self):
        """A note becomes the last line, and a later note is added after it."""
        page = render(incident(), PageEvent.OPENED, settings=settings(), now=T0,
                      note="restart vetoed: budget spent")
        assert page.body.endswith("\n\nNOTE: restart vetoed: budget spent")
        noted = page.with_note("paging was broken for 7 min (channel slack failing)")
        assert noted.body.endswith("\n\nNOTE: restart vetoed: budget spent; paging was broken "
                                   "for 7 min (channel slack failing)")
        assert noted.body.count("NOTE:") == 1
        assert noted.fields["NOTE"] == noted.note

    def test_key_defaults_to_incident_event_and_timeline_length(self):
        """Without a key the dedup key is "{incident_id}:{event}:{n}"."""
        page = render(incident(), PageEvent.OPENED, settings=settings(), now=T0)
        assert page.key == "INC-20260301-120000:opened:1"
        assert render(incident(), PageEvent.OPENED, settings=settings(), now=T0,
                      key="k").key == "k"

    def test_render_is_pure_and_round_trips_through_json(self):
        """Same input, same page; the page survives JSON (the outbox row) unchanged."""
        a = render(incident(), PageEvent.OPENED, settings=settings(), now=T0)
        b = render(incident(), PageEvent.OPENED, settings=settings(), now=T0)
        assert a == b
        assert Page.from_dict(json.loads(json.dumps(a.as_dict()))) == a

    def test_severity_change_names_the_previous_severity(self):
        """A severity-change page knows the severity it replaces (Alertmanager resolves it)."""
        inc = incident(Severity.SEV3)
        esc = TimelineEntry(at=T0 + 1800, event=Event.ESCALATED_TIMER,
                            state=State.INVESTIGATING, severity=Severity.SEV2)
        inc = dataclasses.replace(inc, severity=Severity.SEV2, timeline=(*inc.timeline, esc))
        page = render(inc, PageEvent.SEVERITY_CHANGED, settings=settings(), now=T0 + 1800)
        assert page.previous_severity is Severity.SEV3

    @pytest.mark.parametrize(("seconds", "text"), [
        (0, "0 s"), (45, "45 s"), (420, "7 min"), (7500, "2 h 5 min")])
    def test_durations(self, seconds, text):
        """Durations are rounded to what a reader needs."""
        assert format_duration(seconds) == text


class TestGolden:
    def test_sev1_opened(self):
        """The SEV-1 page of an all-machines-down outage."""
        page = render(incident(), PageEvent.OPENED, settings=settings(), now=T0 + 10)
        assert_golden("templates/sev1_opened.txt", as_text(page))

    def test_sev2_status_update(self):
        """A SEV-2 status update while a mitigation runs."""
        inc = incident(Severity.SEV2, State.MITIGATING, updated_at=T0 + 1800)
        page = render(inc, PageEvent.UPDATE, settings=settings(), now=T0 + 1800,
                      actions=["rollback initiated (release v41 -> v40)"])
        assert_golden("templates/sev2_update.txt", as_text(page))

    def test_sev3_opened(self):
        """The SEV-3 page of a 6 % error rate."""
        page = render(incident(Severity.SEV3), PageEvent.OPENED, settings=settings(), now=T0)
        assert_golden("templates/sev3_opened.txt", as_text(page))

    def test_resolved(self):
        """The resolution page of the SEV-1, with its duration."""
        inc = incident(state=State.RESOLVED, resolved_at=T0 + 1380, monitoring_since=T0 + 780)
        page = render(inc, PageEvent.RESOLVED, settings=settings(), now=T0 + 1380,
                      actions=["restart of 3 machines"],
                      note="paging was broken for 7 min (channel slack failing); this page "
                           "was delayed")
        assert_golden("templates/resolved.txt", as_text(page))


SECRETISH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=24
                    ).map(lambda s: f"sek-{s}")


class TestNoSecret:
    @hsettings(max_examples=20, deadline=None)
    @given(url_token=SECRETISH, key=SECRETISH, fly_token=SECRETISH)
    def test_no_secret_of_the_settings_in_any_page(self, url_token, key, fly_token):
        """Whatever secrets the settings hold, no rendered page contains one."""
        s = settings(channels=[
            {"name": "hook", "kind": "webhook", "url": f"https://x.example/{url_token}",
             "hmac_secret": key},
            {"name": "pd", "kind": "pagerduty", "routing_key": key},
        ]).model_copy(update={"fly": settings().fly.model_copy(update={"api_token": fly_token})})
        for event in PageEvent:
            text = json.dumps(render(incident(), event, settings=s, now=T0).as_dict())
            for secret in (url_token, key, fly_token):
                assert secret not in text
