"""Outbox throughput and page latency against a local receiver in a separate process.

Prints:

* pages/s persisted: ``Outbox.page()`` calls per second (each reads the active silences and
  commits one transaction writing one row per channel), the delivery loop stopped;
* requests/s delivered: the loop, started, draining that burst to the receiver (each row is
  a POST and a committed ``mark_page``; channels in parallel, each in order);
* page latency: from the ``page()`` call to the receiver having the request (wall clock,
  receiver in its own process), for pages sent one at a time: p50, p95, max.
  Target: the first page <= 1 s after the incident opens.

    python bench/outbox.py [--burst 1000] [--spaced 100] [--channels 1] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# -- the receiver (its own process) -------------------------------------------------------------

def serve(port: int) -> None:
    from aiohttp import web

    seen: list[tuple[str, str, float]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, body["key"], time.time()))
        return web.json_response({"status": "ok"})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(seen)

    async def reset(_: web.Request) -> web.Response:
        seen.clear()
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_post("/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the bench ----------------------------------------------------------------------------------

async def _wait_ready(http: Any, base: str) -> None:
    import aiohttp

    for _ in range(200):
        try:
            async with http.get(f"{base}/stats") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the receiver did not start")


async def _received(http: Any, base: str) -> list[tuple[str, str, float]]:
    async with http.get(f"{base}/stats") as r:
        return [tuple(x) for x in await r.json()]


async def _until(http: Any, base: str, count: int, limit_s: float = 120.0) -> list[Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = await _received(http, base)
        if len(got) >= count:
            return got
        await asyncio.sleep(0.05)
    raise SystemExit(f"only {len(await _received(http, base))} of {count} pages arrived")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace, base: str) -> int:
    if args.store:
        return await _bench(args, base, args.store)
    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp:  # removed afterwards
        return await _bench(args, base, f"sqlite+aiosqlite:///{tmp}/b.db")


async def _bench(args: argparse.Namespace, base: str, url: str) -> int:
    import aiohttp
    import structlog
    from prometheus_client import CollectorRegistry

    from hotdash_watch.clock import SystemClock
    from hotdash_watch.config import load_settings
    from hotdash_watch.model.findings import Finding, Reason
    from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
    from hotdash_watch.model.severity import Severity
    from hotdash_watch.notify import build_notifiers
    from hotdash_watch.notify.base import PageEvent
    from hotdash_watch.notify.outbox import Outbox
    from hotdash_watch.notify.templates import render
    from hotdash_watch.records.store import Store

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    channels = [{"name": f"c{i}", "kind": "webhook", "url": f"{base}/c{i}",
                 "hmac_secret": "bench-key"} for i in range(args.channels)]
    settings = load_settings(None, overrides={"notify": {"channels": channels},
                                              "store_url": "sqlite+aiosqlite:///:memory:"})
    clock = SystemClock()
    run = f"bench-{time.time_ns()}"  # keys of its own: an old store's rows are not repeats
    store = await Store.open(url)
    now = clock.timestamp()
    opened = TimelineEntry(at=now, event=Event.OPENED, state=State.INVESTIGATING,
                           severity=Severity.SEV1, notes=("all machines down",))
    inc = Incident(id="INC-20260301-120000", app="hotdash-llamaindex-mcp",
                   state=State.INVESTIGATING, severity=Severity.SEV1,
                   max_severity=Severity.SEV1, opened_at=now, updated_at=now,
                   severity_since=now, findings=(
                       Finding(Reason.ERROR_RATE_CRITICAL, Severity.SEV1,
                               "error rate 62 % over 60 s"),
                       Finding(Reason.ALL_MACHINES_DOWN, Severity.SEV1,
                               "all machines down: 0 of 3 started")),
                   evidence={"error_ratio": 0.62, "machines": {"total": 3, "down": 3}},
                   timeline=(opened,))
    print(f"outbox bench: store {store.backend}, {args.channels} webhook channel(s), "
          f"receiver in its own process")
    async with aiohttp.ClientSession() as http:
        outbox = Outbox(store, build_notifiers(settings), http, clock, CollectorRegistry(),
                        settings)
        loop: asyncio.Task[None] | None = None
        try:
            # Burst, persisted: page() as fast as it returns, with the loop stopped.
            n = args.burst
            t0 = time.time()
            for i in range(n):
                await outbox.page(render(inc, PageEvent.UPDATE, settings=settings,
                                         now=clock.timestamp(), key=f"{run}:burst:{i}"))
            t_persisted = time.time()
            # Burst, delivered: start the loop and let it drain the outbox.
            t1 = time.time()
            loop = asyncio.create_task(outbox.run())
            got = await _until(http, base, n * args.channels)
            t_last = max(t for _, _, t in got)
            keys = [k for p, k, _ in got if p == "/c0"]
            in_order = keys == [f"{run}:burst:{i}" for i in range(n)]
            print(f"burst of {n} pages:")
            print(f"  persisted  {n / (t_persisted - t0):8.0f} pages/s "
                  f"({n * args.channels} rows in {t_persisted - t0:.2f} s, loop stopped)")
            print(f"  delivered  {len(got) / (t_last - t1):8.0f} requests/s "
                  f"(drained {len(got)} in {t_last - t1:.2f} s; each (key, channel) once: "
                  f"{len({(p, k) for p, k, _ in got}) == len(got)}; in order: {in_order})")
            await outbox.wait_idle()
            async with http.post(f"{base}/reset"):
                pass
            # Spaced: one page at a time, latency from page() to the receiver.
            sent_at: dict[str, float] = {}
            for i in range(args.spaced):
                key = f"{run}:spaced:{i}"
                sent_at[key] = time.time()
                await outbox.page(render(inc, PageEvent.UPDATE, settings=settings,
                                         now=clock.timestamp(), key=key))
                await _until(http, base, (i + 1) * args.channels, limit_s=10)
                await asyncio.sleep(args.gap_ms / 1000)
            got = await _received(http, base)
            delays = [(t - sent_at[k]) * 1000 for _, k, t in got]
            print(f"{args.spaced} spaced pages, page() -> receiver ({len(delays)} requests):")
            print(f"  p50 {statistics.median(delays):6.1f} ms   p95 {_pct(delays, 0.95):6.1f} ms"
                  f"   max {max(delays):6.1f} ms   (target <= 1000 ms)")
            ok = max(delays) <= 1000 and in_order
        finally:
            if loop is not None:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
            await store.close()
    print("verdict:", "OK" if ok else "MISSED target")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--spaced", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--store", help="store URL (default: a SQLite file in a temp dir)")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        async def go() -> int:
            import aiohttp
            async with aiohttp.ClientSession() as http:
                await _wait_ready(http, f"http://127.0.0.1:{port}")
            return await bench(args, f"http://127.0.0.1:{port}")
        return asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
