"""Phase 3 of the runbook: capture diagnostics to ``artifacts/reliability/incident-<ts>/``.

``capture(client, apps, incident, out_dir, clock=...)`` writes, in the directory named after the
incident's opening time (``incident-20260301-120005`` for ``INC-20260301-120005``):

================================  ==============================================================
``app-status.txt``                per app, like ``fly status``: machines by state, checks, image,
                                  the current release, then one line per machine
``machines.txt``                  per app, the table of ``fly machine list``
``machines-detail.txt``           per machine, like ``fly machine status``: VM, checks with their
                                  output, the last events with exit_code / oom_killed /
                                  requested_stop
``logs-<app>.txt``                the app's recent log lines, like ``fly logs``
``releases.txt``                  per app, the newest 10 releases, like ``fly releases``
``evidence.json``                 the incident as the API shows it: reasons, evidence, timeline
================================  ==============================================================

Every Fly call starts at once (the calls several files need are made once and shared), and all
of them share one deadline, ``timeout_s`` clock seconds from the start. A call that fails
(``FlyError``) or misses the deadline leaves a ``capture failed: <what>: <why>`` line where its
text would have been; the file is written anyway and the other files do not wait for it. Without
a Fly client (HTTP probes only) the Fly files say ``no Fly API access configured``. Each text
file is cut to ``max_bytes`` with a ``... truncated`` line at the end; ``evidence.json`` stays
valid JSON (when too big, its evidence and timeline give way to a note). Files are written in
worker threads, never on the event loop. The files' text is ``diagnostics_text``'s (pure); this
module makes the calls, bounds and writes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from hotdash_watch.clock import Clock
from hotdash_watch.fly import FlyClient, FlyError, LogLine, MachineEvent
from hotdash_watch.model.incident import Incident
from hotdash_watch.records.diagnostics_text import (
    RELEASES_LIMIT,
    Failed,
    bound_text,
    evidence_json,
    format_app_status,
    format_logs,
    format_machine_detail,
    format_machine_list,
    format_releases,
)
from hotdash_watch.records.findings import iso_utc

__all__ = [
    "ARTIFACTS",
    "NO_FLY",
    "artifact_names",
    "bound_text",
    "capture",
    "format_app_status",
    "format_logs",
    "format_machine_detail",
    "format_machine_list",
    "format_releases",
    "incident_dir",
    "incident_dir_name",
]

T = TypeVar("T")

#: The files every capture writes besides one ``logs-<app>.txt`` per app.
ARTIFACTS = ("app-status.txt", "machines.txt", "machines-detail.txt", "releases.txt",
             "evidence.json")
NO_FLY = "no Fly API access configured (HTTP probes only)"
#: How many machines' events are read at once.
EVENTS_CONCURRENCY = 8
EVENTS_LIMIT = 10

_ID_STAMP = re.compile(r"^INC-(\d{8}-\d{6}(?:-\d+)?)$")


def _log() -> Any:
    return structlog.get_logger("hotdash_watch.records.diagnostics")


# --- where ----------------------------------------------------------------------------------------


def incident_dir_name(incident: Incident) -> str:
    """``incident-<yyyymmdd-hhmmss>``: the stamp of the incident ID (so also of its opening, UTC),
    keeping a ``-2`` suffix so that two incidents opened in the same second do not share it."""
    found = _ID_STAMP.match(incident.id)
    if found:
        return f"incident-{found.group(1)}"
    return "incident-" + datetime.fromtimestamp(incident.opened_at, UTC).strftime("%Y%m%d-%H%M%S")


def incident_dir(out_dir: Path, incident: Incident) -> Path:
    """The incident's folder under ``out_dir`` (diagnostics and the report)."""
    return Path(out_dir) / incident_dir_name(incident)


