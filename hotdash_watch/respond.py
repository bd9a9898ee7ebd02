"""What people get from a persisted transition: pages, journal lines, diagnostics, the report.

The pipeline calls ``Responder.on_step`` after a step's transitions are in the store (never
before), and ``Responder.tick`` on every pass for the runbook's status-update cadence. What to
page when is pure (``pages_for``, ``update_due``); the rest is thin I/O that never raises into
the pipeline: a failure to write the journal or capture diagnostics is logged and counted, and
paging goes through the durable outbox.

Cadence (runbook Phase 4): a page when the incident opens, on every severity change, when its
status changes (monitoring, regressed), a status update every 15 min for SEV-1 and 30 min for
SEV-2, and a resolution page. Dedup keys are derived from the incident and the timeline entry
(or the update slot), so a restart never pages the same event twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from hotdash_watch.clock import Clock
from hotdash_watch.config import Settings
from hotdash_watch.model.action import ActionRecord, Outcome
from hotdash_watch.model.errors import StoreError
from hotdash_watch.model.incident import Event, Incident, TimelineEntry
from hotdash_watch.model.severity import Severity

__all__ = ["PagePlan", "Responder", "pages_for", "update_due"]

log = structlog.get_logger("hotdash_watch.respond")

_EVENT_PAGES = {
    Event.OPENED: "opened",
    Event.ESCALATED: "severity_changed",
    Event.ESCALATED_TIMER: "severity_changed",
    Event.DEESCALATED: "severity_changed",
    Event.MONITORING: "status",
    Event.REGRESSED: "status",
    Event.RESOLVED: "resolved",
}


#: How a step on Fly must have ended for the journal to record it as an action taken.
_JOURNALED = frozenset({Outcome.OK, Outcome.FAILED})


@dataclass(frozen=True, slots=True)
class PagePlan:
    """One page to send: its event and the number that makes its dedup key unique."""

    event: str
    n: int

    def key(self, incident_id: str) -> str:
        return f"{incident_id}:{self.event}:{self.n}"


def pages_for(incident: Incident, entries: Sequence[TimelineEntry]) -> list[PagePlan]:
    """The pages the new timeline entries call for; ``n`` is the entry's index in the timeline.

    ``incident.timeline`` already ends with ``entries``.
    """
    base = len(incident.timeline) - len(entries)
    plans = []
    for i, e in enumerate(entries):
        event = _EVENT_PAGES.get(e.event)
        if event is not None:
            plans.append(PagePlan(event, base + i + 1))
    return plans


def update_due(incident: Incident, settings: Settings, now: float,
               last_slot: int | None) -> PagePlan | None:
    """A status update when the runbook's cadence says so (SEV-1 15 min, SEV-2 30 min).

    Slots count whole intervals since the current severity was set; slot 0 is the opening (or
    severity-change) page itself.
    """
    if not incident.is_open:
        return None
    interval = {Severity.SEV1: settings.timers.update_sev1_s,
                Severity.SEV2: settings.timers.update_sev2_s}.get(incident.severity)
    if interval is None:
        return None
    slot = int((now - incident.severity_since) // interval)
    if slot < 1 or slot == last_slot:
        return None
    return PagePlan("update", int(incident.severity_since) * 1000 + slot)


class Responder:
    """Pages, journal, diagnostics and report for the pipeline's persisted steps."""

    def __init__(self, settings: Settings, clock: Clock, store: Any, metrics: Any, *,
                 outbox: Any = None, fly_client: Any = None) -> None:
        from hotdash_watch.records.journal import Journal

        self.settings = settings
        self.clock = clock
        self.store = store
        self.metrics = metrics
        self.outbox = outbox
        self.fly_client = fly_client
        self.journal = Journal(Path(settings.notify.journal_path))
        self._update_slots: dict[str, int] = {}
        self._blind: dict[str, tuple[int, int, float | None]] = {}  # app -> (seen, clear, since)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def on_step(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None:
        """React to transitions already written to the store."""
        for plan in pages_for(incident, entries):
            await self._page(incident, plan)
        for e in entries:
            await self._journal(incident, e)
            if e.event is Event.OPENED:
                self._background(self._capture(incident))
            elif e.event is Event.RESOLVED:
                self._background(self._report(incident))
            if e.event in (Event.ESCALATED, Event.DEESCALATED, Event.ESCALATED_TIMER):
                self._update_slots.pop(incident.id, None)

    async def on_action(self, incident: Incident, entry: TimelineEntry, *,
                        page: str | None) -> None:
        """A mitigation step just written to the timeline: page it (``page`` is the page
        event, None for none) and journal what was done (runbook Phase 2 "Action Taken")."""
        detail = entry.detail
        kind = detail.get("action") or detail.get("starting") or "page"
        what = f"{kind} {detail.get('target', '')}".strip()
        outcome = str(detail.get("outcome") or "")
        note = entry.reasons[0] if entry.reasons else None
        if page is not None:
            n = len(incident.timeline)
            await self._page(incident, PagePlan(page, n), note=note,
                             actions=(f"{what} ({outcome})" if detail.get("action") else
                                      "a person is needed",))
        if entry.action_id is not None:
            await self._journal_action(incident, entry)

    async def tick(self, incidents: Sequence[Incident], now: float) -> None:
        """Status updates that fall due on this pass."""
        for inc in incidents:
            plan = update_due(inc, self.settings, now, self._update_slots.get(inc.id))
            if plan is not None:
                self._update_slots[inc.id] = int((now - inc.severity_since) // (
                    self.settings.timers.update_sev1_s if inc.severity is Severity.SEV1
                    else self.settings.timers.update_sev2_s))
                await self._page(inc, plan)

    async def watcher(self, app: str, blind: bool, reasons: Sequence[str], now: float) -> None:
        """Page once when the watcher has been blind to ``app`` for as long as a SEV-3 must
        hold, and once more when it has seen it again for as long as a condition must clear."""
        seen, clear, since = self._blind.get(app, (0, 0, None))
        seen, clear = (seen + 1, 0) if blind else (0, clear + 1)
        h = self.settings.hysteresis
        page = None
        if since is None and seen >= h.raise_evals_sev3:
            since = now
            page = self._notice(app, reasons, since, now, resolved=False)
        elif since is not None and clear >= h.clear_evals:
            page = self._notice(app, reasons, since, now, resolved=True)
            since = None
        self._blind[app] = (seen, clear, since)
        if page is not None and self.outbox is not None:
            try:
                await self.outbox.page(page)
            except StoreError as e:
                log.error("page_not_queued", app=app, page_event=page.event.value,
                          error=type(e).__name__, detail=str(e))

    def _notice(self, app: str, reasons: Sequence[str], since: float, now: float,
                *, resolved: bool) -> Any:
        from hotdash_watch.notify.templates import watcher_notice

        log.warning("watcher_side_resolved" if resolved else "watcher_side_paged", app=app)
        return watcher_notice(app, reasons, settings=self.settings, since=since, now=now,
                              resolved=resolved)

    async def _page(self, incident: Incident, plan: PagePlan, *, note: str | None = None,
                    actions: Sequence[str] = ()) -> None:
        if self.outbox is None:
            return
        from hotdash_watch.notify.base import PageEvent
        from hotdash_watch.notify.templates import render

        now = self.clock.timestamp()
        try:
            page = render(incident, PageEvent(plan.event), settings=self.settings, now=now,
                          key=plan.key(incident.id), note=note, actions=actions)
            await self.outbox.page(page)  # the outbox logs page_enqueued
        except StoreError as e:  # the outbox is the durable part; this must not stop the pass
            log.error("page_not_queued", app=incident.app, incident_id=incident.id,
                      page_event=plan.event, error=type(e).__name__, detail=str(e))

    async def _actions(self, incident: Incident) -> list[ActionRecord] | None:
        """The incident's action records from the store; None (logged) when unreadable."""
        try:
            return await self.store.actions_since(0.0, incident_id=incident.id)
        except StoreError as e:
            log.error("actions_not_read", app=incident.app, incident_id=incident.id,
                      error=type(e).__name__, detail=str(e))
            return None

    async def _journal_action(self, incident: Incident, entry: TimelineEntry) -> None:
        """Phase 2's "Action Taken" for a step on Fly that has just ended done or failed."""
        from hotdash_watch.records import journal as j

        actions = await self._actions(incident)
        rec = next((a for a in actions or () if a.id == entry.action_id), None)
        if rec is None or not rec.kind.touches_fly or rec.outcome not in _JOURNALED:
            return
        await self._append(incident, j.action_lines(incident, [rec], entry.at,
                                                    settings=self.settings))

    async def _journal(self, incident: Incident, entry: TimelineEntry) -> None:
        from hotdash_watch.records import journal as j
        from hotdash_watch.records.findings import preliminary_root_cause

        now = entry.at
        lines: list[str]
        if entry.event is Event.OPENED:
            lines = j.opened_lines(incident, now, settings=self.settings)
        elif entry.event in (Event.ESCALATED, Event.DEESCALATED, Event.ESCALATED_TIMER):
            actions = await self._actions(incident)
            lines = j.severity_lines(incident, entry, _taken_so_far(actions or (), entry.at),
                                     settings=self.settings)
        elif entry.event is Event.RESOLVED:
            root_cause = preliminary_root_cause(
                incident, await self._actions(incident),
                recent_release_s=self.settings.fly.recent_release_s)
            lines = j.resolved_lines(incident, root_cause)
        else:
            return
        await self._append(incident, lines)

    async def _append(self, incident: Incident, lines: Sequence[str]) -> None:
        try:
            await self.journal.append(lines)
        except OSError as e:
            log.error("journal_write_failed", app=incident.app, incident_id=incident.id,
                      error=e.strerror or type(e).__name__)

    async def _capture(self, incident: Incident) -> None:
        from hotdash_watch.records.diagnostics import capture

        try:
            path = await capture(self.fly_client, [incident.app], incident,
                                 Path(self.settings.notify.artifacts_dir), clock=self.clock)
            log.info("diagnostics_captured", app=incident.app, incident_id=incident.id,
                     path=str(path))
        except Exception as e:
            log.error("diagnostics_failed", app=incident.app, incident_id=incident.id,
                      error=type(e).__name__, detail=str(e))

    async def _report(self, incident: Incident) -> None:
        from hotdash_watch.records.report import write_report

        try:
            path = await write_report(self.store, incident.id,
                                      Path(self.settings.notify.artifacts_dir),
                                      settings=self.settings, now=self.clock.timestamp())
            log.info("report_written", app=incident.app, incident_id=incident.id,
                     path=str(path))
        except Exception as e:
            log.error("report_failed", app=incident.app, incident_id=incident.id,
                      error=type(e).__name__, detail=str(e))

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        """Let background captures and reports finish (shutdown), then cancel the rest."""
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=timeout_s)
            for t in late:
                t.cancel()


def _taken_so_far(actions: Sequence[ActionRecord], until: float) -> list[ActionRecord]:
    """The steps on Fly started by ``until``, as they stood then: one that ended later is
    "in progress" (the journal's "Action Taken:")."""
    return [a if a.ended_at is not None and a.ended_at <= until
            else dataclasses.replace(a, outcome=Outcome.STARTED)
            for a in sorted(actions, key=lambda a: a.at)
            if a.kind.touches_fly and a.at <= until]
