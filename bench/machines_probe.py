"""CPU cost of one machines poll: 10 apps x 20 machines through the real client and probe.

A local aiohttp server (its own process) answers the Machines API list call with 20 machines
per app, built from tests/fixtures/machines-list.json. The bench runs MachinesProbe.run() for
10 apps and prints the CPU seconds the polling process spent per poll of all 10 apps.
Target: <= 50 ms of CPU per poll. Loopback only.
"""

from __future__ import annotations

import asyncio
import copy
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
APPS = [f"app-{i:02d}" for i in range(10)]


def _machines() -> list[dict]:
    base = json.loads((FIXTURE / "machines-list.json").read_text())
    out = []
    for i in range(20):
        m = copy.deepcopy(base[i % len(base)])
        m["id"] = f"{i:014x}"
        out.append(m)
    return out


def _serve(q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from aiohttp import web

    body = json.dumps(_machines()).encode()

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/apps/{app}/machines",
                           lambda r: web.Response(body=body, content_type="application/json"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        q.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _bench(port: int, rounds: int) -> list[float]:
    import aiohttp
    from pydantic import SecretStr

    from hotdash_watch.clock import SystemClock
    from hotdash_watch.fly import FlyClient
    from hotdash_watch.probes.machines import MachinesProbe

    clock = SystemClock()
    async with aiohttp.ClientSession() as session:
        client = FlyClient(session, clock, token=SecretStr("bench-token"),
                           machines_url=f"http://127.0.0.1:{port}")
        probes = [MachinesProbe(a, client, clock, span_s=900) for a in APPS]
        await asyncio.gather(*(p.run() for p in probes))  # warm-up
        costs = []
        for _ in range(rounds):
            cpu0 = time.process_time()
            reports = await asyncio.gather(*(p.run() for p in probes))
            costs.append(time.process_time() - cpu0)
            assert all(r.facts is not None and r.facts.total == 20 for r in reports)
        return costs


def main() -> int:
    q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=_serve, args=(q,), daemon=True)
    server.start()
    port = q.get(timeout=10)
    try:
        costs = asyncio.run(_bench(port, 30))
    finally:
        server.terminate()
    med = statistics.median(costs) * 1000
    print("machines poll, 10 apps x 20 machines (HTTP + parse + facts), 30 rounds")
    print(f"  CPU per poll: median {med:.1f} ms, max {max(costs) * 1000:.1f} ms   "
          f"target <= 50 ms  {'met' if med <= 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
