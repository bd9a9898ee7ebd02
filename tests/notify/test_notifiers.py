"""Every channel in the registry, by one contract: the protocol, golden payloads, the retry
table, no secret in any result, error or log, and the webhook's signature (real sockets)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import json
import typing
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest

from hotdash_watch.clock import ManualClock
from hotdash_watch.model.incident import Event, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.notify import CHANNELS, build_notifier, build_notifiers
from hotdash_watch.notify.base import HttpNotifier, Notifier, Page, PageEvent, SendResult
from hotdash_watch.notify.channels import CHANNEL_MODELS, AnyChannel
from hotdash_watch.notify.outbox import Outbox
from hotdash_watch.notify.templates import render
from hotdash_watch.notify.webhook import DEDUP_HEADER, SIGNATURE_HEADER, sign
from hotdash_watch.records.store import Store
from tests.notify.conftest import (
    HMAC_KEY,
    ROUTING_KEY,
    SECRETS,
    T0,
    TOKEN,
    assert_golden,
    channel_for,
    incident,
    settings,
)
from tests.notify.receiver import Receiver
from tests.support.services import free_port

KINDS = sorted(CHANNELS)
#: The Basic-auth header value an Alertmanager URL with a password turns into.
BASIC = base64.b64encode(f"hotdash:{TOKEN}".encode()).decode()


def opened_page() -> Page:
    return render(incident(), PageEvent.OPENED, settings=settings(), now=T0 + 10)


def pages() -> dict[str, Page]:
    """One page per situation the payload builders treat differently."""
    sev3 = incident(Severity.SEV3)
    esc = TimelineEntry(at=T0 + 1800, event=Event.ESCALATED_TIMER, state=State.INVESTIGATING,
                        severity=Severity.SEV2)
    escalated = dataclasses.replace(sev3, severity=Severity.SEV2, timeline=(*sev3.timeline, esc))
    resolved = incident(state=State.RESOLVED, resolved_at=T0 + 1380)
    return {
        "opened": opened_page(),
        "severity_changed": render(escalated, PageEvent.SEVERITY_CHANGED, settings=settings(),
                                   now=T0 + 1800),
        "resolved": render(resolved, PageEvent.RESOLVED, settings=settings(), now=T0 + 1380,
                           note="paging was broken for 7 min (channel slack failing)"),
    }


def assert_leaks_no_secret(*texts: Any) -> None:
    """No secret of any channel (nor the Basic-auth form of one) is in any of ``texts``."""
    for text in texts:
        shown = text if isinstance(text, str) else repr(text)
        for secret in (*SECRETS, BASIC):
            assert secret not in shown, f"a secret leaked into {shown[:200]!r}"


class TestRegistry:
    def test_every_configurable_kind_is_registered(self):
        """Each ``kind`` the settings accept has a notifier class, and nothing else does."""
        members = typing.get_args(typing.get_args(AnyChannel)[0])
        kinds = [k for m in members for k in typing.get_args(m.model_fields["kind"].annotation)]
        assert sorted(kinds) == sorted(CHANNEL_MODELS) == KINDS

    @pytest.mark.parametrize("kind", KINDS)
    def test_settings_live_beside_the_notifier(self, kind):
        """Each kind's settings model is defined in its notifier's module."""
        assert CHANNEL_MODELS[kind].__module__ == CHANNELS[kind].__module__

    @pytest.mark.parametrize("kind", KINDS)
    def test_satisfies_the_protocol(self, kind):
        """Each class builds from its settings into a ``Notifier`` of its own kind."""
        n = build_notifier(channel_for(kind, "http://127.0.0.1:9", name=f"my-{kind}",
                                       min_severity="SEV-2"))
        assert isinstance(n, Notifier)
        assert type(n) is CHANNELS[kind]
        assert (n.kind, n.name, n.min_severity) == (kind, f"my-{kind}", Severity.SEV2)
        assert asyncio.iscoroutinefunction(n.send)
        assert_leaks_no_secret(repr(n), str(n))

    @pytest.mark.parametrize("kind", KINDS)
    def test_shares_the_base(self, kind):
        """Each class is an ``HttpNotifier``: the constructor's common part, ``repr`` and
        ``send`` are the base's; the channel adds its endpoint, secrets and payload."""
        cls = CHANNELS[kind]
        assert issubclass(cls, HttpNotifier)
        assert cls.send is HttpNotifier.send
        assert cls.__repr__ is HttpNotifier.__repr__

    def test_build_notifiers_keeps_config_order(self):
        """The notifiers come in config order: the failover order."""
        chans = [channel_for(k, "http://127.0.0.1:9", name=f"c{i}")
                 for i, k in enumerate(["slack", "pagerduty", "webhook", "alertmanager"])]
        s = settings(channels=[c.model_dump() for c in chans])
        assert [n.name for n in build_notifiers(s)] == ["c0", "c1", "c2", "c3"]


