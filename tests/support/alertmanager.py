"""A real Alertmanager on a loopback port, started for a test and stopped after it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.support.services import alertmanager_binary, free_port, service_unavailable

CONFIG = """
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


@asynccontextmanager
async def running_alertmanager(workdir: Path, config: str = CONFIG) -> AsyncIterator[str]:
    """Start Alertmanager with ``config`` (default: an empty route); yield its base URL once it
    is ready."""
    binary = alertmanager_binary()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up, tiny
    (workdir / "am.yml").write_text(config)
    (workdir / "data").mkdir(exist_ok=True)
    log = (workdir / "alertmanager.log").open("w")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, returns at once
        [binary, f"--config.file={workdir / 'am.yml'}", f"--storage.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                if proc.poll() is not None:
                    break
                try:
                    async with http.get(f"{url}/-/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                service_unavailable(f"Alertmanager did not become ready on {url}")
        if proc.poll() is not None:
            service_unavailable("Alertmanager exited at start: "
                                + (workdir / "alertmanager.log").read_text()[-500:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
