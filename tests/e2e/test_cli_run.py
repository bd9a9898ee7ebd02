"""`hotdash-watch run` as a user starts it: a real process, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support.target import LocalService


async def _start(config: Path, tmp_path: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "HOTDASH_WATCH_LOG__FORMAT": "json"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotdash_watch", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=tmp_path,
    )


async def _wait_for(proc: asyncio.subprocess.Process, needle: str) -> list[str]:
    """Read the process's output (the test's loop keeps serving meanwhile) until ``needle``."""
    lines: list[str] = []
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while line := (await proc.stdout.readline()).decode():
            lines.append(line)
            if needle in line:
                return lines
    raise AssertionError(f"{needle!r} not printed; got:\n{''.join(lines)}")


class TestRun:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    async def test_signal_drains_and_exits_zero(self, tmp_path: Path, service: LocalService,
                                                sig: signal.Signals):
        """On SIGTERM or SIGINT the daemon stops its probes, closes the store and exits 0
        within a few seconds."""
        config = tmp_path / "watch.toml"
        config.write_text(
            f'store_url = "sqlite+aiosqlite:///{tmp_path / "w.db"}"\n'
            '[server]\nhost = "127.0.0.1"\nport = 0\n'
            '[probes]\ninterval_s = 0.2\njitter_s = 0\n'
            f'[[apps]]\nname = "svc"\nhealth_url = "{service.url}"\n'
        )
        proc = await _start(config, tmp_path)
        try:
            await _wait_for(proc, "probe_ok")  # a probe ran: the service was reached
            proc.send_signal(sig)
            t0 = time.monotonic()
            async with asyncio.timeout(15):
                raw, _ = await proc.communicate()
            out = raw.decode()
            assert proc.returncode == 0, out
            assert time.monotonic() - t0 < 10
            assert "watcher_stopped" in out
            assert "Traceback" not in out
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def test_unreachable_store_is_a_clear_error(self, tmp_path: Path):
        """A store that cannot be reached stops start-up with a one-line error, no traceback,
        and no password in the message."""
        config = tmp_path / "watch.toml"
        config.write_text(
            'store_url = "postgresql+asyncpg://watch:hunter2@127.0.0.1:1/watch"\n'
            '[[apps]]\nname = "svc"\nhealth_url = "http://127.0.0.1:9/health"\n'
        )
        proc = await _start(config, tmp_path)
        async with asyncio.timeout(30):
            raw, _ = await proc.communicate()
        out = raw.decode()
        assert proc.returncode == 1
        assert "cannot open the store" in out
        assert "hunter2" not in out and "Traceback" not in out
