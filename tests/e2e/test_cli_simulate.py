"""``hotdash-watch simulate`` as a user runs it, and reading its records afterwards with
``incidents`` and ``report`` (``--workdir``, ``records.toml``, ``--store``)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from hotdash_watch.cli import main

SCENARIO = """
name = "tiny-outage"
duration_s = 300
[[apps]]
name = "hotdash-api"
machines = 2
autostart = false
[[faults]]
at_s = 60
kind = "crash"
app = "hotdash-api"
machines = "all"
"""


@pytest.fixture(autouse=True)
def _own_logging() -> Iterator[None]:
    """``simulate`` configures the process's logging (to the captured stream, on its virtual
    clock): put back what the other tests log through when it is done."""
    old, handlers, level = structlog.get_config(), logging.root.handlers[:], logging.root.level
    try:
        yield
    finally:
        structlog.configure(**old)
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SCENARIO)
    return path


class TestWorkdir:
    def test_keeps_records_that_report_and_incidents_read(self, tmp_path: Path, scenario: Path,
                                                          capsys: pytest.CaptureFixture[str]):
        work = tmp_path / "run"
        out_json = tmp_path / "report.json"
        assert main(["simulate", str(scenario), "--workdir", str(work),
                     "--report", str(out_json)]) == 0
        out = capsys.readouterr().out
        report = json.loads(out_json.read_text())
        [inc] = report["incidents"]
        assert report["time_scale"] is None and "(virtual time)" in out
        assert f"records kept in {work}" in out
        assert f"hotdash-watch report INC-... --config {work / 'records.toml'}" in out
        assert (work / "simulate.db").is_file()
        assert (work / "feedback" / "reliability.md").read_text().count(inc["id"]) >= 1
        [printed] = re.findall(rf"report   {inc['id']}: (\S+)", out)
        report_md = Path(printed).read_text()
        assert inc["id"] in report_md and "## Timeline" in report_md

        assert main(["incidents", "--config", str(work / "records.toml")]) == 0
        listed = capsys.readouterr().out
        assert inc["id"] in listed and "hotdash-api" in listed

        assert main(["report", inc["id"], "--config", str(work / "records.toml")]) == 0
        assert inc["id"] in capsys.readouterr().out

        assert main(["report", inc["id"], "--store", str(work / "simulate.db")]) == 0
        assert inc["id"] in capsys.readouterr().out

    def test_refuses_a_folder_that_holds_a_simulation(self, tmp_path: Path, scenario: Path,
                                                      capsys: pytest.CaptureFixture[str]):
        work = tmp_path / "run"
        work.mkdir()
        (work / "simulate.db").write_bytes(b"")
        assert main(["simulate", str(scenario), "--workdir", str(work)]) == 2
        assert "already holds a simulation" in capsys.readouterr().err

    def test_without_workdir_nothing_is_left(self, tmp_path: Path, scenario: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]):
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir()
        import tempfile

        monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
        monkeypatch.chdir(tmp_path)
        assert main(["simulate", str(scenario)]) == 0
        assert "records kept" not in capsys.readouterr().out
        assert list((tmp_path / "tmp").iterdir()) == []
        assert not (tmp_path / "var").exists()

    def test_time_scale_must_be_positive(self, scenario: Path,
                                         capsys: pytest.CaptureFixture[str]):
        assert main(["simulate", str(scenario), "--time-scale", "0"]) == 2
        assert "--time-scale must be > 0, got 0" in capsys.readouterr().err


class TestMissingStore:
    @pytest.mark.parametrize("argv", [["incidents"], ["report", "INC-20260105-090100"],
                                      ["incidents", "INC-20260105-090100"]])
    def test_is_an_error_and_never_created(self, argv: list[str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]):
        missing = tmp_path / "nowhere" / "watch.db"
        assert main([*argv, "--store", str(missing)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"no store at {missing}" in err and "--store" in err
        assert not missing.exists() and not missing.parent.exists()

    def test_default_store_is_not_created_either(self, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]):
        monkeypatch.chdir(tmp_path)
        assert main(["incidents"]) == 1
        assert "no store at" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []
