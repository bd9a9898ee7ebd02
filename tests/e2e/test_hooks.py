"""POST /hooks/alertmanager on a running daemon: Alertmanager's webhook (version 4) becomes
classifier signals; the runbook's "data corruption detected" alert opens a SEV-1. Manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from hotdash_watch.clock import ManualClock
from hotdash_watch.daemon import Daemon
from hotdash_watch.model.severity import Severity
from hotdash_watch.server import alert_severity
from tests.support.factories import settings
from tests.support.harness import running, tick
from tests.support.target import LocalService

TOKEN = "hooks-tok-7c41e2d9"
NO_END = "0001-01-01T00:00:00Z"  # what Alertmanager sends as endsAt of a firing alert


@asynccontextmanager
async def daemon(url: str, clock: ManualClock, **server: Any) -> AsyncIterator[Daemon]:
    s = settings(apps=[{"name": "svc", "health_url": url}],
                 server={"host": "127.0.0.1", "port": 0, **server},
                 probes={"timeout_s": 2, "reprobe_on_failure": False})
    async with running(s, clock) as d:
        yield d


def alert(status: str = "firing", *, fingerprint: str | None = "f1", ends_at: str = NO_END,
          annotations: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager puts it in a webhook."""
    labels = {"alertname": "DataCorruptionDetected", "target_app": "svc",
              "severity": "critical", **labels}
    labels = {k: v for k, v in labels.items() if v != ""}
    out: dict[str, Any] = {
        "status": status, "labels": labels,
        "annotations": annotations if annotations is not None
        else {"summary": "data corruption detected"},
        "startsAt": "2026-03-01T11:59:00Z", "endsAt": ends_at,
        "generatorURL": "http://prometheus/graph"}
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    return out


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook body around ``alerts``."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {"version": "4", "groupKey": "{}:{alertname=\"DataCorruptionDetected\"}",
            "truncatedAlerts": 0, "status": "firing" if firing else "resolved",
            "receiver": "hotdash-watch", "groupLabels": {"alertname": "DataCorruptionDetected"},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "alerts": list(alerts)}


async def post(d: Daemon, body: Any, token: str | None = TOKEN,
               scheme: str = "Bearer") -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"{scheme} {token}"}
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = ({"data": body} if isinstance(body, (str, bytes))
                                  else {"json": body})
        async with http.post(f"{d.url}/hooks/alertmanager", headers=headers, **kwargs) as r:
            return r.status, await r.json()


def signals(d: Daemon) -> dict[str, Any]:
    assert d.pipeline is not None
    return d.pipeline.apps["svc"].signals


class TestSeverityLabels:
    @pytest.mark.parametrize(("label", "severity"), [
        ("SEV-1", Severity.SEV1), ("sev1", Severity.SEV1), ("1", Severity.SEV1),
        ("critical", Severity.SEV1), (" Critical ", Severity.SEV1),
        ("SEV-2", Severity.SEV2), ("sev2", Severity.SEV2), ("2", Severity.SEV2),
        ("warning", Severity.SEV2), ("major", Severity.SEV2),
        ("SEV-3", Severity.SEV3), ("sev3", Severity.SEV3), ("3", Severity.SEV3),
        ("info", Severity.SEV3), ("minor", Severity.SEV3),
        ("urgent", None), ("", None), ("sev-4", None), (None, None),
    ])
    def test_table(self, label: str | None, severity: Severity | None):
        """A severity label maps to the runbook level of the documented table, without regard
        to case or surrounding spaces; anything else maps to nothing."""
        assert alert_severity(label) is severity


