"""Phase 3 diagnostics against the real Fly simulator through the real FlyClient.

Timeline of the simulated world: three machines of hotdash-api, the first OOM-killed from 5 s
on (it needs 1024 MB, has 512); the capture runs at 60 s. Under ``fly_api_down`` every Fly call
fails or hangs, and the capture still ends within its own timeout: that test runs on virtual
time (``@on_virtual_time``), so the bound is read on the clock, exactly, whatever the machine's
speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from hotdash_watch.clock import ManualClock
from hotdash_watch.config import Settings
from hotdash_watch.fly import FlyClient
from hotdash_watch.records.diagnostics import (
    NO_FLY,
    artifact_names,
    bound_text,
    capture,
    incident_dir_name,
)
from hotdash_watch.sim import Fault
from hotdash_watch.virtual_time import VirtualClock
from tests.records.conftest import APP, StartSim, fly_client, run_story, running_sim
from tests.support.virtual import on_virtual_time

FLY_FILES = ["app-status.txt", "machines.txt", "machines-detail.txt", f"logs-{APP}.txt",
             "releases.txt"]


def read(directory: Path, name: str) -> str:
    return (directory / name).read_text(encoding="utf-8")


class TestIncidentDir:
    """The folder is named after the incident ID's timestamp, the incident's opening in UTC."""

    @pytest.mark.parametrize(("incident_id", "name"), [
        ("INC-20260301-120005", "incident-20260301-120005"),
        ("INC-20260301-120005-2", "incident-20260301-120005-2"),
        ("custom-id", "incident-20260301-120005"),
    ])
    def test_name(self, settings: Settings, incident_id: str, name: str) -> None:
        """The ID's stamp (with its -N suffix) names the folder; other IDs use opened_at."""
        inc = dataclasses.replace(run_story(settings).incident, id=incident_id)
        assert incident_dir_name(inc) == name

    def test_matches_opened_at(self, settings: Settings) -> None:
        """For a state-machine incident, folder stamp and opening time agree."""
        inc = run_story(settings).incident
        stamp = datetime.fromtimestamp(inc.opened_at, UTC).strftime("%Y%m%d-%H%M%S")
        assert incident_dir_name(inc) == f"incident-{stamp}"


class TestBoundText:
    """bound_text keeps a file under its byte limit and says when it cut."""

    def test_short_text_unchanged(self) -> None:
        """Text within the limit is returned as is."""
        assert bound_text("a\nb\n", 10) == "a\nb\n"

    @pytest.mark.parametrize("max_bytes", [120, 300, 1000])
    def test_cut_at_a_line_end_with_marker(self, max_bytes: int) -> None:
        """Long text is cut at a line end, ends with the marker, and fits the limit."""
        text = "".join(f"line {i} é€\n" for i in range(500))
        out = bound_text(text, max_bytes)
        assert len(out.encode("utf-8")) <= max_bytes
        assert out.endswith(f"more than the limit of {max_bytes} bytes\n")
        kept = out.splitlines()[:-1]
        assert all(line.startswith("line ") and line.endswith("é€") for line in kept)


