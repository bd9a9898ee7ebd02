"""The durable outbox on a manual clock against a collecting receiver on a real socket.

Timelines are in clock seconds from T0 (12:00:00Z): the receiver fails from 0 s, comes back
at 300 s, every page arrives once and in order; a restart delivers what was pending; a silence
holds pages back; a channel failing for 120 s hands its pages to the next one, and the next
page that gets through says paging was broken.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hotdash_watch.clock import ManualClock
from hotdash_watch.config import ChannelSettings
from hotdash_watch.metrics import Metrics
from hotdash_watch.model.severity import Severity
from hotdash_watch.notify.base import Page, PageEvent
from hotdash_watch.notify.outbox import Outbox, backoff_delay
from hotdash_watch.notify.templates import render
from hotdash_watch.records.store import PageState, Store
from tests.notify.conftest import APP, T0, MakeOutbox, incident, settings
from tests.notify.receiver import Receiver


def page(n: int = 1, severity: Severity = Severity.SEV1, *, app: str = APP,
         event: PageEvent = PageEvent.UPDATE, at: float = T0) -> Page:
    """Page number ``n`` of the incident (its key ends in ``:n``)."""
    inc = incident(severity, app=app) if app == APP else incident(severity, app=app,
                                                                  id=f"INC-{app}")
    return render(inc, event, settings=settings(), now=at,
                  key=f"{inc.id}:{event.value}:{n}")


def keys(received) -> list[str]:
    return [r.json["key"] for r in received]


async def drive(outbox: Outbox, clock, *, until_s: float, step_s: float = 5.0,
                at: dict[float, Callable[[], object]] | None = None,
                after_pass: Callable[[], None] | None = None) -> None:
    """Advance the clock in steps to ``until_s`` (from T0), one delivery pass per step;
    ``at`` maps a clock second to a callable run when it is reached (awaited if async);
    ``after_pass`` runs after every pass."""
    todo = dict(at or {})
    while True:
        now_s = clock.timestamp() - T0
        for when in sorted(w for w in todo if w <= now_s):
            result = todo.pop(when)()
            if asyncio.iscoroutine(result):
                await result
        await outbox.deliver_due()
        if after_pass is not None:
            after_pass()
        if now_s >= until_s:
            return
        clock.advance(min(step_s, until_s - now_s))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class TestQueue:
    async def test_written_before_sent(self, make_outbox: MakeOutbox, sqlite_store: Store,
                                       receiver: Receiver, clock):
        """``page()`` stores a pending row and sends nothing; the pass sends it and marks
        it sent at the clock's time."""
        outbox = await make_outbox("hook")
        await outbox.page(page())
        [row] = await sqlite_store.list_pages()
        assert (row.state, row.channel, row.created_at) == (PageState.PENDING, "hook", T0)
        assert receiver.requests == []
        clock.advance(1)
        await outbox.deliver_due()
        [got] = receiver.accepted()
        assert Page.from_dict(got.json) == page()
        [row] = await sqlite_store.list_pages()
        assert (row.state, row.attempts, row.sent_at) == (PageState.SENT, 1, T0 + 1)

    async def test_only_channels_that_admit_the_severity(self, make_outbox: MakeOutbox,
                                                         sqlite_store: Store, receiver):
        """A SEV-2 page goes to the channels taking SEV-2 and up, not to a SEV-1-only one."""
        sev1_only = ChannelSettings(name="pager", kind="webhook", url=receiver.url("/pager"),
                                    min_severity="SEV-1")
        outbox = await make_outbox("chat", sev1_only)
        await outbox.page(page(severity=Severity.SEV2))
        assert [r.channel for r in await sqlite_store.list_pages()] == ["chat"]
        await outbox.page(page(2, severity=Severity.SEV1))
        await outbox.deliver_due()
        assert sorted(r.path for r in receiver.accepted()) == ["/chat", "/chat", "/pager"]

    async def test_same_key_twice_is_delivered_once(self, make_outbox: MakeOutbox,
                                                    receiver: Receiver):
        """Paging the same key again, before or after it was sent, sends nothing more."""
        outbox = await make_outbox("hook")
        await outbox.page(page())
        await outbox.page(page())
        await outbox.deliver_due()
        await outbox.page(page())
        await outbox.deliver_due()
        assert keys(receiver.accepted()) == ["INC-20260301-120000:update:1"]

    async def test_silence_holds_pages_back(self, make_outbox: MakeOutbox, sqlite_store: Store,
                                            receiver: Receiver, clock):
        """While a silence covers the app its pages are stored as silenced and not sent;
        other apps are paged; after the silence pages flow again."""
        outbox = await make_outbox("hook")
        await sqlite_store.add_silence(APP, T0, T0 + 600, author="ana", reason="deploy",
                                       created_at=T0)
        await outbox.page(page(1))
        await outbox.page(page(1, app="other-app"))
        await outbox.deliver_due()
        assert [r.json["app"] for r in receiver.accepted()] == ["other-app"]
        states = {r.page["app"]: r.state for r in await sqlite_store.list_pages()}
        assert states == {APP: PageState.SILENCED, "other-app": PageState.SENT}
        assert sample(outbox.metrics.registry, "hotdash_watch_pages_total", channel="hook",
                      outcome="silenced") == 1
        clock.advance(600)
        await outbox.page(page(2))
        await outbox.deliver_due()
        assert keys(receiver.accepted())[-1] == "INC-20260301-120000:update:2"

    async def test_wildcard_silence(self, make_outbox: MakeOutbox, sqlite_store: Store,
                                    receiver: Receiver):
        """A silence of "*" holds back every app's pages."""
        outbox = await make_outbox("hook")
        await sqlite_store.add_silence("*", T0 - 1, T0 + 60, author="ana", reason="db",
                                       created_at=T0)
        await outbox.page(page(1, app="a"))
        await outbox.page(page(1, app="b"))
        await outbox.deliver_due()
        assert receiver.requests == []

    async def test_accepts_the_daemons_metrics(self, make_outbox: MakeOutbox, receiver):
        """Given the daemon's ``Metrics``, the collectors go on its registry, at zero."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        outbox = await make_outbox("hook", registry=metrics)  # type: ignore[arg-type]
        assert outbox.metrics.registry is registry
        assert sample(registry, "hotdash_watch_pages_total", channel="hook",
                      outcome="sent") == 0
        assert sample(registry, "hotdash_watch_paging_broken_seconds", channel="hook") == 0


class TestRetry:
    async def test_five_minute_outage(self, make_outbox: MakeOutbox, sqlite_store: Store,
                                      receiver: Receiver, clock):
        """Receiver down from 0 to 300 s: the pages of 0, 60 and 120 s all arrive after it
        is back, once each and in order; retries back off from 5 s up to 60 s; the first
        page through says paging was broken and for how long."""
        outbox = await make_outbox("hook")
        receiver.fail(503)
        attempts_at: list[float] = []

        def note_attempts() -> None:
            while len(attempts_at) < len(receiver.requests):
                attempts_at.append(clock.timestamp() - T0)

        await drive(outbox, clock, until_s=420, step_s=1.0, after_pass=note_attempts, at={
            0: lambda: outbox.page(page(1, at=T0)),
            60: lambda: outbox.page(page(2, at=T0 + 60)),
            120: lambda: outbox.page(page(3, at=T0 + 120)),
            300: receiver.recover,
        })
        assert keys(receiver.accepted()) == [f"INC-20260301-120000:update:{n}"
                                             for n in (1, 2, 3)]
        gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
        failing = gaps[:-2]  # the last two pages follow the first at once
        assert len(failing) >= 6, gaps  # the retries reach the cap before the receiver is back
        for n, gap in enumerate(failing, start=1):  # 5 s doubling up to 60 s, +-20 % jitter;
            nominal = min(60.0, 5.0 * 2 ** (n - 1))  # the clock moves in 1-s steps
            assert max(5.0, nominal * 0.8) <= gap <= min(60.0, nominal * 1.2) + 1.0, (n, gaps)
        assert 300 <= attempts_at[-1] <= 362
        first, *rest = receiver.accepted()
        assert re.fullmatch(
            r"paging was broken for \d+ min \(channel hook failing since 2026-03-01T12:00:00Z: "
            r"HTTP 503: failing /hook .*\); this page was delayed by \d+ min",
            first.json["note"] or "", re.S), first.json["note"]
        assert first.json["body"].endswith(f"NOTE: {first.json['note']}")
        assert [r.json["note"] for r in rest] == [None, None]
        rows = await sqlite_store.list_pages()
        assert {r.state for r in rows} == {PageState.SENT}
        assert (await sqlite_store.outbox_stats(clock.timestamp())).depth == 0
        reg = outbox.metrics.registry
        assert sample(reg, "hotdash_watch_pages_total", channel="hook", outcome="sent") == 3
        assert sample(reg, "hotdash_watch_pages_total", channel="hook", outcome="retry") == (
            len(receiver.requests) - 3)
        assert outbox.paging_status()["ok"] is True

    def test_backoff_grows_with_jitter_within_bounds(self):
        """Retry delays double from the initial one to the cap, with +-20 % jitter, and a
        Retry-After is honoured up to the cap."""
        import random
        rng = random.Random(1)
        delays = [backoff_delay(n, 5.0, 300.0, rng) for n in range(1, 12)]
        for n, d in enumerate(delays, start=1):
            assert max(5.0, min(300.0, 5 * 2 ** (n - 1)) * 0.8) <= d <= min(
                300.0, 5 * 2 ** (n - 1) * 1.2)
        assert delays[-1] == pytest.approx(300.0, rel=0.2)
        assert backoff_delay(1, 5.0, 300.0, rng, retry_after=30.0) == 30.0
        assert backoff_delay(1, 5.0, 300.0, rng, retry_after=9999.0) == 300.0

    async def test_rejected_page_fails_over(self, make_outbox: MakeOutbox, sqlite_store: Store,
                                            receiver: Receiver):
        """A 400 is final: the row is failed and the page goes to the next channel, even one
        that takes only SEV-1 (a page must reach someone)."""
        pager = ChannelSettings(name="pager", kind="webhook", url=receiver.url("/pager"),
                                min_severity="SEV-1")
        outbox = await make_outbox("chat", pager)
        receiver.fail(400, prefix="/chat")
        await outbox.page(page(severity=Severity.SEV3))
        await outbox.deliver_due()
        await outbox.deliver_due()
        assert [r.path for r in receiver.accepted()] == ["/pager"]
        states = {r.channel: r.state for r in await sqlite_store.list_pages()}
        assert states == {"chat": PageState.FAILED, "pager": PageState.SENT}
        assert sample(outbox.metrics.registry, "hotdash_watch_pages_total", channel="chat",
                      outcome="failed") == 1


class TestFailover:
    async def test_hands_over_after_failover_time(self, make_outbox: MakeOutbox,
                                                  sqlite_store: Store, receiver: Receiver,
                                                  clock):
        """"primary" fails from 0 s: until 120 s its page waits; then it goes to
        "secondary" with a note that primary is broken; later pages go straight over; once
        primary answers again it takes its pages back and paging is ok."""
        secondary = ChannelSettings(name="secondary", kind="webhook",
                                    url=receiver.url("/secondary"), min_severity="SEV-1")
        outbox = await make_outbox("primary", secondary)
        registry = outbox.metrics.registry
        receiver.fail(503, prefix="/primary")
        await drive(outbox, clock, until_s=115, at={
            0: lambda: outbox.page(page(1, Severity.SEV2))})
        assert receiver.accepted() == []
        status = outbox.paging_status()
        assert status["ok"] is False
        assert status["channels"]["primary"]["broken_since"] == "2026-03-01T12:00:00Z"
        assert status["channels"]["primary"]["failed_over"] is False
        assert status["channels"]["secondary"]["ok"] is True
        assert sample(registry, "hotdash_watch_paging_broken_seconds",
                      channel="primary") == pytest.approx(115, abs=0.01)
        assert sample(registry, "hotdash_watch_outbox_depth") == 1
        assert sample(registry, "hotdash_watch_outbox_oldest_age_seconds") == pytest.approx(115)

        await drive(outbox, clock, until_s=130)
        [got] = receiver.accepted()
        assert got.path == "/secondary"
        assert got.json["key"] == "INC-20260301-120000:update:1"
        assert got.json["note"].startswith(
            "paging was broken for 2 min (channel primary failing since 2026-03-01T12:00:00Z: "
            "HTTP 503")
        assert "still failing, its pages go to secondary" in got.json["note"]
        assert outbox.paging_status()["channels"]["primary"]["failed_over"] is True

        await outbox.page(page(2, Severity.SEV2))
        await drive(outbox, clock, until_s=140)
        assert keys(receiver.accepted("/secondary"))[-1].endswith(":2")
        assert receiver.accepted()[-1].json["note"] is None  # told once
        rows = await sqlite_store.list_pages()
        assert sorted((r.channel, r.state.value) for r in rows) == [
            ("primary", "handed_over"), ("primary", "handed_over"),
            ("secondary", "sent"), ("secondary", "sent")]
        assert sample(registry, "hotdash_watch_pages_total", channel="primary",
                      outcome="handed_over") == 2

        receiver.recover("/primary")
        clock.advance(120)  # past primary's retry time
        await outbox.page(page(3, Severity.SEV2))
        await outbox.deliver_due()
        assert receiver.accepted()[-1].path == "/primary"
        assert outbox.paging_status()["ok"] is True
        assert sample(registry, "hotdash_watch_paging_broken_seconds", channel="primary") == 0

    async def test_all_channels_broken_keeps_pages_pending(self, make_outbox: MakeOutbox,
                                                          sqlite_store: Store, receiver):
        """With every channel failing there is nowhere to hand over: pages stay pending on
        their own channel (never dropped) and paging status says so."""
        outbox = await make_outbox("a", "b")
        receiver.fail("reset")
        await outbox.page(page())
        await outbox.deliver_due()
        outbox._clock.advance(400)  # type: ignore[attr-defined]
        await outbox.deliver_due()
        assert {r.state for r in await sqlite_store.list_pages()} == {PageState.PENDING}
        assert outbox.paging_status()["ok"] is False

    async def test_rows_of_a_removed_channel_go_to_a_configured_one(
            self, make_outbox: MakeOutbox, sqlite_store: Store, receiver: Receiver):
        """Rows queued for a channel no longer configured are handed to one that is."""
        old = await make_outbox("old")
        await old.page(page())
        new = await make_outbox("hook")
        await new.deliver_due()
        await new.deliver_due()
        assert [r.path for r in receiver.accepted()] == ["/hook"]


class TestRestartAndLoop:
    async def test_restart_delivers_pending_once(self, make_outbox: MakeOutbox,
                                                 sqlite_store: Store, receiver: Receiver,
                                                 clock, tmp_path: Path):
        """A page pending when the daemon stops is sent once by the next daemon (on the same
        database), with the note that paging was broken."""
        first = await make_outbox("hook")
        receiver.fail(503)
        await first.page(page())
        await first.deliver_due()
        assert len(receiver.requests) == 1

        reopened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'watch.db'}")
        try:
            receiver.recover()
            clock.advance(30)
            second = await make_outbox("hook", on=reopened)
            task = asyncio.create_task(second.run())
            [got] = await receiver.wait_for(1)
            await second.wait_idle()
            clock.advance(600)
            await second.deliver_due()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(receiver.accepted()) == 1
            assert got.json["note"].startswith("paging was broken for 30 s (channel hook")
            assert second.paging_status()["ok"] is True
        finally:
            await reopened.close()

    async def test_run_sends_a_new_page_at_once(self, make_outbox: MakeOutbox,
                                                receiver: Receiver, clock: ManualClock):
        """With the loop running, ``page()`` wakes it: the page reaches the receiver while the
        manual clock stands still (a loop waiting for its timer would never send it)."""
        outbox = await make_outbox("hook")
        task = asyncio.create_task(outbox.run())
        try:
            await outbox.wait_idle()
            before = clock.monotonic()
            await outbox.page(page())
            await receiver.wait_for(1)  # the real-time bound only stops a hang
            assert clock.monotonic() == before
            assert [r.path for r in receiver.accepted()] == ["/hook"]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def test_run_retries_on_the_clock(self, make_outbox: MakeOutbox, receiver: Receiver,
                                            clock):
        """After a failed attempt the loop sleeps on the clock: nothing more happens until
        the clock passes the retry time, then the page goes out."""
        outbox = await make_outbox("hook")
        receiver.fail(503, times=1)
        task = asyncio.create_task(outbox.run())
        try:
            await outbox.page(page())
            await receiver.wait_for(1, accepted=False)
            await outbox.wait_idle()
            assert receiver.accepted() == []
            clock.advance(7)  # the first retry is due within 5 s +- 20 %
            await receiver.wait_for(1)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


class TestIdleLoop:
    async def test_an_idle_loop_looks_every_idle_poll_not_every_poll(
            self, make_outbox: MakeOutbox, receiver: Receiver, clock: ManualClock):
        """With nothing pending and every channel well, the loop runs no pass for 60 s (its
        own pages wake it at once); a row another writer left in the store is still found and
        sent at the next idle look."""
        outbox = await make_outbox("hook")
        passes = 0
        real_pass = outbox._pass

        async def counted() -> int:
            nonlocal passes
            passes += 1
            return await real_pass()

        outbox._pass = counted  # type: ignore[method-assign]
        task = asyncio.create_task(outbox.run())
        try:
            await outbox.wait_idle()
            assert passes == 1
            other = await make_outbox("hook")  # same store, its own (stopped) loop
            await other.page(page())
            clock.advance(30)
            for _ in range(50):
                await asyncio.sleep(0)
            assert passes == 1 and receiver.requests == []
            clock.advance(30)
            await receiver.wait_for(1)  # the real-time bound only stops a hang
            assert passes == 2
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
