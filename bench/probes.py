"""Throughput and CPU cost of ``HttpProbe`` against a local target.

The target is a minimal aiohttp server answering ``200 ok`` on 127.0.0.1, run in a separate
process so its CPU is not counted against the prober. The prober runs a fixed number of probes at
concurrency 1, 10 and 100 through one shared ``ClientSession`` (``TCPConnector(limit=c)``) and
reports probes/s (wall clock) and CPU-seconds of the probing process per 1,000 probes, as the
median of a few repetitions.

    .venv/bin/python bench/probes.py [--profile]

``--profile`` runs the concurrency-100 round under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from hotdash_watch.clock import SystemClock
from hotdash_watch.probes.http import HttpProbe

HOST = "127.0.0.1"  # loopback only
ROUNDS = [(1, 2_000), (10, 5_000), (100, 10_000)]  # (concurrency, probes)
TARGET_RATE = 2_000.0  # probes/s on one core at concurrency 100
WARMUP = 300
REPEATS = 3  # each round is run this many times; the median (by wall time) is reported


# --- the target, in its own process -------------------------------------------------------------


def _serve(conn: Connection) -> None:
    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    async def main() -> None:
        server = web.Server(handler, access_log=None)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, HOST, 0, backlog=1024)
        conn.send(srv.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)  # any message (or EOF) means stop
        srv.close()
        await server.shutdown(0.1)

    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(main())


# --- the prober ---------------------------------------------------------------------------------


async def _round(url: str, concurrency: int, n: int) -> tuple[float, float, int]:
    """Run ``n`` probes with ``concurrency`` workers; return (wall s, cpu s, failures)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        probe = HttpProbe(
            "bench", "ok", url, session=session, clock=SystemClock(), expect_body="ok"
        )
        failures = 0

        async def worker(count: int) -> None:
            nonlocal failures
            for _ in range(count):
                if not (await probe.run()).ok:
                    failures += 1

        # warm the pool so connection set-up is not part of the measurement
        await asyncio.gather(*(worker(WARMUP // concurrency or 1) for _ in range(concurrency)))
        failures = 0
        share, extra = divmod(n, concurrency)
        counts = [share + (1 if i < extra else 0) for i in range(concurrency)]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(c) for c in counts))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="cProfile the c=100 round")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    target = ctx.Process(target=_serve, args=(child,), daemon=True)
    target.start()
    try:
        if not parent.poll(20):
            print("target did not start", file=sys.stderr)
            return 2
        port = parent.recv()
        url = f"http://{HOST}:{port}/ok"

        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            asyncio.run(_round(url, 100, 10_000))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            return 0

        print(f"HttpProbe throughput against {url} (target in a separate process)")
        print(f"{'concurrency':>11} {'probes':>7} {'wall s':>7} {'probes/s':>9} "
              f"{'CPU s':>6} {'CPU s/1k':>9} {'fails':>5}")  # fmt: skip
        results = {}
        for concurrency, n in ROUNDS:
            runs = sorted(asyncio.run(_round(url, concurrency, n)) for _ in range(REPEATS))
            wall, cpu, failures = runs[len(runs) // 2]
            rate = n / wall
            results[concurrency] = rate
            print(f"{concurrency:>11} {n:>7} {wall:>7.2f} {rate:>9.0f} "
                  f"{cpu:>6.2f} {cpu / n * 1000:>9.3f} {failures:>5}")  # fmt: skip
        rate = results[100]
        verdict = "met" if rate >= TARGET_RATE else "MISSED"
        print(f"target: >= {TARGET_RATE:,.0f} probes/s on one core at concurrency 100 -> "
              f"{rate:,.0f} probes/s: {verdict}")  # fmt: skip
        return 0 if rate >= TARGET_RATE else 1
    finally:
        parent.send("stop")
        target.join(5)
        if target.is_alive():
            target.terminate()
            target.join()


if __name__ == "__main__":
    sys.exit(main())