class TestPayloads:
    @pytest.mark.parametrize("kind", KINDS)
    def test_golden(self, kind):
        """Each channel's payloads for an opening, a severity change and a resolution match
        their golden file (``tests/golden/payloads/<kind>.json``)."""
        n = build_notifier(channel_for(kind, "http://127.0.0.1:9"))
        got = {name: n.build_payload(p) for name, p in pages().items()}
        assert_golden(f"payloads/{kind}.json",
                      json.dumps(got, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    @pytest.mark.parametrize("kind", KINDS)
    def test_pure(self, kind):
        """The same page gives the same payload, and the page is left as it was."""
        n = build_notifier(channel_for(kind, "http://127.0.0.1:9"))
        page = opened_page()
        before = page.as_dict()
        assert n.build_payload(page) == n.build_payload(page)
        assert page.as_dict() == before

    @pytest.mark.parametrize("kind", ["webhook", "slack", "alertmanager"])
    def test_no_secret_in_the_payload(self, kind):
        """Only PagerDuty's body carries a secret (its routing key, by design); no other
        payload holds the URL or a key."""
        n = build_notifier(channel_for(kind, "http://127.0.0.1:9"))
        for p in pages().values():
            assert_leaks_no_secret(json.dumps(n.build_payload(p)))

    def test_pagerduty_triggers_then_resolves_one_alert(self):
        """PagerDuty gets trigger for updates and resolve at the end, keyed by incident ID."""
        n = build_notifier(channel_for("pagerduty", "http://127.0.0.1:9"))
        p = pages()
        opened, resolved = n.build_payload(p["opened"]), n.build_payload(p["resolved"])
        assert isinstance(opened, dict) and isinstance(resolved, dict)
        assert (opened["event_action"], resolved["event_action"]) == ("trigger", "resolve")
        assert opened["dedup_key"] == resolved["dedup_key"] == "INC-20260301-120000"
        assert opened["payload"]["severity"] == "critical"
        assert opened["payload"]["custom_details"]["STATUS"] == "Investigating"

    def test_alertmanager_resolves_with_the_same_labels(self):
        """The resolution carries the firing alert's labels and ends at the resolution time;
        a severity change also ends the old severity's alert."""
        n = build_notifier(channel_for("alertmanager", "http://127.0.0.1:9"))
        p = pages()
        [firing] = n.build_payload(p["opened"])
        [resolved] = n.build_payload(p["resolved"])
        assert firing["labels"] == resolved["labels"] == {
            "alertname": "HotdashIncident", "target_app": "hotdash-llamaindex-mcp",
            "severity": "SEV-1", "incident_id": "INC-20260301-120000"}
        assert resolved["endsAt"] == "2026-03-01T12:23:00.000Z"
        new, old = n.build_payload(p["severity_changed"])
        assert (new["labels"]["severity"], old["labels"]["severity"]) == ("SEV-2", "SEV-3")
        assert old["endsAt"] == "2026-03-01T12:30:00.000Z"

    def test_slack_escapes_mrkdwn(self):
        """Slack's control characters in a page are escaped."""
        n = build_notifier(channel_for("slack", "http://127.0.0.1:9"))
        page = opened_page().with_note("p95 <2 s & rising > budget")
        text = n.build_payload(page)["blocks"][1]["text"]["text"]  # type: ignore[call-overload]
        assert "*NOTE:* p95 &lt;2 s &amp; rising &gt; budget" in text


RETRYABLE: list[int | str] = [500, 502, 503, 429, 408, "disconnect", "reset", "refused",
                              "timeout"]
PERMANENT: list[int | str] = [400, 401, 403, 404]


async def send_against(kind: str, receiver: Receiver, session: aiohttp.ClientSession,
                       clock: ManualClock, mode: int | str | None) -> SendResult:
    """Send the SEV-1 page on a ``kind`` channel to a receiver behaving as ``mode``."""
    base = f"http://127.0.0.1:{free_port()}" if mode == "refused" else receiver.base
    n = build_notifier(channel_for(kind, base, timeout_s=0.1 if mode == "timeout" else 5.0))
    if mode is not None and mode != "refused":
        receiver.fail("hang" if mode == "timeout" else mode)
    return await n.send(opened_page(), session, clock)


class TestRetryTable:
    @pytest.mark.parametrize("kind", KINDS)
    async def test_accepted(self, kind, receiver, session, clock):
        """A 2xx is ok, once, at the channel's path."""
        res = await send_against(kind, receiver, session, clock, None)
        assert (res.ok, res.retryable) == (True, False)
        assert res.status in (200, 202)
        [got] = receiver.accepted()
        expected = {"webhook": f"/hook/{TOKEN}", "slack": f"/services/T000/B000/{TOKEN}",
                    "pagerduty": "/v2/enqueue", "alertmanager": "/api/v2/alerts"}[kind]
        assert got.path == expected
        assert got.headers["Content-Type"] == "application/json"

    @pytest.mark.parametrize("mode", RETRYABLE)
    @pytest.mark.parametrize("kind", KINDS)
    async def test_retryable(self, kind, mode, receiver, session, clock):
        """5xx, 429, 408, a dropped or reset connection, a refused one and a timeout are
        worth retrying."""
        res = await send_against(kind, receiver, session, clock, mode)
        assert (res.ok, res.retryable) == (False, True), res.detail
        assert res.status == (mode if isinstance(mode, int) else None)

    @pytest.mark.parametrize("mode", PERMANENT)
    @pytest.mark.parametrize("kind", KINDS)
    async def test_permanent(self, kind, mode, receiver, session, clock):
        """Any other 4xx is final: retrying the same request cannot help."""
        res = await send_against(kind, receiver, session, clock, mode)
        assert (res.ok, res.retryable, res.status) == (False, False, mode)
        assert res.permanent

    async def test_retry_after_is_reported(self, session, clock):
        """A 429's Retry-After reaches the outbox (which waits at least that long)."""

        async def limited(request: web.Request) -> web.Response:
            return web.Response(status=429, headers={"Retry-After": "30"})

        app = web.Application()
        app.router.add_post("/{tail:.*}", limited)
        async with TestServer(app, host="127.0.0.1") as server:
            n = build_notifier(channel_for("slack", f"http://127.0.0.1:{server.port}"))
            res = await n.send(opened_page(), session, clock)
        assert (res.status, res.retryable, res.retry_after) == (429, True, 30.0)


class TestLeaksNoSecret:
    @pytest.mark.parametrize("mode", [500, 400, 429, "reset", "refused", "timeout"])
    @pytest.mark.parametrize("kind", KINDS)
    async def test_no_secret_in_results_logs_rows_status_or_metrics(
            self, kind, mode, receiver, session, clock, sqlite_store: Store):
        """Whatever goes wrong (the receiver echoing the request back included), no secret
        is in the SendResult, a log entry, the stored row, the paging status or /metrics."""
        with structlog.testing.capture_logs() as logs:
            res = await send_against(kind, receiver, session, clock, mode)
            base = f"http://127.0.0.1:{free_port()}" if mode == "refused" else receiver.base
            n = build_notifier(channel_for(kind, base, timeout_s=0.1))
            registry = CollectorRegistry()
            outbox = Outbox(sqlite_store, [n], session, clock, registry,
                            settings(failover_after_s=1.0))
            await outbox.page(opened_page())
            await outbox.deliver_due()
            clock.advance(600)
            await outbox.deliver_due()
        assert not res.ok
        assert logs, "the outbox logged nothing"
        rows = await sqlite_store.list_pages()
        assert rows and all(r.last_error for r in rows)
        assert_leaks_no_secret(res.detail, repr(res), logs, [r.last_error for r in rows],
                               json.dumps(outbox.paging_status()),
                               generate_latest(registry).decode())

    @pytest.mark.parametrize("kind", KINDS)
    def test_missing_secret_is_named_not_shown(self, kind):
        """A notifier built without its secret says which field is missing (the settings
        refuse such a channel; a copy made without validation reaches the notifier)."""
        secret = "routing_key" if kind == "pagerduty" else "url"
        chan = channel_for(kind, "http://127.0.0.1:9").model_copy(update={secret: None})
        with pytest.raises(ValueError, match="needs") as info:
            build_notifier(chan)
        assert_leaks_no_secret(str(info.value), repr(info.value))


class TestWebhookSignature:
    async def test_signature_verifies_on_the_receiver(self, receiver, session, clock):
        """The receiver recomputes HMAC-SHA256 over the raw body with the shared key and
        gets the header's value; a changed body does not verify."""
        n = build_notifier(channel_for("webhook", receiver.base))
        page = opened_page()
        assert (await n.send(page, session, clock)).ok
        [got] = receiver.accepted()
        header = got.headers[SIGNATURE_HEADER]
        assert header.startswith("sha256=")
        assert hmac.compare_digest(header, sign(HMAC_KEY.encode(), got.body))
        assert not hmac.compare_digest(header, sign(HMAC_KEY.encode(), got.body + b" "))
        assert got.headers[DEDUP_HEADER] == page.key
        assert Page.from_dict(got.json) == page

    async def test_unsigned_without_a_key(self, receiver, session, clock):
        """Without ``hmac_secret`` there is no signature header (the dedup key stays)."""
        n = build_notifier(channel_for("webhook", receiver.base, hmac_secret=None))
        assert (await n.send(opened_page(), session, clock)).ok
        [got] = receiver.accepted()
        assert SIGNATURE_HEADER not in got.headers
        assert DEDUP_HEADER in got.headers
        assert ROUTING_KEY not in got.body.decode()
