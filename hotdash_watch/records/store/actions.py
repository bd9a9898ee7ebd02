"""Mitigation actions: every step the watcher planned, started (written before the Fly call),
ended with an outcome, or saw vetoed by a guard. Restart budgets, cooldowns and "rollback once
per incident" are read from these rows, so they hold across a restart of the watcher."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update

from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.records.store.checks import check_json, opt_float
from hotdash_watch.records.store.engine import Database
from hotdash_watch.records.tables import actions

__all__ = ["Actions"]


def _action_row(a: ActionRecord) -> dict[str, Any]:
    check_json(a.detail, f"action {a.kind} detail")
    return {"app": a.app, "incident_id": a.incident_id, "kind": a.kind.value,
            "target": a.target, "reason": a.reason, "text": a.text,
            "outcome": a.outcome.value, "guard": a.guard, "at": float(a.at),
            "ended_at": opt_float(a.ended_at), "detail": dict(a.detail)}


def _action_of(row: Any) -> ActionRecord:
    return ActionRecord(id=row.id, app=row.app, incident_id=row.incident_id,
                        kind=ActionKind(row.kind), target=row.target, reason=row.reason,
                        text=row.text, outcome=Outcome(row.outcome), at=row.at,
                        ended_at=row.ended_at, guard=row.guard, detail=dict(row.detail or {}))


class Actions:
    """The ``actions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: ActionRecord) -> ActionRecord:
        """Store a new action row; the record with its id. Durable when it returns."""
        row = _action_row(record)
        async with self._db.writing(f"cannot record {record.kind} of {record.target}") as conn:
            new_id = (await conn.execute(insert(actions).values(**row)
                                         .returning(actions.c.id))).scalar_one()
        return dataclasses.replace(record, id=new_id)

    async def end(self, action_id: int, outcome: Outcome, ended_at: float,
                  detail: Mapping[str, Any] | None = None) -> None:
        """Record how the action ended (or, with ``Outcome.STARTED``, its progress)."""
        values: dict[str, Any] = {"outcome": outcome.value}
        if outcome.ended:
            values["ended_at"] = float(ended_at)
        if detail is not None:
            check_json(dict(detail), f"action {action_id} detail")
            values["detail"] = dict(detail)
        async with self._db.writing(f"cannot update action {action_id}") as conn:
            await conn.execute(update(actions).where(actions.c.id == action_id)
                               .values(**values))

    async def since(self, since: float, *, app: str | None = None,
                    incident_id: str | None = None) -> list[ActionRecord]:
        """Actions started at or after ``since`` (of one app / incident), oldest first."""
        query = select(actions).where(actions.c.at >= since)
        if app is not None:
            query = query.where(actions.c.app == app)
        if incident_id is not None:
            query = query.where(actions.c.incident_id == incident_id)
        query = query.order_by(actions.c.at, actions.c.id)
        async with self._db.reading("cannot read actions") as conn:
            return [_action_of(r) for r in (await conn.execute(query)).all()]

    async def unfinished(self) -> list[ActionRecord]:
        """Actions that were started and never ended (the watcher stopped during them)."""
        query = (select(actions).where(actions.c.outcome == Outcome.STARTED.value)
                 .order_by(actions.c.at, actions.c.id))
        async with self._db.reading("cannot read unfinished actions") as conn:
            return [_action_of(r) for r in (await conn.execute(query)).all()]
