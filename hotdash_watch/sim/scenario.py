"""Scenario files: the apps a simulated Fly runs and the faults that hit them, on a timeline.

A scenario is a TOML file (see ``config/scenarios/``)::

    name = "all-machines-down"
    duration_s = 900                 # scenario seconds
    seed = 0                         # optional: ids, names and randomness derive from it
    [[apps]]
    name = "hotdash-llamaindex-mcp"
    machines = 3                     # default 2
    memory_mb = 512                  # default 512
    releases = ["good", "good"]      # oldest first, a day apart before t=0; the last is current
    region = "iad"                   # autostop = false, autostart = true,
                                     # min_machines_running = 1, traffic_rps = 5.0
    [[faults]]
    at_s = 120
    kind = "crash"
    app = "hotdash-llamaindex-mcp"
    machines = "all"                 # "all", a count (the first N), or machine names or ids

The fault kinds, the keys each takes (and the one it requires) and whether it names an app come
from the kinds' own classes in ``hotdash_watch/sim/faults/``; ``config/scenarios/README.md``
describes every key, its limits and what each fault does to the world. ``app`` may be left out
when the scenario has one app.

``load_scenario`` and ``parse_scenario`` never raise anything but ``ScenarioError``, whose
``problems`` name each bad field by its path (``faults[1].kind``) with what is allowed. The
values they return (``Scenario``, ``AppSpec``, ``Fault``) are defined in ``spec.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hotdash_watch.config.errors import InvalidInput, read_toml
from hotdash_watch.sim.faults import FAULTS
from hotdash_watch.sim.ids import machine_identities
from hotdash_watch.sim.spec import AppSpec, Fault, Machines, Scenario

__all__ = [
    "FAULT_KINDS",
    "AppSpec",
    "Fault",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
]

# The fault kinds, the keys each takes besides at_s, kind and app, and the one it needs: all
# from the kinds' classes (hotdash_watch/sim/faults/).
FAULT_KINDS: tuple[str, ...] = tuple(FAULTS)
KIND_FIELDS: dict[str, frozenset[str]] = {kind: cls.fields for kind, cls in FAULTS.items()}
REQUIRED_FIELDS: dict[str, str] = {kind: cls.required for kind, cls in FAULTS.items()
                                   if cls.required is not None}
APP_OPTIONAL = frozenset(k for k, cls in FAULTS.items() if cls.app_rule == "optional")
APP_FORBIDDEN = frozenset(k for k, cls in FAULTS.items() if cls.app_rule == "forbidden")

TOP_KEYS = ("name", "duration_s", "seed", "apps", "faults")
APP_KEYS = ("name", "machines", "memory_mb", "releases", "region", "autostop", "autostart",
            "min_machines_running", "traffic_rps")
FAULT_KEYS = ("at_s", "kind", "app", "machines", "until_s", "need_mb", "rate", "p95_ms",
              "period_s")

_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_REGION = re.compile(r"^[a-z]{3}$")
MAX_MACHINES = 50


class ScenarioError(InvalidInput):
    """The scenario cannot be used; ``problems`` holds one line per invalid field."""

    what = "scenario"


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario TOML file at ``path``."""
    return parse_scenario(read_toml(path, ScenarioError), str(path))


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate ``data`` (a parsed TOML document); raise ``ScenarioError`` listing every problem."""
    p = _Problems()
    if not isinstance(data, Mapping):
        raise ScenarioError(source, ["(top level): must be a table"])
    p.unknown_keys("", data, TOP_KEYS)
    name = p.string("name", data.get("name"), required=True)
    duration = p.number("duration_s", data.get("duration_s"), required=True, gt=0)
    seed = p.integer("seed", data.get("seed", 0))
    apps = _parse_apps(p, data.get("apps"))
    app_specs = {a.name: a for a in apps}
    faults: list[Fault] = []
    raw_faults = data.get("faults", [])
    if not isinstance(raw_faults, list) or not all(isinstance(f, Mapping) for f in raw_faults):
        p.add("faults", "must be an array of tables ([[faults]])")
        raw_faults = []
    for i, raw in enumerate(raw_faults):
        fault = _parse_fault(p, f"faults[{i}]", raw, app_specs, duration,
                             seed if isinstance(seed, int) else 0)
        if fault is not None:
            faults.append(fault)
    if p.problems:
        raise ScenarioError(source, p.problems)
    assert isinstance(name, str) and duration is not None and isinstance(seed, int)
    return Scenario(name=name, duration_s=float(duration), apps=tuple(apps),
                    faults=tuple(faults), seed=seed)


def _parse_apps(p: _Problems, raw: Any) -> list[AppSpec]:
    if raw is None:
        p.add("apps", "required: at least one [[apps]] table")
        return []
    if not isinstance(raw, list) or not raw or not all(isinstance(a, Mapping) for a in raw):
        p.add("apps", "must be a non-empty array of tables ([[apps]])")
        return []
    apps: list[AppSpec] = []
    seen: set[str] = set()
    for i, a in enumerate(raw):
        where = f"apps[{i}]"
        before = len(p.problems)
        p.unknown_keys(where, a, APP_KEYS)
        name = p.string(f"{where}.name", a.get("name"), required=True)
        if isinstance(name, str):
            if not _APP_NAME.match(name):
                p.add(f"{where}.name", f"{name!r} is not a Fly app name (lowercase letters, "
                                       "digits and dashes, at most 63)")
            elif name in seen:
                p.add(f"{where}.name", f"{name!r} is already used by another app")
            seen.add(name)
        d = AppSpec(name="x")
        machines = p.integer(f"{where}.machines", a.get("machines", d.machines),
                             ge=1, le=MAX_MACHINES)
        memory = p.integer(f"{where}.memory_mb", a.get("memory_mb", d.memory_mb),
                           ge=256, le=16384)
        if isinstance(memory, int) and memory % 256:
            p.add(f"{where}.memory_mb", f"must be a multiple of 256 (got {memory})")
        releases = a.get("releases", list(d.releases))
        if (not isinstance(releases, list) or not releases
                or not all(r in ("good", "bad") for r in releases)):
            p.add(f"{where}.releases", "must be a non-empty list of \"good\" and \"bad\", "
                                       f"oldest first (got {releases!r})")
            releases = list(d.releases)
        region = p.string(f"{where}.region", a.get("region", d.region))
        if isinstance(region, str) and not _REGION.match(region):
            p.add(f"{where}.region", f"{region!r} is not a Fly region code (three letters)")
        autostop = p.boolean(f"{where}.autostop", a.get("autostop", d.autostop))
        autostart = p.boolean(f"{where}.autostart", a.get("autostart", d.autostart))
        min_running = p.integer(f"{where}.min_machines_running",
                                a.get("min_machines_running", d.min_machines_running), ge=0)
        if isinstance(min_running, int) and isinstance(machines, int) and min_running > machines:
            p.add(f"{where}.min_machines_running",
                  f"must be <= machines ({machines}) (got {min_running})")
        rps = p.number(f"{where}.traffic_rps", a.get("traffic_rps", d.traffic_rps), ge=0,
                       le=1000)
        if len(p.problems) == before:
            apps.append(AppSpec(
                name=str(name), machines=int(machines or 0), memory_mb=int(memory or 0),
                releases=tuple(releases), region=str(region), autostop=bool(autostop),
                autostart=bool(autostart), min_machines_running=int(min_running or 0),
                traffic_rps=float(rps or 0.0)))
    return apps


def _parse_fault(p: _Problems, where: str, raw: Mapping[str, Any],
                 apps: dict[str, AppSpec], duration: float | None, seed: int) -> Fault | None:
    before = len(p.problems)
    kind = raw.get("kind")
    if kind is None:
        p.add(f"{where}.kind", f"required: one of {', '.join(FAULT_KINDS)}")
    elif kind not in FAULT_KINDS:
        p.add(f"{where}.kind", f"{kind!r} is not one of {', '.join(FAULT_KINDS)}")
        kind = None
    for key in raw:
        if key not in FAULT_KEYS:
            p.add(f"{where}.{key}", f"unknown key; allowed here: {', '.join(sorted(FAULT_KEYS))}")
        elif kind is not None and key not in _fault_keys(kind):
            takes = sorted(_fault_keys(kind) - {"kind"})
            if key == "app":
                p.add(f"{where}.app", f"{kind} is platform-wide and takes no app")
            else:
                p.add(f"{where}.{key}", f"not used by kind {kind!r} "
                                        f"({kind} takes: {', '.join(takes)})")
    at_s = p.number(f"{where}.at_s", raw.get("at_s"), required=True, ge=0)
    if isinstance(at_s, float) and duration is not None and at_s > duration:
        p.add(f"{where}.at_s", f"must be <= duration_s ({duration:g}) (got {at_s:g})")
    if kind is None:
        return None
    req = REQUIRED_FIELDS.get(kind)
    if req is not None and req not in raw:
        p.add(f"{where}.{req}", f"required for kind {kind!r}")

    app = raw.get("app")
    if app is not None and kind not in APP_FORBIDDEN:
        if not isinstance(app, str):
            p.add(f"{where}.app", f"must be a string (got {app!r})")
            app = None
        elif app not in apps:
            names = ", ".join(apps) or "none"
            p.add(f"{where}.app", f"no app named {app!r} (apps: {names})")
            app = None
    elif app is None and kind not in APP_FORBIDDEN and kind not in APP_OPTIONAL:
        if len(apps) == 1:
            app = next(iter(apps))
        elif apps:
            p.add(f"{where}.app", f"required for kind {kind!r} when the scenario has more than "
                                  f"one app (apps: {', '.join(apps)})")
    if kind in APP_FORBIDDEN:
        app = None

    until = None
    if "until_s" in raw and "until_s" in KIND_FIELDS[kind]:
        until = p.number(f"{where}.until_s", raw["until_s"])
        if isinstance(until, float) and isinstance(at_s, float) and until <= at_s:
            p.add(f"{where}.until_s", f"must be > at_s ({at_s:g}) (got {until:g})")
    need_mb = rate = p95 = period = None
    if "need_mb" in raw and "need_mb" in KIND_FIELDS[kind]:
        need_mb = p.integer(f"{where}.need_mb", raw["need_mb"], ge=1)
        spec = apps.get(app) if isinstance(app, str) else None
        if isinstance(need_mb, int) and spec is not None and need_mb <= spec.memory_mb:
            p.add(f"{where}.need_mb", f"must be above the app's memory_mb ({spec.memory_mb}), "
                                      f"or nothing is ever killed (got {need_mb})")
    if "rate" in raw and "rate" in KIND_FIELDS[kind]:
        rate = p.number(f"{where}.rate", raw["rate"], gt=0, le=1)
    if "p95_ms" in raw and "p95_ms" in KIND_FIELDS[kind]:
        p95 = p.number(f"{where}.p95_ms", raw["p95_ms"], gt=0)
    if "period_s" in raw and "period_s" in KIND_FIELDS[kind]:
        period = p.number(f"{where}.period_s", raw["period_s"], gt=0)

    machines: Machines = "all"
    if "machines" in raw and "machines" in KIND_FIELDS[kind]:
        machines = _parse_machines(p, f"{where}.machines", raw["machines"],
                                   apps.get(app) if isinstance(app, str) else None,
                                   has_app=app is not None, seed=seed)
    if len(p.problems) > before:
        return None
    assert isinstance(at_s, float)
    return Fault(at_s=at_s, kind=kind, app=app, machines=machines, until_s=until,
                 need_mb=need_mb, rate=rate, p95_ms=p95, period_s=period)


def _fault_keys(kind: str) -> frozenset[str]:
    base = {"at_s", "kind"} if kind in APP_FORBIDDEN else {"at_s", "kind", "app"}
    return frozenset(base) | KIND_FIELDS[kind]


def _parse_machines(p: _Problems, where: str, raw: Any, spec: AppSpec | None, *,
                    has_app: bool, seed: int) -> Machines:
    if raw == "all":
        return "all"
    if isinstance(raw, bool) or not isinstance(raw, (int, list)):
        p.add(where, f"must be \"all\", a count or a list of machine names (got {raw!r})")
        return "all"
    if not has_app:
        p.add(where, "needs an app: name the app these machines belong to")
        return "all"
    if spec is None:  # the app itself was reported
        return "all"
    if isinstance(raw, int):
        if not 1 <= raw <= spec.machines:
            p.add(where, f"must be between 1 and the app's {spec.machines} machines (got {raw})")
        return raw
    known = machine_identities(seed, spec.name, spec.machines)
    names = {n for _, n in known} | {i for i, _ in known}
    if not raw:
        p.add(where, "must not be empty")
    for item in raw:
        if not isinstance(item, str) or item not in names:
            shown = ", ".join(n for _, n in known)
            p.add(where, f"no machine named {item!r} in app {spec.name!r} (machines: {shown})")
    if len(set(raw)) != len(raw):
        p.add(where, "lists a machine twice")
    return tuple(str(x) for x in raw)


class _Problems:
    """Collects one line per problem; the typed readers return ``None`` for a bad value."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.problems.append(f"{where or '(top level)'}: {text}")

    def unknown_keys(self, where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                path = f"{where}.{key}" if where else str(key)
                self.add(path, f"unknown key; allowed here: {', '.join(sorted(allowed))}")

    def _missing(self, where: str, value: Any, required: bool) -> bool:
        if value is None:
            if required:
                self.add(where, "required")
            return True
        return False

    def string(self, where: str, value: Any, *, required: bool = False) -> str | None:
        if self._missing(where, value, required):
            return None
        if not isinstance(value, str) or not value:
            self.add(where, f"must be a non-empty string (got {value!r})")
            return None
        return value

    def boolean(self, where: str, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.add(where, f"must be true or false (got {value!r})")
            return None
        return value

    def integer(self, where: str, value: Any, *, required: bool = False,
                ge: int | None = None, le: int | None = None) -> int | None:
        if self._missing(where, value, required):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(where, f"must be an integer (got {value!r})")
            return None
        return value if self._bounds(where, value, ge=ge, le=le) else None

    def number(self, where: str, value: Any, *, required: bool = False,
               ge: float | None = None, gt: float | None = None,
               le: float | None = None) -> float | None:
        if self._missing(where, value, required):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(where, f"must be a number (got {value!r})")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            self.add(where, f"must be a finite number (got {value!r})")
            return None
        return float(value) if self._bounds(where, value, ge=ge, gt=gt, le=le) else None

    def _bounds(self, where: str, value: float, *, ge: float | None = None,
                gt: float | None = None, le: float | None = None) -> bool:
        if ge is not None and value < ge:
            self.add(where, f"must be >= {ge:g} (got {value:g})")
            return False
        if gt is not None and value <= gt:
            self.add(where, f"must be > {gt:g} (got {value:g})")
            return False
        if le is not None and value > le:
            self.add(where, f"must be <= {le:g} (got {value:g})")
            return False
        return True
