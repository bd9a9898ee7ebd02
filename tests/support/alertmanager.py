"""A real Alertmanager on a loopback port, started for a test and stopped after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.services import alertmanager_binary, free_port, server_process

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
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={workdir / 'am.yml'}", f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    async with server_process("Alertmanager", argv, url, workdir / "alertmanager.log"):
        yield url
