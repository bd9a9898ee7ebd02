"""Command line: run / check-config / demo / simulate / incidents / report. Parsing and printing
only."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hotdash_watch import log_output as logs
from hotdash_watch.config import ConfigError, Settings, load_settings
from hotdash_watch.model.incident import incident_as_dict

__all__ = ["main"]

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hotdash-watch",
        description="Watches Fly.io apps and carries out the incident-response runbook.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", "-c", help="TOML settings file (env HOTDASH_WATCH_* overrides)")
    run.add_argument("--dry-run", action="store_true", help="plan and record, change nothing")

    check = sub.add_parser("check-config", help="validate a settings file; exit 2 when invalid")
    check.add_argument("file")

    demo = sub.add_parser("demo", help="the daemon against the built-in Fly simulator, with a "
                          "scripted incident")
    demo.add_argument("--time-scale", type=float, default=20.0,
                      help="clock speed-up (default 20: 10 minutes pass in 30 s)")
    demo.add_argument("--port", type=int, default=9464, help="port of /metrics and /api")
    demo.add_argument("--exit-when-done", action="store_true",
                      help="stop once the scripted incident has resolved")

    sim = sub.add_parser("simulate", help="run a scenario: the simulator and the daemon together")
    sim.add_argument("scenario", help="scenario TOML file (see config/scenarios/)")
    sim.add_argument("--time-scale", type=float, default=None,
                     help="pace the run for watching: N scenario seconds per real second "
                     "(default: as fast as the work allows, on virtual time)")
    sim.add_argument("--report", help="write the JSON report to this file")
    sim.add_argument("--workdir", help="keep the store, journal, diagnostics and each "
                     "incident's report.md in this folder (default: a temporary one, removed)")
    sim.add_argument("--config", "-c", help="daemon settings; targets are pointed at the simulator")
    sim.add_argument("--dry-run", action="store_true",
                     help="plan and record mitigations, change nothing in the simulator")

    rep = sub.add_parser("report", help="print an incident's post-incident report from the store")
    rep.add_argument("id", help="incident ID, e.g. INC-20261127-001610")
    rep.add_argument("--config", "-c", help="settings file naming the store "
                     "(simulate --workdir writes DIR/records.toml)")
    rep.add_argument("--store", help="store URL or SQLite file (overrides the settings)")

    inc = sub.add_parser("incidents", help="list incidents from the store")
    inc.add_argument("--config", "-c", help="settings file naming the store "
                     "(simulate --workdir writes DIR/records.toml)")
    inc.add_argument("--store", help="store URL or SQLite file (overrides the settings)")
    inc.add_argument("--app")
    inc.add_argument("--open", action="store_true", help="only open incidents")
    inc.add_argument("--limit", type=int, default=20)
    inc.add_argument("--json", action="store_true")
    inc.add_argument("id", nargs="?", help="show one incident with its timeline")
    return p


def _settings(path: str | None, **overrides: object) -> Settings:
    settings = load_settings(path, overrides={k: v for k, v in overrides.items() if v})
    return settings


async def _run(args: argparse.Namespace) -> int:
    from hotdash_watch.daemon import Daemon, run_until_signalled
    from hotdash_watch.records.store import StoreError

    settings = _settings(args.config, dry_run=args.dry_run)
    if not settings.apps:
        raise ConfigError(args.config or "defaults",
                          ["apps: no app to watch; add at least one [[apps]] table "
                           "with name and health_url"])
    logs.configure(settings.log.format, settings.log.level)
    try:
        return await run_until_signalled(Daemon(settings))
    except StoreError as e:
        print(f"hotdash-watch: cannot open the store: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"hotdash-watch: cannot listen on {settings.server.host}:{settings.server.port}: "
              f"{e.strerror}", file=sys.stderr)
        return 1


def _store_url(value: str) -> str:
    """``--store``: a store URL as it is, a file path as an SQLite store."""
    if "://" in value:
        return value
    return f"sqlite+aiosqlite:///{Path(value).resolve()}"


def _missing_sqlite(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist (opening it would create it)."""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix) or ":memory:" in url:
        return None
    path = Path(url[len(prefix):].split("?", 1)[0])
    return None if path.exists() else path


