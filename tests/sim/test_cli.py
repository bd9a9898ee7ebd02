"""``python -m hotdash_watch.sim``: runs a scenario alone, prints where to connect, narrates."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotdash_watch.sim.__main__ import main


class TestSimCli:
    """The simulator's own command line."""

    def test_runs_a_scenario_and_narrates(self, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]):
        """It prints the URLs, the token and the machines, then each fault as it fires."""
        path = tmp_path / "tiny.toml"
        path.write_text('name = "tiny"\nduration_s = 60\n[[apps]]\nname = "hotdash-api"\n'
                        '[[faults]]\nat_s = 10\nkind = "errors"\nrate = 0.5\nuntil_s = 20\n')
        assert main([str(path), "--time-scale", "3000"]) == 0
        out = capsys.readouterr().out
        assert "/v1/apps/<app>/machines" in out and "/metrics" in out and "sim-token" in out
        assert "/apps/hotdash-api/health" in out
        assert "[sim t=   10.0s] fault errors on hotdash-api fired" in out
        assert "[sim t=   20.0s] fault errors on hotdash-api ended: until_s reached" in out
        assert "scenario over" in out

    def test_invalid_scenario(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """An invalid file prints its problems and exits 2."""
        path = tmp_path / "bad.toml"
        path.write_text('name = "bad"\nduration_s = -1\n')
        assert main([str(path)]) == 2
        err = capsys.readouterr().err
        assert "duration_s: must be > 0" in err and "apps: required" in err
