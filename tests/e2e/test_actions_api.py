"""``GET /api/actions``: every mitigation step the watcher took, refused or would have taken."""

from __future__ import annotations

import aiohttp

from hotdash_watch.clock import ManualClock
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from tests.support.factories import settings
from tests.support.harness import running


def _rec(kind: ActionKind, target: str, at: float, outcome: Outcome, app: str = "svc",
         guard: str | None = None) -> ActionRecord:
    return ActionRecord(id=None, app=app, incident_id="INC-1", kind=kind, target=target,
                        reason="machine_down", text=f"{kind.value} {target}", outcome=outcome,
                        at=at, ended_at=at + 12, guard=guard, detail={"calls": []})


class TestActionsApi:
    async def test_lists_the_app_actions_newest_first(self, clock: ManualClock):
        """Steps of the app come back newest first with outcome, guard and ISO times; another
        app's are not listed; limit keeps the newest."""
        now = clock.timestamp()
        s = settings(server={"host": "127.0.0.1", "port": 0})
        async with running(s, clock) as d, aiohttp.ClientSession() as http:
            assert d.store is not None
            await d.store.add_action(_rec(ActionKind.START, "m1", now - 300, Outcome.OK))
            await d.store.add_action(_rec(ActionKind.RAISE_MEMORY, "m2", now - 200,
                                          Outcome.VETOED, guard="allowed_actions"))
            await d.store.add_action(_rec(ActionKind.START, "x1", now - 100, Outcome.OK,
                                          app="other"))
            async with http.get(f"{d.url}/api/actions?app=svc") as r:
                assert r.status == 200
                body = await r.json()
            rows = body["actions"]
            assert [(a["kind"], a["target"], a["outcome"]) for a in rows] == [
                ("raise_memory", "m2", "vetoed"), ("start", "m1", "ok")]
            assert rows[0]["guard"] == "allowed_actions"
            assert rows[1]["at"].endswith("+00:00")
            async with http.get(f"{d.url}/api/actions?limit=1") as r:
                assert [a["target"] for a in (await r.json())["actions"]] == ["x1"]

    async def test_bad_query_is_a_400_naming_the_field(self, clock: ManualClock):
        """A limit that is not a number in range is refused with what would be valid."""
        s = settings(server={"host": "127.0.0.1", "port": 0})
        async with (running(s, clock) as d, aiohttp.ClientSession() as http,
                    http.get(f"{d.url}/api/actions?limit=zero") as r):
            assert r.status == 400
            assert "limit must be an integer from 1 to 1000" in (await r.json())["error"]
