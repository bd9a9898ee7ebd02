"""Scenario files: every shipped file loads, and a bad one names each wrong field and what fits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hotdash_watch.sim import AppSpec, Fault, ScenarioError, load_scenario, parse_scenario
from hotdash_watch.sim.ids import machine_identities

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
FILES = sorted(SCENARIOS.glob("*.toml"))
RUNBOOK = {"no-fault", "all-machines-down", "high-error-rate", "high-latency", "oom-kills",
           "autoscaling-broken", "flapping", "bad-release", "dependency-down",
           "watcher-partition"}
KINDS = ("crash, oom, errors, latency, bad_release, dependency_down, autostop_broken, "
         "fly_api_down, watcher_partition, flap, recover")

BASE: dict[str, Any] = {
    "name": "t", "duration_s": 900,
    "apps": [{"name": "a", "machines": 3}, {"name": "b"}],
    "faults": [{"at_s": 120, "kind": "crash", "app": "a"}],
}


class TestScenarioFiles:
    """The shipped scenarios in config/scenarios."""

    def test_runbook_scenarios_exist(self):
        """There is one file per runbook failure scenario plus the no-fault baseline."""
        assert {f.stem for f in FILES} >= RUNBOOK

    @pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
    def test_file_loads(self, path: Path):
        """Each file is valid, named after itself, 900-1200 s long and opens with a comment."""
        scenario = load_scenario(path)
        assert scenario.name == path.stem
        assert 900 <= scenario.duration_s <= 1200
        assert path.read_text().startswith("# "), "say what it exercises and what should happen"
        assert all(f.at_s < scenario.duration_s for f in scenario.faults)

    def test_no_fault_has_no_fault(self):
        """The baseline has apps and nothing else."""
        assert load_scenario(SCENARIOS / "no-fault.toml").faults == ()


class TestScenarioModel:
    """What a valid scenario turns into."""

    def test_defaults(self):
        """Omitted app fields take the documented defaults."""
        s = parse_scenario({"name": "t", "duration_s": 60, "apps": [{"name": "a"}]})
        assert s.apps == (AppSpec(name="a"),)
        assert (s.apps[0].machines, s.apps[0].memory_mb, s.apps[0].releases) == (
            2, 512, ("good", "good"))
        assert s.seed == 0 and s.faults == ()

    def test_single_app_fills_in_app(self):
        """With one app, a fault without ``app`` targets it."""
        s = parse_scenario({"name": "t", "duration_s": 60, "apps": [{"name": "a"}],
                            "faults": [{"at_s": 5, "kind": "oom", "need_mb": 1024}]})
        assert s.faults == (Fault(at_s=5.0, kind="oom", app="a", need_mb=1024),)

    def test_platform_and_all_app_kinds(self):
        """fly_api_down has no app; watcher_partition and recover without one mean every app."""
        data = copy.deepcopy(BASE)
        data["faults"] = [{"at_s": 1, "kind": "fly_api_down", "until_s": 9},
                          {"at_s": 2, "kind": "watcher_partition"},
                          {"at_s": 3, "kind": "recover"}]
        s = parse_scenario(data)
        assert [f.app for f in s.faults] == [None, None, None]

    @pytest.mark.parametrize("machines", ["all", 2, "names", "ids"])
    def test_machines_forms(self, machines: Any):
        """``machines`` is "all", a count, or machine names or ids of that app."""
        known = machine_identities(0, "a", 3)
        value = {"names": [known[1][1]], "ids": [known[2][0]]}.get(machines, machines)
        data = copy.deepcopy(BASE)
        data["faults"][0]["machines"] = value
        fault = parse_scenario(data).faults[0]
        assert fault.machines == (tuple(value) if isinstance(value, list) else value)


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``path`` (dotted, list indexes as numbers) set to ``value`` (None: delete)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


class TestScenarioErrors:
    """An invalid scenario raises ScenarioError naming each bad field and what is allowed."""

    @pytest.mark.parametrize(("data", "problem"), [
        (_with("faults.0.kind", "explode"), f"faults[0].kind: 'explode' is not one of {KINDS}"),
        (_with("faults.0.at_s", -1), "faults[0].at_s: must be >= 0"),
        (_with("faults.0.at_s", 1000), "faults[0].at_s: must be <= duration_s (900)"),
        (_with("faults.0.app", "x"), "faults[0].app: no app named 'x' (apps: a, b)"),
        (_with("faults.0.app", None), "faults[0].app: required for kind 'crash' when the "
                                      "scenario has more than one app (apps: a, b)"),
        (_with("faults.0.until_s", 100), "faults[0].until_s: must be > at_s (120)"),
        (_with("faults.0.need_mb", 1024), "faults[0].need_mb: not used by kind 'crash' "
                                          "(crash takes: app, at_s, machines, until_s)"),
        (_with("faults.0.colour", "red"), "faults[0].colour: unknown key; allowed here: app, "
                                          "at_s, kind, machines, need_mb, p95_ms, period_s, "
                                          "rate, until_s"),
        (_with("faults.0.machines", 4), "faults[0].machines: must be between 1 and the app's "
                                        "3 machines (got 4)"),
        (_with("faults.0.machines", ["nobody"]), "faults[0].machines: no machine named "
                                                 "'nobody' in app 'a'"),
        (_with("faults.0.machines", True), "faults[0].machines: must be \"all\", a count or a "
                                           "list of machine names"),
        (_with("faults.0", {"at_s": 1, "kind": "oom", "app": "a"}),
         "faults[0].need_mb: required for kind 'oom'"),
        (_with("faults.0", {"at_s": 1, "kind": "oom", "app": "a", "need_mb": 256}),
         "faults[0].need_mb: must be above the app's memory_mb (512)"),
        (_with("faults.0", {"at_s": 1, "kind": "errors", "app": "a", "rate": 1.5}),
         "faults[0].rate: must be <= 1 (got 1.5)"),
        (_with("faults.0", {"at_s": 1, "kind": "errors", "app": "a"}),
         "faults[0].rate: required for kind 'errors'"),
        (_with("faults.0", {"at_s": 1, "kind": "latency", "app": "a"}),
         "faults[0].p95_ms: required for kind 'latency'"),
        (_with("faults.0", {"at_s": 1, "kind": "bad_release", "app": "a"}),
         "faults[0].rate: required for kind 'bad_release'"),
        (_with("faults.0", {"at_s": 1, "kind": "flap", "app": "a", "period_s": 0}),
         "faults[0].period_s: must be > 0 (got 0)"),
        (_with("faults.0", {"at_s": 1, "kind": "flap", "app": "a"}),
         "faults[0].period_s: required for kind 'flap'"),
        (_with("faults.0", {"at_s": 1, "kind": "fly_api_down", "app": "a"}),
         "faults[0].app: fly_api_down is platform-wide and takes no app"),
        (_with("faults.0", {"at_s": 1, "kind": "recover", "machines": 1}),
         "faults[0].machines: needs an app"),
        (_with("faults.0", {"kind": "crash", "app": "a"}), "faults[0].at_s: required"),
        (_with("faults.0", {"at_s": "soon", "kind": "crash", "app": "a"}),
         "faults[0].at_s: must be a number (got 'soon')"),
        (_with("colour", "red"), "colour: unknown key; allowed here: apps, duration_s, faults, "
                                 "name, seed"),
        (_with("duration_s", None), "duration_s: required"),
        (_with("duration_s", 0), "duration_s: must be > 0 (got 0)"),
        (_with("apps", []), "apps: must be a non-empty array of tables"),
        (_with("apps.1.name", "a"), "apps[1].name: 'a' is already used by another app"),
        (_with("apps.1.name", "Bad_Name"), "apps[1].name: 'Bad_Name' is not a Fly app name"),
        (_with("apps.1.cpu", 2), "apps[1].cpu: unknown key; allowed here: autostart, autostop, "
                                 "machines, memory_mb, min_machines_running, name, region, "
                                 "releases, traffic_rps"),
        (_with("apps.1.machines", 0), "apps[1].machines: must be >= 1 (got 0)"),
        (_with("apps.1.machines", "3"), "apps[1].machines: must be an integer (got '3')"),
        (_with("apps.1.memory_mb", 500), "apps[1].memory_mb: must be a multiple of 256"),
        (_with("apps.1.releases", ["good", "ugly"]), "apps[1].releases: must be a non-empty "
                                                     "list of \"good\" and \"bad\""),
        (_with("apps.1.autostop", "yes"), "apps[1].autostop: must be true or false"),
        (_with("apps.1.min_machines_running", 3), "apps[1].min_machines_running: must be <= "
                                                  "machines (2)"),
        (_with("apps.1.region", "Paris"), "apps[1].region: 'Paris' is not a Fly region code"),
        (_with("apps.1.traffic_rps", -1), "apps[1].traffic_rps: must be >= 0"),
    ])
    def test_problem_names_the_field(self, data: dict[str, Any], problem: str):
        """The problem line names the field by its path and says what is allowed."""
        with pytest.raises(ScenarioError) as err:
            parse_scenario(data, "case.toml")
        assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
        assert "case.toml" in str(err.value)

    def test_every_problem_is_reported(self):
        """All problems come back at once, one line each."""
        data = _with("faults.0.kind", "explode")
        data["apps"][1]["machines"] = -2
        data["duration_s"] = "long"
        with pytest.raises(ScenarioError) as err:
            parse_scenario(data)
        wheres = sorted(p.split(":")[0] for p in err.value.problems)
        assert wheres == ["apps[1].machines", "duration_s", "faults[0].kind"]

    def test_invalid_toml_names_the_line(self, tmp_path: Path):
        """A file that is not TOML is reported with the line of the mistake."""
        p = tmp_path / "bad.toml"
        p.write_text('name = "x"\nduration_s = \n')
        with pytest.raises(ScenarioError) as err:
            load_scenario(p)
        assert "not valid TOML" in err.value.problems[0] and "line 2" in err.value.problems[0]

    def test_missing_file(self, tmp_path: Path):
        """A missing file is a ScenarioError, not a traceback."""
        with pytest.raises(ScenarioError, match="no such file"):
            load_scenario(tmp_path / "nope.toml")