def artifact_names(apps: Iterable[str]) -> list[str]:
    """Every file ``capture`` writes for ``apps``, in a stable order."""
    names = list(ARTIFACTS[:3])
    names += [f"logs-{app}.txt" for app in apps]
    names += list(ARTIFACTS[3:])
    return names


# --- I/O ------------------------------------------------------------------------------------------


class _Capture:
    """The Fly calls of one capture: started once, shared, bounded by one deadline."""

    def __init__(self, client: FlyClient | None, incident: Incident, clock: Clock,
                 timeout_s: float) -> None:
        self.client = client
        self.incident = incident
        self.clock = clock
        self.timeout_s = timeout_s
        self.deadline = clock.monotonic() + timeout_s
        self._calls: dict[tuple[str, ...], asyncio.Task[Any]] = {}
        self._events_gate = asyncio.Semaphore(EVENTS_CONCURRENCY)

    def _shared(self, key: tuple[str, ...], make: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._calls[key] = task
        return asyncio.shield(task)

    async def _within(self, aw: Awaitable[T]) -> T:
        """``aw``'s result, or ``TimeoutError`` when the capture's deadline passes first."""
        task = asyncio.ensure_future(aw)
        remaining = self.deadline - self.clock.monotonic()
        sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, remaining)))
        try:
            await asyncio.wait({task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            raise TimeoutError
        return task.result()

    async def attempt(self, what: str, make: Callable[[], Awaitable[T]]) -> T | Failed:
        """The call's result, or ``Failed`` saying what failed and why (error or deadline)."""
        if self.client is None:
            return Failed(what, NO_FLY)
        try:
            return await self._within(make())
        except TimeoutError:
            failed = Failed(what, f"no answer within {self.timeout_s:g} s (timeout)")
        except FlyError as e:
            failed = Failed(what, f"{e} ({type(e).__name__})")
        except Exception as e:  # a capture never stops on one bad call
            failed = Failed(what, f"{type(e).__name__}: {e}")
        _log().warning("diagnostics_call_failed", incident_id=self.incident.id, call=what,
                       error=failed.why)
        return failed

    def machines(self, app: str) -> Awaitable[Any]:
        return self.attempt(f"machines of {app}", lambda: self._shared(
            ("machines", app), lambda: self._client.list_machines(app)))

    def releases(self, app: str) -> Awaitable[Any]:
        return self.attempt(f"releases of {app}", lambda: self._shared(
            ("releases", app), lambda: self._client.releases(app, limit=RELEASES_LIMIT)))

    def logs(self, app: str) -> Awaitable[Any]:
        async def lines() -> tuple[LogLine, ...]:
            return (await self._client.logs(app)).lines

        return self.attempt(f"logs of {app}", lines)

    def events(self, app: str, machine_id: str) -> Awaitable[Any]:
        async def read() -> list[MachineEvent]:
            async with self._events_gate:
                return await self._client.events(app, machine_id, limit=EVENTS_LIMIT)

        return self.attempt(f"events of machine {machine_id} in {app}", read)

    @property
    def _client(self) -> FlyClient:
        assert self.client is not None
        return self.client

    async def close(self) -> None:
        """Cancel the shared calls still running and collect every outcome."""
        tasks = list(self._calls.values())
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _app_status(cap: _Capture, app: str) -> list[str]:
    machines, releases = await asyncio.gather(cap.machines(app), cap.releases(app))
    return format_app_status(app, machines, releases)


async def _machine_list(cap: _Capture, app: str) -> list[str]:
    return format_machine_list(app, await cap.machines(app))


async def _machine_details(cap: _Capture, app: str) -> list[str]:
    machines = await cap.machines(app)
    if isinstance(machines, Failed):
        return [f"$ fly machine status -a {app}", machines.line]
    if not machines:
        return [f"$ fly machine status -a {app}", "no machines"]
    events = await asyncio.gather(*(cap.events(app, m.id) for m in machines))
    out: list[str] = []
    for m, evs in zip(machines, events, strict=True):
        if out:
            out.append("")
        out += [f"$ fly machine status {m.id} -a {app}", *format_machine_detail(m, evs)]
    return out


async def _logs(cap: _Capture, app: str) -> list[str]:
    return format_logs(await cap.logs(app))


async def _releases(cap: _Capture, app: str) -> list[str]:
    return format_releases(await cap.releases(app))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


async def _artifact(
    cap: _Capture, path: Path, title: str, sections: Sequence[Awaitable[list[str]]],
    captured_at: float, max_bytes: int,
) -> None:
    parts = await asyncio.gather(*sections)
    lines = [f"# {title} for {cap.incident.id}, captured {iso_utc(captured_at)} by hotdash-watch"]
    for part in parts:
        lines += ["", *part]
    await _write(cap, path, bound_text("\n".join(lines) + "\n", max_bytes))


async def _write(cap: _Capture, path: Path, text: str) -> None:
    try:
        await asyncio.to_thread(_write_text, path, text)
    except OSError as e:
        _log().error("diagnostics_write_failed", incident_id=cap.incident.id, file=path.name,
                     error=e.strerror or type(e).__name__)


def _with_command(command: str, body: Callable[[], Awaitable[list[str]]]
                  ) -> Coroutine[Any, Any, list[str]]:
    async def run() -> list[str]:
        return [f"$ {command}", *(await body())]

    return run()


async def capture(
    client: FlyClient | None,
    apps: Sequence[str],
    incident: Incident,
    out_dir: Path,
    *,
    clock: Clock,
    timeout_s: float = 30.0,
    max_bytes: int = 1_000_000,
) -> Path:
    """Write the runbook's Phase 3 diagnostics of ``apps`` and return their directory.

    Finishes within ``timeout_s`` clock seconds (plus the time to write the files) whatever the
    Fly API does. Raises only when the directory itself cannot be created (``OSError``).
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if max_bytes < 256:
        raise ValueError(f"max_bytes must be at least 256, got {max_bytes}")
    directory = incident_dir(out_dir, incident)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    captured_at = clock.timestamp()
    cap = _Capture(client, incident, clock, timeout_s)
    apps = list(dict.fromkeys(apps))

    def per_app(command: str, make: Callable[[_Capture, str], Awaitable[list[str]]]
                ) -> list[Awaitable[list[str]]]:
        return [_with_command(command.format(app=app), lambda app=app: make(cap, app))
                for app in apps]

    def artifact(name: str, title: str, sections: Sequence[Awaitable[list[str]]]
                 ) -> Coroutine[Any, Any, None]:
        return _artifact(cap, directory / name, title, sections, captured_at, max_bytes)

    async def machine_details() -> list[str]:
        parts = await asyncio.gather(*(_machine_details(cap, app) for app in apps))
        return [line for i, part in enumerate(parts) for line in ([""] if i else []) + part]

    jobs: list[Coroutine[Any, Any, None]] = [
        artifact("app-status.txt", "App status (fly status)",
                 per_app("fly status -a {app}", _app_status)),
        artifact("machines.txt", "Machines (fly machine list)",
                 per_app("fly machine list -a {app}", _machine_list)),
        artifact("machines-detail.txt", "Machine details (fly machine status)",
                 [machine_details()]),
        *(artifact(f"logs-{app}.txt", "Recent logs (fly logs)",
                   [_with_command(f"fly logs -a {app} --no-tail",
                                  lambda app=app: _logs(cap, app))])
          for app in apps),
        artifact("releases.txt", "Releases (fly releases | head -10)",
                 per_app("fly releases -a {app}", _releases)),
        _write(cap, directory / "evidence.json",
               evidence_json(incident, apps, captured_at, max_bytes)),
    ]
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(job)
    finally:
        await cap.close()
    _log().info("diagnostics_written", incident_id=incident.id, path=str(directory),
                fly=client is not None)
    return directory
