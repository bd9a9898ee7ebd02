"""Machine facts from the Machines API: down vs idle, OOM kills and Fly restarts counted once."""

from __future__ import annotations

import dataclasses

from hotdash_watch.fly.models import parse_machines
from hotdash_watch.probes.machines import ExitLedger, machine_facts
from tests.support.fixtures import load

NOW = 1773757590.0  # 2026-03-17T14:26:30Z, just after the fixture's newest OOM exit


def _facts(machines, ledger=None, now=NOW):
    ledger = ledger or ExitLedger(900)
    ledger.record(machines, now)
    return machine_facts(machines, ledger, now, {})


class TestMachineFacts:
    def test_fixture_list(self):
        """In the fixture list: one started and passing, one autostopped (idle, not down),
        one started with critical checks after an OOM kill (down)."""
        f = _facts(parse_machines(load("machines-list.json")))
        assert (f.total, f.started_healthy, f.idle_stopped, f.down) == (3, 1, 1, 1)
        assert f.down_ids == ("2873b6e4f09d15",) and f.unhealthy_ids == ("2873b6e4f09d15",)
        assert f.oom_kills >= 1 and f.fly_restarts >= 1

    def test_exits_are_counted_once_across_polls(self):
        """The same exit events seen on every poll are counted once."""
        machines = parse_machines(load("machines-list.json"))
        ledger = ExitLedger(900)
        first = _facts(machines, ledger)
        again = _facts(machines, ledger, NOW + 10)
        assert again.oom_kills == first.oom_kills

    def test_old_exits_leave_the_window(self):
        """Exits older than the window no longer count."""
        machines = parse_machines(load("machines-list.json"))
        ledger = ExitLedger(900)
        _facts(machines, ledger)
        later = machine_facts(machines, ledger, NOW + 3600, {})
        assert later.oom_kills == 0

    def test_all_stopped_after_crash_is_all_down(self):
        """Machines stopped without requested_stop are down; none healthy means all down."""
        machines = [dataclasses.replace(m, state="stopped", events=())
                    for m in parse_machines(load("machines-list.json"))]
        f = _facts(machines)
        assert f.started_healthy == 0 and f.down == 3

    def test_standbys_are_not_counted(self):
        """A standby is neither serving nor down."""
        machines = parse_machines(load("machines-list.json"))
        machines = [dataclasses.replace(machines[1], is_standby=True), machines[0]]
        f = _facts(machines)
        assert f.total == 1 and f.down == 0


class TestCheckGrace:
    def test_recently_failing_check_is_not_yet_down(self):
        """A started machine whose check turned critical seconds ago is not counted down yet;
        after the grace period it is."""
        machines = parse_machines(load("machines-list.json"))
        bad = machines[2]  # started, checks critical
        changed = max(c.updated_at for c in bad.checks if c.status != "passing")
        ledger = ExitLedger(900)
        soon = machine_facts([bad], ledger, changed + 5, {}, check_grace_s=30)
        later = machine_facts([bad], ledger, changed + 31, {}, check_grace_s=30)
        assert (soon.down, soon.started_healthy) == (0, 1)
        assert (later.down, later.started_healthy) == (1, 0)
