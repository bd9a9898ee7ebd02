"""Outside services the contract tests need, and the one rule for when one is missing.

The rule (``service_unavailable``): locally a missing service SKIPS the tests that need it, with a
one-line reason; in CI (environment variable ``CI`` equal to ``true``) it FAILS them, so that CI
can never pass by skipping. Every service check (PostgreSQL here; Prometheus and Alertmanager
later) ends in ``service_unavailable`` when the service cannot be used.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import subprocess
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import asyncpg
import pytest

__all__ = ["POSTGRES_URL", "require_postgres_url", "server_process", "service_unavailable"]

POSTGRES_URL = os.environ.get(
    "HOTDASH_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
"""The test database (trust auth); ``HOTDASH_TEST_POSTGRES_URL`` points the tests elsewhere."""

CONNECT_TIMEOUT_S = 3.0


def service_unavailable(reason: str) -> NoReturn:
    """Skip the current test with ``reason``, or fail it when running in CI (``CI=true``)."""
    reason = " ".join(reason.split())  # one line
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _postgres_error(url: str) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or ``None`` when a connection succeeds."""

    async def connect() -> None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        await conn.close()

    # A thread with its own event loop: callable from sync code and from async fixtures alike.
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(asyncio.run, connect()).result()
        except Exception as e:
            return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return None


@functools.cache
def _worker_database(url: str, worker: str) -> str:
    """A database of its own for the pytest-xdist ``worker`` beside the one ``url`` names
    (created once if missing), so that parallel workers never drop each other's tables."""
    base = urlsplit(url)
    name = f"{base.path.lstrip('/') or 'test'}_{worker}"

    async def create() -> None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass  # another process created it meanwhile
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, create()).result()
    return base._replace(path=f"/{name}").geturl()


def require_postgres_url(url: str = POSTGRES_URL) -> str:
    """``url`` if PostgreSQL answers there; otherwise skip the test (fail it under ``CI=true``).
    Under pytest-xdist each worker gets a database of its own beside ``url``'s."""
    error = _postgres_error(url)
    if error is not None:
        where = urlsplit(url)
        service_unavailable(
            f"PostgreSQL not reachable at {where.hostname}:{where.port or 5432}: {error}"
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and re.fullmatch(r"gw\d+", worker):
        return _worker_database(url, worker)
    return url


# --- Alertmanager -------------------------------------------------------------------------------

ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> str:
    """The Alertmanager executable (Debian: prometheus-alertmanager), or skip/fail."""
    import shutil

    for name in ALERTMANAGER_BINARIES:
        path = shutil.which(name)
        if path:
            return path
    service_unavailable("Alertmanager not installed (apt-get install prometheus-alertmanager)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def server_process(name: str, argv: Sequence[str], url: str, log_path: Path, *,
                         ready_s: float = 10.0) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run a Prometheus-family server (``argv``) logging to ``log_path``; yield once
    ``url/-/ready`` answers 200. A server that exits at start or is not ready within
    ``ready_s`` is ``service_unavailable`` (its log tail in the reason). Always stopped after."""
    import aiohttp

    log = log_path.open("w")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, returns at once
        list(argv), stdout=log, stderr=subprocess.STDOUT)
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + ready_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while proc.poll() is None:
                try:
                    async with http.get(f"{url}/-/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if loop.time() > end:
                    service_unavailable(f"{name} did not become ready on {url}")
                await asyncio.sleep(0.1)
        if proc.poll() is not None:
            tail = log_path.read_text()[-500:]  # noqa: ASYNC240 - a failing start, tiny
            service_unavailable(f"{name} exited at start: {tail}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