async def _with_store(config: str | None, store_url: str | None,
                      work: Callable[[Any, Settings], Awaitable[int]]) -> int:
    """Open the configured store, run ``work`` on it, close it; a store error is one line.
    A store that does not exist is an error, never created empty."""
    from hotdash_watch.records.store import Store, StoreError

    settings = _settings(config, store_url=_store_url(store_url) if store_url else None)
    missing = _missing_sqlite(settings.store_url)
    if missing is not None:
        print(f"hotdash-watch: no store at {missing} (store_url {settings.store_url}); "
              "name one with --config FILE or --store PATH (simulate --workdir DIR keeps "
              "DIR/simulate.db)", file=sys.stderr)
        return 1
    try:
        store = await Store.open(settings.store_url)
    except StoreError as e:
        print(f"hotdash-watch: cannot open the store: {e}", file=sys.stderr)
        return 1
    try:
        return await work(store, settings)
    except StoreError as e:
        print(f"hotdash-watch: {e}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _incidents(args: argparse.Namespace) -> int:
    return await _with_store(args.config, args.store, partial(_list_incidents, args))


async def _list_incidents(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    if args.id:
        inc = await store.get_incident(args.id)
        if inc is None:
            print(f"hotdash-watch: no incident {args.id!r}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(incident_as_dict(inc), indent=2))
        else:
            d = incident_as_dict(inc)
            print(f"{d['id']}  {d['app']}  {d['severity']} (max {d['max_severity']})  "
                  f"{d['status']}\nopened {d['opened_at']}  resolved {d['resolved_at']}")
            for e in d["timeline"]:
                print(f"  {e['at']}  {e['event']:<16} {e['severity']}  "
                      f"{'; '.join(e['reasons'])}")
        return 0
    found = await (store.open_incidents() if args.open
                   else store.list_incidents(app=args.app, limit=args.limit))
    found = [i for i in found if args.app in (None, i.app)]
    if args.json:
        print(json.dumps([incident_as_dict(i, timeline=False) for i in found], indent=2))
    elif not found:
        print("no incidents")
    for i in [] if args.json else found:
        d = incident_as_dict(i, timeline=False)
        print(f"{d['id']:<24} {d['app']:<28} {d['max_severity']}  {d['status']:<13} "
              f"opened {d['opened_at']}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from hotdash_watch.sim.runner import Kept, simulate, write_report

    if args.time_scale is not None and args.time_scale <= 0:
        print(f"hotdash-watch: --time-scale must be > 0, got {args.time_scale:g}",
              file=sys.stderr)
        return EXIT_CONFIG
    workdir = Path(args.workdir).resolve() if args.workdir else None
    if workdir is not None:
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"hotdash-watch: --workdir {args.workdir}: {e.strerror}", file=sys.stderr)
            return EXIT_CONFIG
        if (workdir / "simulate.db").exists():
            print(f"hotdash-watch: --workdir {args.workdir} already holds a simulation "
                  "(simulate.db); name an empty folder", file=sys.stderr)
            return EXIT_CONFIG
    kept: list[Kept] = []
    report = simulate(args.scenario, time_scale=args.time_scale, config=args.config,
                      dry_run=args.dry_run or None, workdir=workdir,
                      kept=kept if workdir is not None else None,
                      on_clock=lambda clock: logs.configure("auto", "warning", clock=clock))
    if args.report:
        write_report(report, args.report)
    print(render_report(report))
    for k in kept:
        print(f"records kept in {k.workdir}:\n  store    {k.store_url}\n"
              f"  journal  {k.journal}")
        for inc_id, path in k.reports.items():
            print(f"  report   {inc_id}: {path}")
        print(f"  read them: hotdash-watch incidents --config {k.settings_file}\n"
              f"             hotdash-watch report INC-... --config {k.settings_file}")
    return 0


def render_report(report: dict[str, object]) -> str:
    """A short reading of the simulate report for a person."""
    incidents = report["incidents"]
    s = report["summary"]
    assert isinstance(incidents, list) and isinstance(s, dict)
    scale = report["time_scale"]
    pace = "virtual time" if scale is None else f"time scale {scale:g}"
    lines = [f"scenario {report['scenario']} ({pace}): "
             f"{len(incidents)} incident(s), {s['actions']} action(s), "
             f"{len(report['pages'])} page(s)"]  # type: ignore[arg-type]
    for i in incidents:
        at = i["resolved_at_s"]
        resolved = "still open" if at is None else f"resolved {at} s"
        lines.append(f"  {i['id']}  {i['app']}  max {i['max_severity']}  "
                     f"opened {i['opened_at_s']} s, {resolved}")
        for e in i["timeline"]:
            lines.append(f"    {e['at_s']:>7} s  {e['event']:<16} {e['severity']}  "
                         f"{'; '.join(e['reasons'])}")

    actions = report.get("actions") or []
    assert isinstance(actions, list)
    for a in actions:
        lines.append(f"  action {a['at_s']:>7} s  {a['app']}  {a['kind']} {a['target']}: "
                     f"{a['outcome']}  ({a['reason']})")

    def fmt(key: str) -> str:
        v = s.get(key)
        return "-" if v is None else f"{v} s"

    lines.append(f"detected: {'yes' if s['detected'] else 'no'}; after the first fault: "
                 f"detection {fmt('detection_latency_s')}, first action "
                 f"{fmt('time_to_first_action_s')}, recovered {fmt('time_to_recover_s')}, "
                 f"resolved {fmt('time_to_resolve_s')}; max severity {s['max_severity'] or '-'}")
    return "\n".join(lines)


async def _report(args: argparse.Namespace) -> int:
    return await _with_store(args.config, args.store, partial(_print_report, args))


async def _print_report(args: argparse.Namespace, store: Any, settings: Settings) -> int:
    from hotdash_watch.clock import SystemClock
    from hotdash_watch.records.report import IncidentNotFound, report_text

    try:
        text = await report_text(store, args.id, settings=settings,
                                 now=SystemClock().timestamp())
        sys.stdout.write(text)  # exactly the report.md text
        return 0
    except IncidentNotFound:
        print(f"hotdash-watch: no incident {args.id!r} in {store.url}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            s = load_settings(args.file)
            print(f"{args.file}: valid ({len(s.apps)} app(s): "
                  f"{', '.join(a.name for a in s.apps) or 'none'})")
            return 0
        if args.command == "run":
            return asyncio.run(_run(args))
        if args.command == "demo":
            from hotdash_watch.demo import demo

            if args.time_scale <= 0:
                print(f"hotdash-watch: --time-scale must be > 0, got {args.time_scale:g}",
                      file=sys.stderr)
                return EXIT_CONFIG
            return demo(args.time_scale, args.port, args.exit_when_done)
        if args.command == "incidents":
            return asyncio.run(_incidents(args))
        if args.command == "report":
            return asyncio.run(_report(args))
        if args.command == "simulate":
            from hotdash_watch.sim.scenario import ScenarioError

            try:
                return _simulate(args)
            except ScenarioError as e:
                print(str(e), file=sys.stderr)
                return EXIT_CONFIG
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
