"""A real Prometheus on a loopback port, started for a test and stopped after it; and promtool.

Both come from Debian's ``prometheus`` package (``/usr/bin/prometheus``, ``/usr/bin/promtool``;
``.ci/run`` installs it). When they are missing the test is skipped locally and fails under
``CI=true`` (``service_unavailable``). The server gets its own port, data directory and
configuration under the test's ``workdir``: it never touches a system-wide Prometheus.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.services import free_port, server_process, service_unavailable

__all__ = ["Prometheus", "prometheus_binary", "promtool", "promtool_binary",
           "running_prometheus"]

JOB = "hotdash-watch"
"""The scrape job's name: the one deploy/prometheus/alerts.yml and prometheus.yml use."""

READY_DEADLINE_S = 20.0


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                  else None)
    if path is None:
        service_unavailable(f"{name} not installed (apt-get install prometheus)")
    return path


def prometheus_binary() -> str:
    """The Prometheus server executable, or skip (fail under CI=true)."""
    return _binary("prometheus")


def promtool_binary() -> str:
    """promtool, or skip (fail under CI=true)."""
    return _binary("promtool")


def promtool(*args: str, stdin: bytes | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` and return the finished process (output as text)."""
    return subprocess.run(
        [promtool_binary(), *args], input=stdin.decode() if stdin is not None else None,
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
    )


def _config(targets: Sequence[str], scrape_interval: str, rule_files: Sequence[Path]) -> str:
    quoted = ", ".join(f'"{t}"' for t in targets)
    rules = "".join(f'  - "{p}"\n' for p in rule_files)
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  scrape_timeout: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{quoted}]\n"
    )


@dataclass
class Prometheus:
    """A running server: ``url`` and small helpers over its HTTP API."""

    url: str
    http: aiohttp.ClientSession
    log_path: Path

    async def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer, else AssertionError."""
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as r:
            body = await r.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    async def targets(self) -> list[dict[str, Any]]:
        return list((await self.api("targets"))["activeTargets"])

    async def wait_until(self, predicate: Any, what: str,
                         deadline_s: float = READY_DEADLINE_S) -> Any:
        """Poll ``await predicate()`` every 0.2 s until it returns a truthy value (returned),
        or fail naming ``what`` after ``deadline_s`` (Prometheus' log tail included)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while True:
            found = await predicate()
            if found:
                return found
            if loop.time() > end:
                raise AssertionError(f"Prometheus: {what} not within {deadline_s} s; log tail:\n"
                                     + self.log_path.read_text()[-1500:])
            await asyncio.sleep(0.2)


@asynccontextmanager
async def running_prometheus(workdir: Path, targets: Sequence[str], *,
                             scrape_interval: str = "1s",
                             rule_files: Sequence[Path] = ()) -> AsyncIterator[Prometheus]:
    """Start Prometheus scraping ``targets`` (``host:port``) as job ``hotdash-watch``; yield it
    once ``/-/ready`` answers. Its data and log live in ``workdir``."""
    binary = prometheus_binary()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up, tiny
    config = workdir / "prometheus.yml"
    config.write_text(_config(targets, scrape_interval, rule_files))
    log_path = workdir / "prometheus.log"
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
            "--log.level=warn"]
    async with (server_process("Prometheus", argv, url, log_path, ready_s=READY_DEADLINE_S),
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http):
        yield Prometheus(url, http, log_path)
