"""Idle footprint of `hotdash-watch run` watching 20 targets at a 15 s interval.

Starts a local target (its own process), then the daemon as a user would, lets it warm up, and
measures the daemon's RSS and CPU use from /proc over a measuring period. Prints the figures
next to the targets (RSS <= 80 MB, CPU <= 1 % of a core). Loopback only.

    python bench/footprint.py [--apps 20] [--interval 15] [--warmup 20] [--measure 60]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _serve(port_q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import asyncio

    from aiohttp import web

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{name}/health", lambda r: web.Response(text="ok"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_q.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=20)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument("--measure", type=float, default=60.0)
    args = ap.parse_args()

    q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    target = multiprocessing.Process(target=_serve, args=(q,), daemon=True)
    target.start()
    port = q.get(timeout=10)
    try:
        with tempfile.TemporaryDirectory(prefix="hotdash-footprint-") as tmp:
            rss, peak, cpu = _measure(args, port, Path(tmp))
    finally:
        target.terminate()

    print(f"idle footprint, {args.apps} targets every {args.interval:g} s, "
          f"measured over {args.measure:g} s after {args.warmup:g} s warm-up")
    print(f"  RSS  {rss:6.1f} MB (peak {peak:.1f} MB)   target <= 80 MB  "
          f"{'met' if peak <= 80 else 'MISSED'}")
    print(f"  CPU  {cpu:6.2f} % of a core              target <= 1 %   "
          f"{'met' if cpu <= 1 else 'MISSED'}")
    return 0


def _measure(args: argparse.Namespace, port: int, work: Path) -> tuple[float, float, float]:
    """Run the daemon on a config in ``work``: (RSS MB, peak RSS MB, CPU % of a core). The
    daemon has exited when this returns, so ``work`` can be removed."""
    cfg = work / "watch.toml"
    lines = [f'store_url = "sqlite+aiosqlite:///{work / "w.db"}"',
             '[server]\nhost = "127.0.0.1"\nport = 0',
             f"[probes]\ninterval_s = {args.interval}",
             '[log]\nformat = "json"\nlevel = "warning"']
    for i in range(args.apps):
        lines.append(f'[[apps]]\nname = "app-{i:02d}"\n'
                     f'health_url = "http://127.0.0.1:{port}/app-{i:02d}/health"')
    cfg.write_text("\n".join(lines) + "\n")

    proc = subprocess.Popen([sys.executable, "-m", "hotdash_watch", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(args.warmup)
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < args.measure:
            time.sleep(1)
            peak = max(peak, _rss_mb(proc.pid))
        cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        rss = _rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # it must be gone before its folder is removed
            proc.wait()
            raise
    return rss, peak, cpu


if __name__ == "__main__":
    sys.exit(main())
