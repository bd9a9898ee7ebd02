"""The Machines REST API: reads, long-poll waits, writes and leases (``MachinesApi``).

Writes are retried too (flyctl does), with one guard: when an ``update`` may have been applied
although no answer came back (a timeout, a 408/504, a dropped connection), the machine is read
again before the next attempt, and if its ``instance_id`` changed the update happened and that
machine is returned instead of updating a second time.

The client never checks a machine's state before acting: restart is for ``started`` machines,
start for ``stopped``/``suspended`` ones, and choosing is the caller's job.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import structlog
from yarl import URL

from hotdash_watch.fly.core import FlyCore, segment
from hotdash_watch.fly.errors import FlyError, FlyUnavailable
from hotdash_watch.fly.models import (
    Lease,
    Machine,
    MachineEvent,
    parse_events,
    parse_lease,
    parse_machine,
    parse_machines,
    plain,
)

__all__ = [
    "EMPTY_LIST_RECHECK_S",
    "MACHINE_SIGNALS",
    "MAX_EVENTS",
    "MAX_WAIT_POLL_S",
    "MachinesApi",
]

#: Signals the Machines API accepts for stop and restart.
MACHINE_SIGNALS = frozenset(
    {"SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM"}
)
#: How long ``list_machines`` waits before reading an empty list a second time.
EMPTY_LIST_RECHECK_S = 1.0
#: The longest long poll ``wait`` asks for (fly-go caps it at 60 s).
MAX_WAIT_POLL_S = 60
#: The most events the events endpoint returns.
MAX_EVENTS = 50


def _go_duration(seconds: float) -> str:
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"timeout must be > 0 seconds, got {seconds}")
    return f"{seconds:g}s"


def _log() -> Any:
    # Looked up per event so that structlog.testing.capture_logs sees it.
    return structlog.get_logger("hotdash_watch.fly")


class MachinesApi(FlyCore):
    """The Machines API (``/v1/apps/{app}/machines``) of one Fly client."""

    def _machine_url(self, app: str, machine_id: str | None = None, *rest: str) -> URL:
        url = self._machines / segment(app, "app name") / "machines"
        if machine_id is not None:
            url = url / segment(machine_id, "machine id")
        for part in rest:
            url = url / part
        return url

    # --- reads ------------------------------------------------------------------------------------

    async def list_machines(self, app: str, *, confirm_empty: bool = True) -> list[Machine]:
        """The app's own machines (``Machine.is_app_machine``).

        An empty answer is not believed at once: after ``EMPTY_LIST_RECHECK_S`` the list is read
        a second time (the List API once answered ``[]`` for apps with machines).
        """
        url = self._machine_url(app)

        async def read() -> list[Machine]:
            machines = await self._call(
                "GET", url, call="list_machines", app=app, parse=parse_machines
            )
            return [m for m in machines if m.is_app_machine]

        machines = await read()
        if not machines and confirm_empty:
            _log().info("fly_machine_list_empty", app=app, recheck_in_s=EMPTY_LIST_RECHECK_S)
            await self._clock.sleep(EMPTY_LIST_RECHECK_S)
            machines = await read()
        return machines

    async def get_machine(self, app: str, machine_id: str) -> Machine:
        """One machine, whatever its state or process group."""
        return await self._call(
            "GET",
            self._machine_url(app, machine_id),
            call="get_machine",
            app=app,
            machine=machine_id,
            parse=parse_machine,
        )

    async def events(self, app: str, machine_id: str, *, limit: int = 20) -> list[MachineEvent]:
        """The machine's event history, newest first (``limit`` 1 to 50)."""
        if not 1 <= limit <= MAX_EVENTS:
            raise ValueError(f"limit must be between 1 and {MAX_EVENTS}, got {limit}")
        return await self._call(
            "GET",
            self._machine_url(app, machine_id, "events"),
            call="events",
            app=app,
            machine=machine_id,
            params={"limit": str(limit)},
            parse=parse_events,
        )

    async def wait(
        self,
        app: str,
        machine_id: str,
        *,
        state: str = "started",
        version: str | None = None,
        timeout_s: int = 60,
    ) -> bool:
        """Whether the machine reached ``state`` within ``timeout_s`` clock seconds.

        Long-polls ``GET /wait`` (at most 60 s each, as fly-go does): 200 is True; 408 means the
        poll ran out, and another is made while the total allows. Pass the ``instance_id`` of an
        update as ``version``; waiting for ``stopped`` without one is refused (the API answers
        400).
        """
        if state == "stopped" and not version:
            raise ValueError("waiting for 'stopped' needs the machine version (instance_id)")
        if timeout_s < 1:
            raise ValueError(f"timeout_s must be >= 1, got {timeout_s}")
        url = self._machine_url(app, machine_id, "wait")
        ctx = {"call": "wait", "app": app, "machine": machine_id}

        async def poll(params: Mapping[str, str], limit: aiohttp.ClientTimeout) -> int:
            status, _ = await self._send(
                "GET",
                url,
                ctx,
                params=params,
                ok=(200, 408),
                client_timeout=limit,
                want_json=False,
            )
            return status

        deadline = self._clock.monotonic() + timeout_s
        # Bounded by count as well as by the clock, so a clock that stands still cannot spin.
        for _ in range(max(1, math.ceil(timeout_s / MAX_WAIT_POLL_S))):
            poll_s = min(MAX_WAIT_POLL_S, int(deadline - self._clock.monotonic()))
            if poll_s < 1:
                break
            params = {"state": state, "timeout": str(poll_s)}
            if version:
                params["version"] = version
            timeout = self._client_timeout(poll_s + self._timeout_s)
            if await self._retry(functools.partial(poll, params, timeout), ctx) == 200:
                return True
        return False

    # --- writes -----------------------------------------------------------------------------------

    async def _write(
        self,
        app: str,
        machine_id: str,
        action: str,
        *,
        nonce: str | None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> None:
        await self._call(
            "POST",
            self._machine_url(app, machine_id, action),
            call=action,
            app=app,
            machine=machine_id,
            nonce=nonce,
            params=params,
            json_body=json_body,
            want_json=False,
            parse=lambda _: None,
        )

    async def start(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        """Start a ``stopped`` or ``suspended`` machine (``POST /start``)."""
        await self._write(app, machine_id, "start", nonce=nonce)

    async def stop(
        self,
        app: str,
        machine_id: str,
        *,
        nonce: str | None = None,
        signal: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Stop a machine; ``signal`` and ``timeout_s`` (then SIGKILL) are optional."""
        body: dict[str, str] = {}
        if signal is not None:
            if signal not in MACHINE_SIGNALS:
                raise ValueError(f"unsupported signal {signal!r}")
            body["signal"] = signal
        if timeout_s is not None:
            body["timeout"] = _go_duration(timeout_s)
        await self._write(app, machine_id, "stop", nonce=nonce, json_body=body)

    async def restart(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        """Restart a ``started`` machine (``POST /restart?force_stop=false``)."""
        await self._write(app, machine_id, "restart", nonce=nonce, params={"force_stop": "false"})

    async def update(
        self,
        app: str,
        machine_id: str,
        *,
        config: Mapping[str, Any],
        current_version: str | None,
        nonce: str | None = None,
        skip_launch: bool,
    ) -> Machine:
        """Replace the machine's config; returns the machine with its new ``instance_id``.

        ``config`` must be the *full* config (``Machine.config_copy()`` edited). The body always
        carries ``config``, ``current_version`` (null when None: no version check) and
        ``skip_launch``. A stale ``current_version`` gives ``FlyConflict``.
        """
        url = self._machine_url(app, machine_id)
        ctx = {"call": "update", "app": app, "machine": machine_id}
        body = {
            "config": plain(config),
            "current_version": current_version,
            "skip_launch": bool(skip_launch),
        }
        baseline = current_version
        if baseline is None:
            # Needed to tell, after an ambiguous failure, whether the update went through.
            baseline = (await self.get_machine(app, machine_id)).instance_id
        recheck = False

        async def attempt() -> Machine:
            nonlocal recheck
            if recheck:
                _, data = await self._send("GET", url, ctx)
                fresh = self._parse(parse_machine, data, ctx)
                if fresh.instance_id != baseline:
                    _log().info(
                        "fly_update_already_applied",
                        app=app,
                        machine=machine_id,
                        instance_id=fresh.instance_id,
                    )
                    return fresh
                recheck = False
            try:
                _, data = await self._send("POST", url, ctx, json_body=body, nonce=nonce)
            except FlyUnavailable as exc:
                recheck = exc.maybe_applied
                raise
            return self._parse(parse_machine, data, ctx)

        return await self._retry(attempt, ctx)

    # --- leases -----------------------------------------------------------------------------------

    async def acquire_lease(
        self, app: str, machine_id: str, *, ttl_s: int = 60, description: str = "hotdash-watch"
    ) -> Lease:
        """Take the machine's lease for ``ttl_s`` seconds; ``LeaseHeld`` if someone has it."""
        if not 1 <= ttl_s <= 3600:
            raise ValueError(f"ttl_s must be between 1 and 3600, got {ttl_s}")
        return await self._call(
            "POST",
            self._machine_url(app, machine_id, "lease"),
            call="acquire_lease",
            app=app,
            machine=machine_id,
            # The docs put ttl in the body, fly-go in the query: send both.
            params={"ttl": str(ttl_s)},
            json_body={"ttl": ttl_s, "description": description},
            lease_call=True,
            parse=parse_lease,
        )

    async def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        """Give the lease back (``DELETE /lease`` with its nonce)."""
        await self._call(
            "DELETE",
            self._machine_url(app, machine_id, "lease"),
            call="release_lease",
            app=app,
            machine=machine_id,
            nonce=nonce,
            want_json=False,
            parse=lambda _: None,
        )

    def lease(
        self, app: str, machine_id: str, *, ttl_s: int = 60, description: str = "hotdash-watch"
    ) -> AbstractAsyncContextManager[Lease]:
        """Hold the machine's lease for the ``async with`` body, and always give it back.

        The release runs whether the body succeeds or raises. A failed release is logged
        (``fly_lease_release_failed``) and never raised: the lease then expires after ``ttl_s``,
        and the body's own exception, if any, is the one that propagates.
        """
        return self._lease(app, machine_id, ttl_s=ttl_s, description=description)

    @asynccontextmanager
    async def _lease(
        self, app: str, machine_id: str, *, ttl_s: int, description: str
    ) -> AsyncIterator[Lease]:
        held = await self.acquire_lease(app, machine_id, ttl_s=ttl_s, description=description)
        try:
            yield held
        finally:
            try:
                # In a task of its own: when the body was cancelled, this task is still marked
                # as cancelling and the retry loop would refuse to send the release. A second
                # cancellation still reaches the release task through the await.
                await asyncio.create_task(self.release_lease(app, machine_id, held.nonce))
            except FlyError as exc:
                _log().warning(
                    "fly_lease_release_failed",
                    app=app,
                    machine=machine_id,
                    error=type(exc).__name__,
                    status=exc.status,
                    request_id=exc.request_id,
                    expires_at=held.expires_at,
                )
