"""Timeline writes outside an evaluation pass: mitigation steps, escalations, acknowledgements.

Each write takes the app's lock (one writer of an incident at a time), is persisted before
anyone is told, and then reaches the responder (pages, journal). A refused write is logged and
counted; it never raises into the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import structlog

from hotdash_watch.clock import Clock
from hotdash_watch.metrics import Metrics
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.model.errors import StoreError
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.pipeline.intake import Intake
from hotdash_watch.pipeline.ports import IncidentStore, Responses
from hotdash_watch.pipeline.state import AppState

__all__ = ["Timeline"]

log = structlog.get_logger("hotdash_watch.pipeline")


class Timeline:
    """Appends to open incidents' timelines for the mitigation stage and the HTTP API."""

    def __init__(self, apps: dict[str, AppState], store: IncidentStore, metrics: Metrics,
                 clock: Clock, intake: Intake) -> None:
        self.apps = apps
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.intake = intake
        self.responder: Responses | None = None

    async def _append(self, app: str, incident_id: str,
                      make: Callable[[Incident], tuple[Incident, list[TimelineEntry]]]
                      ) -> Incident | None:
        """Append entries to an incident's timeline under the app's lock, persisted first.
        ``make`` gets the incident as it stands and returns it changed plus the entries."""
        state = self.apps.get(app)
        if state is None:
            return None
        async with state.lock:
            inc = state.incident if state.incident is not None \
                and state.incident.id == incident_id else None
            in_memory = inc is not None
            if inc is None:
                try:
                    inc = await self.store.get_incident(incident_id)
                except StoreError:
                    inc = None
            if inc is None:
                return None
            changed, entries = make(inc)
            try:
                await self.store.save_incident(changed, entries)
            except StoreError as e:
                self.metrics.store_errors.inc()
                log.error("store_write_failed", error=type(e).__name__, detail=str(e),
                          incident_id=incident_id)
                return None
            persisted = dataclasses.replace(changed, timeline=(*changed.timeline, *entries))
            if in_memory:
                state.incident = persisted
            for e in entries:
                self.metrics.transitions.labels(app, e.event.value).inc()
            return persisted

    async def record_action(self, app: str, incident_id: str, rec: ActionRecord, now: float,
                            *, page: str | None) -> None:
        """A mitigation step in the incident's timeline (the report reads it), then its page."""

        def make(inc: Incident) -> tuple[Incident, list[TimelineEntry]]:
            detail: dict[str, Any] = {"target": rec.target, "outcome": rec.outcome.value,
                                      "why": rec.reason}
            if rec.guard:
                detail["guard"] = rec.guard
            if rec.kind is ActionKind.PAGE:
                detail["person_needed"] = True
            elif rec.outcome is Outcome.STARTED:
                detail["starting"] = rec.kind.value
            else:
                detail["action"] = rec.kind.value
                detail["started_at"] = rec.at
            event = Event.NOTE
            if rec.outcome is Outcome.STARTED and inc.state is State.INVESTIGATING:
                inc = dataclasses.replace(inc, state=State.MITIGATING, updated_at=now)
                event = Event.MITIGATING
            text = rec.detail.get("result") or rec.text
            if rec.outcome is Outcome.STARTED:
                text = f"started: {rec.text}"
            elif rec.kind.touches_fly and rec.outcome in (Outcome.OK, Outcome.FAILED,
                                                          Outcome.DEFERRED):
                head = f"{rec.kind.value} of {rec.target}"
                text = f"{head} {rec.outcome.value}: {str(text).removeprefix(head + ': ')}"
            entry = TimelineEntry(at=now, event=event, state=inc.state, severity=inc.severity,
                                  notes=(str(text),), detail=detail, action_id=rec.id)
            return inc, [entry]

        persisted = await self._append(app, incident_id, make)
        if persisted is None or self.responder is None:
            return
        entry = persisted.timeline[-1]
        try:
            await self.responder.on_action(persisted, entry, page=page)
        except Exception:
            log.exception("respond_failed", app=app)

    async def escalate(self, app: str, incident_id: str, to: Severity, reason: str,
                       now: float) -> None:
        """Raise the incident to ``to`` for a reason the signals alone do not carry (a
        mitigation that did not resolve it); the level holds until the signals clear."""
        escalated: list[TimelineEntry] = []

        def make(inc: Incident) -> tuple[Incident, list[TimelineEntry]]:
            if not to.worse_than(inc.severity) or not inc.is_open:
                return inc, []
            new = dataclasses.replace(inc, severity=to, severity_since=now, updated_at=now,
                                      max_severity=Severity.worst(inc.max_severity, to))
            escalated.append(TimelineEntry(at=now, event=Event.ESCALATED, state=new.state,
                                           severity=to, notes=(reason,),
                                           detail={"from": inc.severity.value}))
            return new, escalated

        state = self.apps.get(app)
        persisted = await self._append(app, incident_id, make)
        if persisted is None or not escalated:
            return  # not written, or nothing to raise (already at that severity, or closed)
        if state is not None:
            state.floor = to
        self.metrics.set_severity(app, to)
        log.error("incident_escalated", app=app, incident_id=incident_id, severity=to.value,
                  reasons=[reason])
        if self.responder is not None:
            try:
                await self.responder.on_step(persisted, escalated)
            except Exception:
                log.exception("respond_failed", app=app)

    async def refresh_machines(self, app: str) -> None:
        """Read the Machines API for ``app`` now (after an action), not at the next poll."""
        state = self.apps.get(app)
        if state is not None and state.machines_probe is not None:
            await self.intake.run_fly_probe(state.machines_probe)  # failures become data

    async def acknowledge(self, incident_id: str, author: str) -> Incident | None:
        """Record that a person has the incident (a timeline note), persisted first. None when
        no open incident has that ID. Raises ``StoreError`` when the note cannot be written."""
        state = next((s for s in self.apps.values()
                      if s.incident is not None and s.incident.id == incident_id), None)
        if state is None:
            return None
        now = self.clock.timestamp()
        async with state.lock:
            inc = state.incident
            if inc is None or inc.id != incident_id:
                return None
            entry = TimelineEntry(at=now, event=Event.NOTE, state=inc.state,
                                  severity=inc.severity, notes=(f"acknowledged by {author}",),
                                  detail={"acknowledged_by": author})
            inc = dataclasses.replace(inc, updated_at=now)
            await self.store.save_incident(inc, [entry])
            state.incident = dataclasses.replace(inc, timeline=(*inc.timeline, entry))
        log.info("incident_acknowledged", app=inc.app, incident_id=inc.id, author=author)
        return state.incident
