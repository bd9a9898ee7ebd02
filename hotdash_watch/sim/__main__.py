"""``python -m hotdash_watch.sim SCENARIO.toml [--time-scale N] [--port P]``: the simulator alone.

Prints the URLs to point a client (or a real Prometheus, at ``/metrics``) at, the token and the
apps' machines, then narrates the scenario's faults as they fire, end or are cured. It stops at
the end of the scenario (``--keep-running``: on Ctrl-C only).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from hotdash_watch.clock import ScaledClock
from hotdash_watch.sim.app import SimServer
from hotdash_watch.sim.scenario import ScenarioError, load_scenario


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hotdash_watch.sim",
                                description="Run the Fly.io simulator on a scenario file.")
    p.add_argument("scenario", help="scenario TOML file (see config/scenarios/)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="scenario seconds per real second (default 1)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default: any free one)")
    p.add_argument("--token", default="sim-token", help="the API token the simulator accepts")
    p.add_argument("--keep-running", action="store_true",
                   help="keep serving after the scenario's duration (until Ctrl-C)")
    return p


def _say(t: float, text: str) -> None:
    print(f"[sim t={t:7.1f}s] {text}", flush=True)


async def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        print(e.render(), file=sys.stderr)
        return 2
    clock = ScaledClock(args.time_scale)
    server = SimServer(scenario, clock, token=args.token, host=args.host, port=args.port)
    await server.start()
    world = server.world

    def narrate(entry: dict[str, Any]) -> None:
        app = entry["app"] or "all apps"
        _say(entry["at_s"], f"fault {entry['kind']} on {app} {entry['event']}: {entry['how']}")

    world.listeners.append(narrate)
    print(f"scenario      {scenario.name} ({scenario.duration_s:g} s, time scale "
          f"{args.time_scale:g}, seed {scenario.seed})")
    print(f"machines API  {server.machines_url}/v1/apps/<app>/machines")
    print(f"GraphQL       {server.api_url}/graphql")
    print(f"logs          {server.api_url}/api/v1/apps/<app>/logs")
    print(f"metrics       {server.metrics_url}")
    print(f"token         {server.token}  (Authorization: Bearer {server.token})")
    for name, app in world.apps.items():
        print(f"app {name}: {server.health_url(name)}")
        for m in app.machines:
            print(f"    {m.id}  {m.name:<28} {m.state}")
    for fault in sorted(scenario.faults, key=lambda f: f.at_s):
        print(f"  planned: {fault.kind} at {fault.at_s:g} s"
              + (f" on {fault.app}" if fault.app else ""))
    sys.stdout.flush()
    try:
        if args.keep_running:
            while True:
                await clock.sleep(3600)
        await clock.sleep(scenario.duration_s)
        world.step_to()
        healthy = ", ".join(f"{a}={'healthy' if world.healthy(a) else 'unhealthy'}"
                            for a in world.apps)
        _say(world.now, f"scenario over: {healthy}; recovered_at_s="
                        f"{world.recovered_at_s}; {len(world.mutations)} mutation(s)")
    finally:
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.time_scale <= 0:
        print("--time-scale must be > 0", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