class TestCapture:
    """capture writes every Phase 3 file, concurrently bounded, whatever Fly does."""

    async def test_all_files_from_the_simulator(
        self, tmp_path: Path, settings: Settings, session: aiohttp.ClientSession,
        start_sim: StartSim,
    ) -> None:
        """Against a working Fly every file is written with the simulator's facts."""
        clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        sim = await start_sim(clock)
        clock.advance(60)
        sim.world.step_to()
        inc = run_story(settings).incident
        directory = await capture(fly_client(session, clock, sim), [APP], inc, tmp_path,
                                  clock=clock)
        assert directory == tmp_path / "incident-20260301-120005"
        assert sorted(p.name for p in directory.iterdir()) == sorted(artifact_names([APP]))
        ids = [m.id for m in sim.world.app(APP).machines]

        status = read(directory, "app-status.txt")
        assert f"$ fly status -a {APP}" in status
        assert "Machines = 3 total: 3 started" in status
        assert "Release  = v2 complete" in status
        assert all(i in status for i in ids)

        listing = read(directory, "machines.txt")
        assert f"3 machines have been retrieved from app {APP}." in listing
        assert all(i in listing for i in ids)

        detail = read(directory, "machines-detail.txt")
        assert all(f"$ fly machine status {i} -a {APP}" in detail for i in ids)
        assert "exit_code=137,oom_killed=true,requested_stop=false" in detail
        assert "Checks [" in detail and "Event Logs" in detail

        logs = read(directory, f"logs-{APP}.txt").splitlines()
        assert logs[1:3] == ["", f"$ fly logs -a {APP} --no-tail"]
        assert len(logs) > 5 and "[info]" in logs[-1]

        releases = read(directory, "releases.txt")
        assert "VERSION" in releases and "v2" in releases and "v1" in releases

        evidence = json.loads(read(directory, "evidence.json"))
        assert evidence["incident"]["id"] == inc.id
        assert evidence["incident"]["reasons"] == list(inc.reasons)
        assert "capture failed" not in status + listing + detail + releases

    @pytest.mark.parametrize(("client_bounds", "cut_by_the_capture"), [
        # The client gives up first: 2 tries of at most 2 s each, 0.1 to 0.2 s apart.
        pytest.param({"timeout_s": 2.0, "attempts": 2, "deadline_s": 4.0}, False,
                     id="client-gives-up-first"),
        # The client would go on for minutes: the capture's own deadline ends every call.
        pytest.param({"timeout_s": 60.0, "attempts": 50, "deadline_s": 120.0}, True,
                     id="capture-deadline-first"),
    ])
    @on_virtual_time
    async def test_fly_api_down_is_noted_and_bounded(
        self, tmp_path: Path, settings: Settings, client_bounds: dict[str, float],
        cut_by_the_capture: bool,
    ) -> None:
        """During fly_api_down each Fly file says what failed and the capture ends in time:
        within its timeout of clock seconds, exactly (writing the files takes no clock time),
        and at that timeout when the client's own bounds are longer."""
        timeout_s = 10.0
        clock = VirtualClock.running(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        async with running_sim(clock) as sim, aiohttp.ClientSession() as session:
            sim.world.inject(Fault(at_s=0, kind="fly_api_down", until_s=sim.world.now + 3600))
            client = fly_client(session, clock, sim, **client_bounds)
            inc = run_story(settings).incident
            began = clock.monotonic()
            directory = await capture(client, [APP], inc, tmp_path, clock=clock,
                                      timeout_s=timeout_s)
            took = clock.monotonic() - began
        if cut_by_the_capture:
            assert took == pytest.approx(timeout_s, abs=1e-9)
        else:  # two tries, each cut at the client's timeout at the latest, and one backoff
            assert 0.0 < took <= 2 * client_bounds["timeout_s"] + 0.2 < timeout_s
        for name in FLY_FILES:
            text = read(directory, name)
            assert "capture failed: " in text, name
            if cut_by_the_capture:
                assert f"no answer within {timeout_s:g} s (timeout)" in text, name
            else:
                assert "(FlyUnavailable)" in text and "(timeout)" not in text, name
        assert json.loads(read(directory, "evidence.json"))["incident"]["id"] == inc.id

    async def test_a_call_that_never_answers_is_cut_at_the_deadline(
        self, tmp_path: Path, settings: Settings, session: aiohttp.ClientSession,
        hanging_fly: HangingFly,
    ) -> None:
        """A Fly that accepts requests and never answers: every file says it timed out."""
        clock = ManualClock()
        client = FlyClient(session, clock, token=SecretStr("t0ken"),
                           machines_url=hanging_fly.url, api_url=hanging_fly.url,
                           timeout_s=1000, attempts=1)
        job = asyncio.create_task(capture(client, [APP], run_story(settings).incident,
                                          tmp_path, clock=clock, timeout_s=5))
        await hanging_fly.all_waiting.wait()  # machines, releases and logs are in flight
        clock.advance(5)
        directory = await job
        for name in FLY_FILES:
            assert "no answer within 5 s (timeout)" in read(directory, name), name

    async def test_without_fly_access(self, tmp_path: Path, settings: Settings) -> None:
        """With HTTP probes only, the Fly files say so and evidence.json is still written."""
        inc = run_story(settings).incident
        directory = await capture(None, [APP], inc, tmp_path, clock=ManualClock())
        for name in FLY_FILES:
            assert NO_FLY in read(directory, name), name
        evidence = json.loads(read(directory, "evidence.json"))
        assert evidence["incident"]["evidence"] == inc.evidence

    async def test_files_are_bounded_in_size(
        self, tmp_path: Path, settings: Settings, session: aiohttp.ClientSession,
        start_sim: StartSim,
    ) -> None:
        """With a small max_bytes every text file fits it and ends with the marker."""
        clock = ManualClock()
        sim = await start_sim(clock)
        clock.advance(60)
        sim.world.step_to()
        directory = await capture(fly_client(session, clock, sim), [APP],
                                  run_story(settings).incident, tmp_path, clock=clock,
                                  max_bytes=400)
        for name in ("machines.txt", "machines-detail.txt", f"logs-{APP}.txt"):
            data = (directory / name).read_bytes()
            assert len(data) <= 400, name
            assert b"... truncated: " in data.splitlines()[-1], name


class HangingFly:
    """A real server that takes every request and answers none until the test ends."""

    def __init__(self, expected: int) -> None:
        self.url = ""
        self.expected = expected
        self.seen: list[str] = []
        self.all_waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.path)
        if len(self.seen) >= self.expected:
            self.all_waiting.set()
        await self.release.wait()
        return web.json_response({"error": "too late"}, status=503)


@pytest.fixture
async def hanging_fly() -> AsyncIterator[HangingFly]:
    fly = HangingFly(expected=3)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fly.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fly.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fly
    finally:
        fly.release.set()
        await runner.cleanup()
