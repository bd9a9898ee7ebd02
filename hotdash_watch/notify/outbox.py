"""The durable outbox: a page is written before it is sent, and never silently lost.

``Outbox.page`` stores one row per channel whose ``min_severity`` admits the page (state
``pending``; ``silenced`` while a silence covers the app) and wakes the delivery loop.
``Outbox.run`` (a task of the daemon's TaskGroup) sends due rows, channel by channel in the
order they were queued, asks ``delivery.decide`` what each answer means (sent, retry later,
failed, handed over: the state machine is there) and has the store record it. A ``silenced``
row (held back by a silence: stored, visible, counted) is never sent, also not after the
silence ends; status updates and later pages then go out as usual.

A channel failing for ``notify.failover_after_s`` hands its pending pages to the next working
channel; one that already has the page gets no second copy. With no working channel left,
pages stay pending on their own channel. A failed-over channel is tried again (with its oldest
page) each time its retry time comes; its first success ends the breakage.

The loop runs a pass when a page is queued (``wake``), when a row or a failover is due, and
otherwise every ``poll_s`` while anything is pending or a channel is failing. With nothing
pending and every channel well it only looks every ``idle_poll_s`` (a safety net: every page
this process queues wakes it at once), so an idle watcher does not query its store every few
seconds.

Retries back off in clock seconds, with jitter drawn from the outbox's ``rng``. A channel's
rows go out in order: a row waits while an older row of its channel waits for its retry.

"Exactly once per (page key, channel)" holds as far as the receiver allows: the store refuses
a second row for a (key, channel), a row is marked sent only after a 2xx and is never sent
again. A send whose answer is lost (timeout, crash before the row is marked) is sent again;
receivers drop repeats by the dedup key (``X-Hotdash-Dedup-Key``, PagerDuty's ``dedup_key``,
Alertmanager's labels).

While a channel is broken ``paging_status()`` (for /healthz) and the metrics say so, and the
next page that gets through on any channel says which channel was broken, for how long, and by
how much that page was delayed. Channel health is kept in the store (``kv``), so a restart
neither forgets a breakage nor restarts its failover timer.

The outbox reaches its storage through ``PageStore``, the calls it makes (the daemon passes
``records.store.Store``); any of them may raise ``StoreError``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from hotdash_watch.clock import Clock
from hotdash_watch.config import Settings
from hotdash_watch.model.errors import StoreError  # the error the store raises
from hotdash_watch.model.page import OutboxRow, OutboxStats, PageState, Silence
from hotdash_watch.model.severity import Severity
from hotdash_watch.notify.base import Notifier, Page, SendResult
from hotdash_watch.notify.delivery import (
    JITTER,
    Answer,
    Attempt,
    Breakage,
    Health,
    Reason,
    Rules,
    Transition,
    backoff_delay,
    decide,
    paging_note,
)
from hotdash_watch.notify.outbox_metrics import NotifyMetrics, Outcome
from hotdash_watch.notify.templates import iso

__all__ = ["Breakage", "NotifyMetrics", "Outbox", "Outcome", "PageStore", "backoff_delay",
           "paging_note"]

HEALTH_KEY = "notify.paging"
"""The ``kv`` key under which channel health survives a restart."""



def _log() -> Any:
    # Looked up per event so that structlog.testing.capture_logs sees it.
    return structlog.get_logger("hotdash_watch.notify")


class PageStore(Protocol):
    """What the outbox needs of its storage: queue, read and close pages, read silences,
    keep channel health. Every method may raise ``StoreError``."""

    async def enqueue_pages(self, rows: Sequence[Mapping[str, Any]]) -> list[int]: ...

    async def due_pages(self, now: float, limit: int = 100) -> list[OutboxRow]: ...

    async def pending_pages(self, channel: str | None = None, limit: int = 1000
                            ) -> list[OutboxRow]: ...

    async def mark_page(self, page_id: int, state: str, attempts: int, next_attempt_at: float,
                        sent_at: float | None = None, last_error: str | None = None
                        ) -> bool: ...

    async def hand_over_page(self, page_id: int, new_row: Mapping[str, Any], *,
                             state: str = PageState.HANDED_OVER.value, attempts: int,
                             last_error: str | None) -> int | None: ...

    async def outbox_stats(self, now: float) -> OutboxStats: ...

    async def active_silences(self, now: float) -> Sequence[Silence]: ...

    async def get_state(self, key: str) -> Any | None: ...

    async def put_state(self, key: str, value: Any, at: float) -> None: ...


def _admits(notifier: Notifier, severity: Severity) -> bool:
    return severity.rank >= Severity(notifier.min_severity).rank


@dataclass
class _PassResult:
    """What one pass did: how many rows it changed (0: the loop must not spin)."""

    progress: int = 0


class Outbox:
    """Persist pages before sending, deliver them in order per channel, retry, fail over.

    ``metrics_registry`` is a ``CollectorRegistry`` or the daemon's ``Metrics`` (its
    ``registry`` is used); ``None`` keeps the collectors on a private registry. ``rng`` makes
    the backoff jitter reproducible in tests.
    """

    def __init__(
        self,
        store: PageStore,
        notifiers: Sequence[Notifier],
        session: aiohttp.ClientSession,
        clock: Clock,
        metrics_registry: Any,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        batch: int = 100,
        poll_s: float = 5.0,
        idle_poll_s: float = 60.0,
    ) -> None:
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names}")
        self._store = store
        self._notifiers = list(notifiers)
        self._by_name = {n.name: n for n in notifiers}
        self._session = session
        self._clock = clock
        self._settings = settings
        self._rng = rng or random.Random()
        self._batch = batch
        self._poll_s = poll_s
        self._idle_poll_s = max(poll_s, idle_poll_s)
        registry = getattr(metrics_registry, "registry", metrics_registry)
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
        self.metrics = NotifyMetrics.for_registry(registry)
        self.metrics.init_channels(names)
        self._health = Health(names)
        self._loaded = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stats = OutboxStats(depth=0, oldest_age_s=0.0, next_attempt_at=None)
        self._oldest_created: float | None = None
        for name in names:
            self.metrics.broken.labels(name).set_function(self._broken_seconds(name))
        self.metrics.oldest_age.set_function(self._oldest_age)

    # -- queueing ------------------------------------------------------------------------------

    async def page(self, page: Page) -> None:
        """Store ``page`` once per channel that admits its severity, before anything is sent.

        While an active silence covers the app the rows are stored as ``silenced`` (visible,
        never sent). A page whose key is already queued on a channel is not queued again.
        """
        now = self._clock.timestamp()
        targets = [n for n in self._notifiers if _admits(n, page.severity)]
        log = _log().bind(incident_id=page.incident_id, app=page.app, key=page.key)
        if not targets:
            log.warning("page_not_routed", severity=page.severity.value,
                        reason="no channel admits this severity"
                        if self._notifiers else "no channel configured")
            return
        silence = next((s for s in await self._store.active_silences(now)
                        if s.matches(page.app)), None)
        state = PageState.SILENCED if silence is not None else PageState.PENDING
        rows = [self._row(page.as_dict(), n.name, state, now, now) for n in targets]
        new_ids = await self._store.enqueue_pages(rows)
        if silence is not None:
            # New rows come first in channel order; a repeat adds none (a channel added to
            # the config between two calls with one key is the only inexact case).
            for n in targets[: len(new_ids)]:
                self.metrics.pages.labels(n.name, Outcome.SILENCED.value).inc()
            log.info("page_silenced", channels=[n.name for n in targets],
                     silence_id=silence.id, silence_until=iso(silence.ends_at))
            return
        if new_ids:
            log.info("page_enqueued", channels=[n.name for n in targets], rows=len(new_ids))
            self.wake()
        else:
            log.info("page_duplicate", channels=[n.name for n in targets])

    def wake(self) -> None:
        """Make the delivery loop run a pass now instead of at its next tick."""
        self._wake.set()

    # -- delivery ------------------------------------------------------------------------------

    async def run(self) -> None:
        """The delivery loop: a pass, then sleep (clock) until a row is due or ``wake()``."""
        _log().info("outbox_started", channels=list(self._by_name))
        while True:
            await self._clock.sleep(0)  # a cancellation point before each pass
            self._idle.clear()
            self._wake.clear()
            progress = 0
            try:
                progress = await self._pass()
                delay = self._next_delay(self._clock.timestamp())
            except StoreError as e:
                _log().error("outbox_store_error", detail=str(e))
                delay = self._poll_s
            except Exception as e:  # a bug must not end paging; say so, then carry on
                _log().exception("outbox_pass_failed", error=type(e).__name__)
                delay = self._poll_s
            if delay <= 0 and progress == 0:
                delay = min(self._poll_s, 0.5)
            await self._wait(delay)

    async def wait_idle(self) -> None:
        """Return once ``run`` has finished its pass and sleeps (tests and the bench order
        their steps with it instead of sleeping)."""
        await self._idle.wait()

    async def deliver_due(self) -> None:
        """One delivery pass over every channel (the loop's body; tests call it directly)."""
        await self._pass()

    def paging_status(self) -> dict[str, Any]:
        """Whether paging works, per channel, for /healthz and the API."""
        now = self._clock.timestamp()
        failover_after_s = self._settings.notify.failover_after_s
        channels = {n.name: {"kind": n.kind,
                             **self._health.status(n.name, now, failover_after_s)}
                    for n in self._notifiers}
        return {
            "ok": all(c["ok"] for c in channels.values()),
            "channels": channels,
            "outbox": {"depth": self._stats.depth,
                       "oldest_age_s": round(self._oldest_age(), 3)},
        }

    # -- one pass ------------------------------------------------------------------------------

    async def _pass(self) -> int:
        async with self._lock:
            await self._load_health()
            now = self._clock.timestamp()
            rows = await self._store.due_pages(now, self._batch)
            by_channel: dict[str, list[OutboxRow]] = {}
            for row in rows:
                by_channel.setdefault(row.channel, []).append(row)
            result = _PassResult()
            stray = [r for name, rs in by_channel.items() if name not in self._by_name
                     for r in rs]
            for row in stray:  # a channel removed from the config since the row was queued
                await self._guarded(self._settle(row, None, now, result), row.channel)
            async with asyncio.TaskGroup() as tg:
                for n in self._notifiers:
                    due = by_channel.get(n.name, [])
                    if due or self._failed_over(n.name, now):
                        tg.create_task(self._guarded(self._channel(n, due, now, result),
                                                     n.name))
            await self._refresh_stats()
            return result.progress

    async def _guarded(self, work: Any, channel: str) -> None:
        """Run one channel's work so that its failure never stops the other channels."""
        try:
            await work
        except StoreError as e:  # the row stays as it was; the next pass tries again
            _log().error("outbox_store_error", channel=channel, detail=str(e))
        except Exception as e:  # a bug: say so; the rows stay pending for the next pass
            _log().exception("outbox_channel_failed", channel=channel, error=type(e).__name__)

    async def _channel(self, n: Notifier, due: list[OutboxRow], now: float,
                       result: _PassResult) -> None:
        h = self._health[n.name]
        if self._failed_over(n.name, now):
            if not due or h.retry_at > now:
                await self._hand_over_channel(n.name, now, result)
                return
            # Time to probe the broken channel again, with its oldest page.
            outcome = await self._attempt(n, due[0], result)
            if outcome is not Outcome.SENT:
                await self._hand_over_channel(n.name, self._clock.timestamp(), result)
                return
            due = due[1:]
        for row in due:
            await self._clock.sleep(0)  # check for cancellation before each attempt
            outcome = await self._attempt(n, row, result)
            if outcome is Outcome.RETRY:
                t = self._clock.timestamp()
                if self._failed_over(n.name, t):
                    await self._hand_over_channel(n.name, t, result)
                return  # the rest wait behind this row: order per channel

    async def _attempt(self, n: Notifier, row: OutboxRow, result: _PassResult) -> Outcome:
        try:
            page = Page.from_dict(row.page)
        except (KeyError, TypeError, ValueError) as e:  # a row no version of us could write
            unreadable = Attempt(Answer.UNREADABLE, f"unreadable page ({type(e).__name__})")
            await self._settle(row, unreadable, self._clock.timestamp(), result)
            _log().error("page_unreadable", channel=n.name, key=row.key, error=type(e).__name__)
            return Outcome.FAILED
        start = self._clock.timestamp()
        told = self._health.untold()
        handed_to = self._health.handed_to(start, self._settings.notify.failover_after_s)
        note = paging_note(told, start, sending_on=n.name,
                           delayed_s=start - row.created_at, handed_to=handed_to)
        if note is not None:
            page = page.with_note(note)
        res: SendResult = await n.send(page, self._session, self._clock)
        t = self._clock.timestamp()
        log = _log().bind(channel=n.name, incident_id=row.incident_id, key=row.key,
                          attempt=row.attempts + 1)
        result.progress += 1
        if res.ok:
            await self._settle(row, Attempt(Answer.DELIVERED), t, result)
            self.metrics.pages.labels(n.name, Outcome.SENT.value).inc()
            self.metrics.delivery.labels(n.name).observe(max(0.0, t - row.created_at))
            log.info("page_sent", status=res.status, delay_s=round(t - row.created_at, 3),
                     noted=note is not None)
            await self._succeeded(n.name, t, told if note is not None else [])
            return Outcome.SENT
        await self._failed(n.name, t, res.detail)
        if res.retryable:
            retry = Attempt(Answer.RETRYABLE, res.detail, res.retry_after)
            step = await self._settle(row, retry, t, result)
            self._health[n.name].retry_at = step.next_attempt_at
            self.metrics.pages.labels(n.name, Outcome.RETRY.value).inc()
            log.warning("page_retry", status=res.status, detail=res.detail,
                        retry_in_s=round(step.next_attempt_at - t, 3))
            return Outcome.RETRY
        self.metrics.pages.labels(n.name, Outcome.FAILED.value).inc()
        log.error("page_rejected", status=res.status, detail=res.detail)
        await self._settle(row, Attempt(Answer.REJECTED, res.detail), t, result)
        return Outcome.FAILED

    async def _settle(self, row: OutboxRow, attempt: Attempt | None, now: float,
                      result: _PassResult) -> Transition:
        """Ask ``decide`` what ``attempt`` (``None``: the row was not sent) means for ``row``
        at ``now``, have the store record it, and say so; returns the transition."""
        retrying = attempt is not None and attempt.answer is Answer.RETRYABLE
        jitter = self._rng.uniform(*JITTER) if retrying else 1.0
        step = decide(row, attempt, self._health.facts(row.channel), now, self._rules(),
                      jitter=jitter)
        if not step.reason.writes:
            return step
        if step.hand_to is None:
            await self._store.mark_page(row.id, step.state, step.attempts, step.next_attempt_at,
                                        sent_at=step.sent_at, last_error=step.error)
            if step.reason is Reason.UNDELIVERABLE:
                _log().error("page_undeliverable", channel=row.channel,
                             incident_id=row.incident_id, key=row.key, detail=step.detail,
                             reason="no other working channel")
            if step.reason in (Reason.UNDELIVERABLE, Reason.UNREADABLE):
                result.progress += 1
            return step
        new_row = self._row(row.page, step.hand_to, PageState.PENDING, now, row.created_at)
        new_id = await self._store.hand_over_page(
            row.id, new_row, state=step.state.value, attempts=step.attempts,
            last_error=step.error)
        result.progress += 1
        if step.reason is Reason.FAILED_OVER:
            self.metrics.pages.labels(row.channel, Outcome.HANDED_OVER.value).inc()
        _log().warning("page_handed_over", channel=row.channel, incident_id=row.incident_id,
                       key=row.key, to=step.hand_to, detail=step.detail,
                       already_there=new_id is None)
        self.wake()
        return step

    # -- failover ------------------------------------------------------------------------------

    def _rules(self) -> Rules:
        notify = self._settings.notify
        return Rules(initial_s=notify.retry_initial_s, max_s=notify.retry_max_s,
                     failover_after_s=notify.failover_after_s)

    def _failed_over(self, channel: str, now: float) -> bool:
        return self._health.failed_over(channel, now, self._settings.notify.failover_after_s)

    async def _hand_over_channel(self, channel: str, now: float, result: _PassResult) -> None:
        """Give each pending page of the failed-over ``channel`` to the next working one."""
        for row in await self._store.pending_pages(channel):
            await self._settle(row, None, now, result)

    # -- channel health ------------------------------------------------------------------------

    async def _failed(self, channel: str, at: float, detail: str) -> None:
        if self._health.failed(channel, at, detail):
            _log().error("paging_broken", channel=channel, detail=detail)
            await self._save_health(at)

    async def _succeeded(self, channel: str, at: float, told: Sequence[Breakage]) -> None:
        ended, changed = self._health.succeeded(channel, at, told)
        if ended is not None:
            _log().info("paging_recovered", channel=channel,
                        broken_for_s=round(at - ended.since, 3), told=ended.reported)
        if changed:
            await self._save_health(at)

    async def _save_health(self, at: float) -> None:
        try:
            await self._store.put_state(HEALTH_KEY, self._health.as_json(), at)
        except StoreError as e:  # health is a convenience; the rows are what is durable
            _log().error("outbox_store_error", detail=str(e))

    async def _load_health(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._health.restore(await self._store.get_state(HEALTH_KEY))

    # -- bookkeeping ---------------------------------------------------------------------------

    def _row(self, page: Mapping[str, Any], channel: str, state: PageState, now: float,
             created_at: float) -> dict[str, Any]:
        return {
            "key": page["key"], "channel": channel, "incident_id": page["incident_id"],
            "event": page["event"], "severity": page["severity"], "page": dict(page),
            "state": state.value, "attempts": 0, "next_attempt_at": now,
            "created_at": created_at,
        }

    async def _refresh_stats(self) -> None:
        now = self._clock.timestamp()
        self._stats = await self._store.outbox_stats(now)
        self._oldest_created = (now - self._stats.oldest_age_s) if self._stats.depth else None
        self.metrics.depth.set(self._stats.depth)

    def _broken_seconds(self, channel: str) -> Any:
        def value() -> float:
            return self._health[channel].failing_for(self._clock.timestamp())
        return value

    def _oldest_age(self) -> float:
        if self._oldest_created is None:
            return 0.0
        return max(0.0, self._clock.timestamp() - self._oldest_created)

    def _next_delay(self, now: float) -> float:
        """Seconds until the next row is due or a failing channel reaches its failover time,
        at most ``poll_s`` (``idle_poll_s`` with nothing pending and no channel failing)."""
        depth = self._stats.depth
        idle = not depth and all(h.breakage is None for h in self._health.channels.values())
        due = [self._idle_poll_s if idle else self._poll_s]
        if self._stats.next_attempt_at is not None:
            due.append(self._stats.next_attempt_at - now)
        if depth:
            due += self._health.failovers_in(now, self._settings.notify.failover_after_s)
        return max(0.0, min(due))

    async def _wait(self, delay: float) -> None:
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await self._clock.sleep(0)  # let the sleeper start (and register with the clock)
            self._idle.set()
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