class TestAuth:
    async def test_missing_and_wrong_tokens_are_refused(self, service: LocalService,
                                                        clock: ManualClock):
        """Without the bearer token, with a wrong one or with another scheme: 401, and nothing
        reaches the classifier."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            for token, scheme in ((None, "Bearer"), ("wrong-token-123", "Bearer"),
                                  (TOKEN, "Basic"), (TOKEN, "")):
                status, body = await post(d, webhook(alert()), token, scheme)
                assert status == 401, (token, scheme)
                assert body == {"error": "missing or wrong bearer token"}
            assert signals(d) == {}

    async def test_without_any_token_the_hook_is_disabled(self, service: LocalService,
                                                           clock: ManualClock):
        """With neither server.hooks_token nor server.api_token the hook answers 403 and says
        which setting enables it."""
        async with daemon(service.url, clock) as d:
            status, body = await post(d, webhook(alert()))
        assert status == 403
        assert "server.hooks_token" in body["error"]
        assert "HOTDASH_WATCH_SERVER__HOOKS_TOKEN" in body["error"]

    async def test_api_token_is_the_fallback(self, service: LocalService, clock: ManualClock):
        """Without server.hooks_token, the API token opens the hook."""
        async with daemon(service.url, clock, api_token=TOKEN) as d:
            status, body = await post(d, webhook(alert()))
        assert status == 200 and body["accepted"] == 1

    async def test_hooks_token_replaces_the_api_token(self, service: LocalService,
                                                      clock: ManualClock):
        """With both set, only server.hooks_token opens the hook."""
        async with daemon(service.url, clock, api_token="api-tok-5521ab",
                          hooks_token=TOKEN) as d:
            assert (await post(d, webhook(alert()), "api-tok-5521ab"))[0] == 401
            assert (await post(d, webhook(alert()), TOKEN))[0] == 200

    async def test_refusal_is_logged_without_the_header(self, service: LocalService,
                                                        clock: ManualClock,
                                                        log_events: list[dict[str, Any]]):
        """A refused request is logged with its path and reason; neither the configured token
        nor the one sent appears in any log entry."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            await post(d, webhook(alert()), "sent-but-wrong-9f8e7d")
        refused = [e for e in log_events if e["event"] == "request_unauthorized"]
        assert refused and refused[0]["path"] == "/hooks/alertmanager"
        assert refused[0]["reason"] == "mismatch"
        everything = repr(log_events)
        assert TOKEN not in everything and "sent-but-wrong-9f8e7d" not in everything


class TestBadPayloads:
    @pytest.mark.parametrize(("body", "names"), [
        ("not json", "JSON object"),
        ([1, 2], "JSON object"),
        ({"version": "4"}, "alerts: Field required"),
        ({"version": "3", "alerts": []}, "version: Input should be '4'"),
        ({"alerts": "x"}, "alerts: Input should be a valid list"),
        ({"alerts": [5]}, "alerts[0]:"),
        ({"alerts": [{**alert(), "status": "pending"}]},
         "alerts[0].status: Input should be 'firing' or 'resolved'"),
        ({"alerts": [{**alert(), "labels": {"target_app": "svc", "severity": 1}}]},
         "alerts[0].labels.severity: Input should be a valid string"),
        ({"alerts": [alert(ends_at="2026-03-01T12:00:00")]},
         "alerts[0].endsAt: Input should have timezone info"),
        ({"alerts": [alert(), alert(ends_at="soon")]}, "alerts[1].endsAt"),
    ], ids=["not-json", "list", "no-alerts", "version", "alerts-type", "alert-type", "status",
            "label-type", "naive-time", "second-alert"])
    async def test_invalid_payload_is_400_naming_the_field(
        self, service: LocalService, clock: ManualClock, body: Any, names: str
    ):
        """An invalid body is refused with 400 and a message naming the bad field and what is
        valid; no alert of it is applied, not even the valid ones."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            status, answer = await post(d, body)
            assert status == 400
            assert names in answer["error"]
            assert signals(d) == {}

    async def test_unknown_fields_are_accepted(self, service: LocalService, clock: ManualClock):
        """Fields Alertmanager may add later (and ones it sends today) do not make a 400."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            body = webhook({**alert(), "new_field": {"x": 1}})
            body["another"] = True
            status, answer = await post(d, body)
        assert status == 200 and answer["accepted"] == 1


