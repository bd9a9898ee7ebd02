"""What the pass needs from the parts downstream of it, as protocols.

The pipeline decides; the store, the responder (pages, journal, reports) and the mitigation
stage carry its decisions out. They live in packages that may import the pipeline, never the
other way round, so the pass names them here by what it calls and the daemon passes the real
ones in (``records.store.Store``, ``respond.Responder``, ``mitigate.Mitigator``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from hotdash_watch.model.incident import Incident, TimelineEntry

if TYPE_CHECKING:
    from hotdash_watch.classify import Assessment
    from hotdash_watch.pipeline.state import AppState

__all__ = ["IncidentStore", "Mitigation", "Responses"]


class IncidentStore(Protocol):
    """The incident writes and reads of a pass. Every method may raise ``StoreError``."""

    async def save_incident(self, incident: Incident,
                            entries: Sequence[TimelineEntry] = ()) -> None: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def open_incidents(self) -> list[Incident]: ...

    async def open_incident_for(self, app: str) -> Incident | None: ...

    async def incident_id_taken(self, incident_id: str) -> bool: ...

    async def add_samples(self, rows: Sequence[tuple[str, float, float | None, float | None,
                                                     str | None]]) -> None: ...


class Responses(Protocol):
    """People-facing effects of persisted transitions: pages, journal, diagnostics, report."""

    async def on_step(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None: ...

    async def on_action(self, incident: Incident, entry: TimelineEntry, *,
                        page: str | None) -> None: ...

    async def tick(self, incidents: Sequence[Incident], now: float) -> None: ...

    async def watcher(self, app: str, blind: bool, reasons: Sequence[str],
                      now: float) -> None: ...


class Mitigation(Protocol):
    """Policy -> guards -> actions for one app's open incident, once per pass."""

    async def observe(self, state: AppState, assessment: Assessment, now: float) -> None: ...

    async def consider(self, state: AppState, assessment: Assessment | None,
                       now: float) -> None: ...

