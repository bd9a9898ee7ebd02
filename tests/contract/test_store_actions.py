"""The store's action records on SQLite and PostgreSQL, and the guards reading them after a
restart: budgets, cooldowns and "rollback once" hold across a restart of the watcher."""

from __future__ import annotations

from hotdash_watch.config import MitigationSettings
from hotdash_watch.guards import Decision, GuardContext, GuardName, check
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import MachineView, Step, Why
from hotdash_watch.records.store import Store

NOW = 1_780_000_000.0
APP = "hotdash-api"


def _rec(kind: ActionKind, target: str, at: float, outcome: Outcome = Outcome.OK,
         incident: str = "INC-1", **detail: object) -> ActionRecord:
    return ActionRecord(id=None, app=APP, incident_id=incident, kind=kind, target=target,
                        reason=Why.MACHINE_DOWN.value, text=f"{kind.value} {target}",
                        outcome=outcome, at=at, ended_at=None if outcome is Outcome.STARTED
                        else at + 20, detail=dict(detail))


class TestActionRecords:
    async def test_round_trip(self, store: Store):
        """An action is stored with its id, then ended with an outcome and detail; it reads
        back equal, field by field."""
        rec = await store.add_action(_rec(ActionKind.ROLLBACK, APP, NOW, Outcome.STARTED,
                                          image="registry.fly.io/a:1", done=[]))
        assert rec.id is not None
        await store.end_action(rec.id, Outcome.STARTED, NOW + 5, {"done": ["m1"]})
        [mid] = await store.unfinished_actions()
        assert mid.detail == {"done": ["m1"]} and mid.ended_at is None
        await store.end_action(rec.id, Outcome.OK, NOW + 30, {"done": ["m1", "m2"]})
        [back] = await store.actions_since(NOW - 1, app=APP)
        assert back.outcome is Outcome.OK and back.ended_at == NOW + 30
        assert back.kind is ActionKind.ROLLBACK and back.detail == {"done": ["m1", "m2"]}
        assert await store.unfinished_actions() == []

    async def test_filters_by_time_app_and_incident(self, store: Store):
        """actions_since returns the app's (or incident's) actions from a time on, oldest
        first."""
        await store.add_action(_rec(ActionKind.START, "m1", NOW - 4000))
        await store.add_action(_rec(ActionKind.START, "m2", NOW - 100, incident="INC-2"))
        await store.add_action(_rec(ActionKind.RESTART, "m3", NOW - 50))
        recent = await store.actions_since(NOW - 3600, app=APP)
        assert [a.target for a in recent] == ["m2", "m3"]
        assert [a.target for a in await store.actions_since(0.0, incident_id="INC-2")] == ["m2"]
        assert await store.actions_since(0.0, app="other") == []


class TestGuardsAfterRestart:
    async def test_budget_and_cooldown_hold_across_a_restart(self, store_url: str):
        """Restarts recorded by one run of the watcher exhaust the budget and the cooldown for
        the next run, which reads them from the store."""
        settings = MitigationSettings(restart_budget_machine=2, cooldown_s=60)
        async with await Store.open(store_url) as first:
            await first.add_action(_rec(ActionKind.START, "m1", NOW - 600))
            await first.add_action(_rec(ActionKind.RESTART, "m1", NOW - 30))
        async with await Store.open(store_url) as second:
            history = tuple(await second.actions_since(NOW - settings.budget_window_s,
                                                       app=APP))
        machines = (MachineView("m1", "stopped", healthy=False, down=True),
                    MachineView("m2", "stopped", healthy=False, down=True))
        ctx = GuardContext(now=NOW, settings=settings, machines=machines, app_history=history)
        vetoed = check(Step(ActionKind.START, "m1", Why.MACHINE_DOWN, "start m1"), ctx)
        assert vetoed.decision is Decision.VETO and vetoed.guard is GuardName.MACHINE_BUDGET
        fresh = check(Step(ActionKind.START, "m2", Why.MACHINE_DOWN, "start m2"), ctx)
        assert fresh.decision is Decision.ALLOW
        cooling = GuardContext(now=NOW, settings=MitigationSettings(cooldown_s=60),
                               machines=machines, app_history=history)
        deferred = check(Step(ActionKind.START, "m1", Why.MACHINE_DOWN, "start m1"), cooling)
        assert deferred.decision is Decision.DEFER and deferred.guard is GuardName.COOLDOWN

    async def test_rollback_once_holds_across_a_restart(self, store_url: str):
        """A rollback started by the previous run (never ended) still counts: no second one."""
        async with await Store.open(store_url) as first:
            await first.add_action(_rec(ActionKind.ROLLBACK, APP, NOW - 60, Outcome.STARTED,
                                        from_version=7))
        async with await Store.open(store_url) as second:
            history = tuple(await second.actions_since(0.0, incident_id="INC-1"))
        ctx = GuardContext(now=NOW, settings=MitigationSettings(), incident_history=history,
                           app_history=history)
        step = Step(ActionKind.ROLLBACK, APP, Why.ERRORS_AFTER_RELEASE, "roll back",
                    {"version": 6, "image": "registry.fly.io/a:6", "from_version": 7})
        verdict = check(step, ctx)
        assert verdict.decision is Decision.VETO
        assert verdict.guard is GuardName.ROLLBACK_ONCE