class TestIgnoredAlerts:
    async def test_unusable_alerts_are_reported_not_applied(self, service: LocalService,
                                                            clock: ManualClock):
        """Alerts for an app not watched, without an app label, without or with an unknown
        severity are ignored with their reason; the usable ones of the same body are applied."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            status, answer = await post(d, webhook(
                alert(fingerprint="ok"),
                alert(fingerprint="other", target_app="elsewhere"),
                alert(fingerprint="nolabel", target_app=""),
                alert(fingerprint="nosev", severity=""),
                alert(fingerprint="oddsev", severity="urgent"),
            ))
            assert status == 200
            assert answer["accepted"] == 1 and answer["resolved"] == 0
            ignored = {i["fingerprint"]: i for i in answer["ignored"]}
            assert set(ignored) == {"other", "nolabel", "nosev", "oddsev"}
            assert ignored["other"]["code"] == "app_not_watched"
            assert "app 'elsewhere' is not watched" in ignored["other"]["reason"]
            assert ignored["nolabel"]["code"] == "no_app_label"
            assert ignored["nosev"]["code"] == "no_severity"
            assert ignored["oddsev"]["code"] == "unknown_severity"
            assert "'urgent'" in ignored["oddsev"]["reason"]
            assert list(signals(d)) == ["alertmanager:ok"]

    async def test_the_watchers_own_alerts_are_ignored(self, service: LocalService,
                                                       clock: ManualClock):
        """The watcher's own pages (HotdashIncident) and rules (Hotdash*) coming back through
        Alertmanager are ignored: its SEV-1 page must not keep its own SEV-1 open."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            _, answer = await post(d, webhook(
                alert(fingerprint="page", alertname="HotdashIncident", severity="SEV-1",
                      incident_id="INC-20260301-120000"),
                alert(fingerprint="rule", alertname="HotdashSev1Open")))
            assert answer["accepted"] == 0
            assert [i["code"] for i in answer["ignored"]] == ["own_alert", "own_alert"]
            assert signals(d) == {}

    async def test_app_and_fly_app_labels_name_the_app(self, service: LocalService,
                                                       clock: ManualClock):
        """Without target_app, the app label (then fly_app) names the watched app; target_app
        wins over app, which Fly's Prometheus sets to the scraped app's own name."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            _, answer = await post(d, webhook(
                alert(fingerprint="a", target_app="", app="svc"),
                alert(fingerprint="b", target_app="", fly_app="svc"),
                alert(fingerprint="c", target_app="svc", app="hotdash-watch"),
            ))
            assert answer["accepted"] == 3
            assert sorted(signals(d)) == ["alertmanager:a", "alertmanager:b", "alertmanager:c"]


class TestSignals:
    async def test_data_corruption_alert_opens_a_sev1(self, service: LocalService,
                                                      clock: ManualClock,
                                                      log_events: list[dict[str, Any]]):
        """A firing "data corruption detected" alert with severity critical on a healthy app
        opens an incident at SEV-1 once the SEV-1 hold (2 evaluations) is met, with the alert
        as its reason."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            await tick(d, clock, 3)
            assert d.pipeline.apps["svc"].incident is None
            status, answer = await post(d, webhook(alert()))
            assert (status, answer) == (200, {"accepted": 1, "resolved": 0, "ignored": []})

            await tick(d, clock)
            assert d.pipeline.apps["svc"].incident is None  # held for 1 of 2 evaluations
            await tick(d, clock)
            inc = d.pipeline.apps["svc"].incident
            assert inc is not None and inc.severity is Severity.SEV1
            stored = await d.store.get_incident(inc.id)
            opened = stored.timeline[0]
            assert any("alertmanager: DataCorruptionDetected: data corruption detected" in r
                       for r in opened.reasons)
        accepted = [e for e in log_events if e["event"] == "alert_signal_accepted"]
        assert accepted[0]["app"] == "svc" and accepted[0]["severity"] == "SEV-1"
        assert accepted[0]["fingerprint"] == "f1"

    async def test_resolved_alert_clears_the_signal(self, service: LocalService,
                                                    clock: ManualClock):
        """A resolved alert withdraws the signal its firing put in force; the incident then
        follows the usual way down."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            await post(d, webhook(alert()))
            await tick(d, clock, 2)
            assert d.pipeline.apps["svc"].incident is not None
            end = (clock.now() + timedelta(seconds=1)).isoformat()
            status, answer = await post(d, webhook(alert("resolved", ends_at=end)))
            assert (status, answer["resolved"], answer["accepted"]) == (200, 1, 0)
            assert signals(d) == {}
            await tick(d, clock)
            assert d.pipeline.apps["svc"].last.severity is None

    async def test_repeated_alert_replaces_its_signal(self, service: LocalService,
                                                      clock: ManualClock):
        """Alertmanager re-sends a firing alert every repeat_interval: the same fingerprint is
        one signal, renewed, never two."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            await post(d, webhook(alert()))
            first_until = signals(d)["alertmanager:f1"][1]
            clock.advance(60)
            await post(d, webhook(alert()))
            assert list(signals(d)) == ["alertmanager:f1"]
            assert signals(d)["alertmanager:f1"][1] == first_until + 60

    async def test_signal_lapses_when_not_resent(self, service: LocalService,
                                                 clock: ManualClock):
        """A firing alert without an end counts for server.hook_signal_ttl_s after its last
        delivery; one with endsAt ahead counts until then (never past the TTL)."""
        async with daemon(service.url, clock, hooks_token=TOKEN, hook_signal_ttl_s=120) as d:
            now = clock.timestamp()
            soon = (clock.now() + timedelta(seconds=30)).astimezone(UTC).isoformat()
            late = datetime(2030, 1, 1, tzinfo=UTC).isoformat()
            await post(d, webhook(alert(fingerprint="a"), alert(fingerprint="b", ends_at=soon),
                                  alert(fingerprint="c", ends_at=late)))
            untils = {k: u for k, (_, u) in signals(d).items()}
            assert untils == {"alertmanager:a": now + 120, "alertmanager:b": now + 30,
                              "alertmanager:c": now + 120}
            clock.advance(121)
            await d.pipeline.evaluate()
            assert signals(d) == {}

    async def test_alert_without_fingerprint_is_keyed_by_its_labels(
        self, service: LocalService, clock: ManualClock
    ):
        """Without a fingerprint the key is a hash of the sorted labels: the same labels in
        another order are the same alert, and its resolution finds it."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            first = alert(fingerprint=None)
            second = alert(fingerprint=None)
            second["labels"] = dict(reversed(list(second["labels"].items())))
            _, a1 = await post(d, webhook(first))
            _, a2 = await post(d, webhook(second))
            assert a1["accepted"] == a2["accepted"] == 1
            assert len(signals(d)) == 1
            await post(d, webhook(alert("resolved", fingerprint=None)))
            assert signals(d) == {}

    @pytest.mark.parametrize(("annotations", "summary"), [
        ({"summary": "rows fail checksum", "description": "long text"},
         "DataCorruptionDetected: rows fail checksum"),
        ({"description": "checksums differ"}, "DataCorruptionDetected: checksums differ"),
        ({}, "DataCorruptionDetected"),
    ])
    async def test_summary_comes_from_annotations(self, service: LocalService,
                                                  clock: ManualClock,
                                                  annotations: dict[str, str], summary: str):
        """The signal's summary is the alertname with annotations.summary, else description,
        else the alertname alone."""
        async with daemon(service.url, clock, hooks_token=TOKEN) as d:
            await post(d, webhook(alert(annotations=annotations)))
            signal, _ = signals(d)["alertmanager:f1"]
        assert signal.summary == summary and signal.source == "alertmanager"
