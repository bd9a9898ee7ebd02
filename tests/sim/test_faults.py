"""The fault registry: every kind a scenario may name has one class, satisfying ``FaultKind``."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

import pytest

from hotdash_watch.clock import ManualClock
from hotdash_watch.sim import Fault, World
from hotdash_watch.sim.faults import FAULTS, FaultKind
from hotdash_watch.sim.faults.base import AppRule
from hotdash_watch.sim.scenario import FAULT_KEYS, FAULT_KINDS
from tests.sim.helpers import make_scenario

APP = "hotdash-api"


def test_the_scenario_reference_documents_every_kind():
    reference = (Path(__file__).parents[2] / "config" / "scenarios" / "README.md").read_text()
    assert [k for k in FAULTS if f"\n| `{k}` |" not in reference] == []


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_kind_has_a_class_satisfying_the_protocol(kind: str, clock: ManualClock):
    cls = FAULTS[kind]
    assert cls.kind == kind
    assert cls.__module__ == f"hotdash_watch.sim.faults.{kind}"  # one module per kind
    assert sys.modules[cls.__module__].__doc__  # which says what the fault does
    assert cls.fields <= set(FAULT_KEYS) - {"at_s", "kind", "app"}
    assert cls.required is None or cls.required in cls.fields
    assert cls.app_rule in typing.get_args(AppRule)
    world = World(make_scenario({"name": APP}), clock)
    app = None if cls.app_rule == "forbidden" else APP
    fired = cls(world.engine.ctx, 1, Fault(at_s=0, kind=kind, app=app), 0.0)
    assert isinstance(fired, FaultKind)
    assert fired.active and fired.targets == set()
