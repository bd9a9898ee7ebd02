"""``FlyClient``: the Machines API, GraphQL releases, logs polling and Prometheus queries.

Requests go through the shared HTTP core (``fly.core.FlyCore``): the auth header, deadlines,
error translation and retries live there; this module holds what each API asks and reads.

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
import json
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import structlog
from yarl import URL

from hotdash_watch.fly.core import NONCE_HEADER, REQUEST_ID_HEADER, FlyCore, auth_header, segment
from hotdash_watch.fly.errors import (
    FlyError,
    FlyNotFound,
    FlyRejected,
    FlyUnauthorized,
    FlyUnavailable,
    parse_error_body,
    shorten,
)
from hotdash_watch.fly.models import (
    Lease,
    LogPage,
    Machine,
    MachineEvent,
    Release,
    Sample,
    parse_events,
    parse_lease,
    parse_log_page,
    parse_machine,
    parse_machines,
    parse_prometheus,
    parse_releases,
    plain,
)

__all__ = [
    "MACHINE_SIGNALS",
    "NONCE_HEADER",
    "RELEASES_QUERY",
    "REQUEST_ID_HEADER",
    "FlyClient",
    "auth_header",
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

#: The releases query, with names exactly as in Fly's GraphQL schema.
RELEASES_QUERY = """\
query ($appName: String!, $limit: Int!) {
  app(name: $appName) {
    releases: releasesUnprocessed(first: $limit) {
      nodes { id version description reason status imageRef stable
              user { id email name } createdAt }
    }
  }
}"""


def _go_duration(seconds: float) -> str:
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"timeout must be > 0 seconds, got {seconds}")
    return f"{seconds:g}s"


def _log() -> Any:
    # Looked up per event so that structlog.testing.capture_logs sees it.
    return structlog.get_logger("hotdash_watch.fly")


class FlyClient(FlyCore):
    """One client for every Fly API the watcher reads or acts through.

    Base URLs are configuration, so tests and the simulator point it at a local server. The
    ``session`` is the caller's (not closed here). ``timeout_s`` bounds each request in clock
    seconds (``clock.rate`` scales it to real time); ``attempts`` and ``deadline_s`` bound the
    retries of one call.
    """

    def _machine_url(self, app: str, machine_id: str | None = None, *rest: str) -> URL:
        url = self._machines / segment(app, "app name") / "machines"
        if machine_id is not None:
            url = url / segment(machine_id, "machine id")
        for part in rest:
            url = url / part
        return url

    # --- Machines API: reads ----------------------------------------------------------------------

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

    # --- Machines API: writes ---------------------------------------------------------------------

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

    # --- releases (GraphQL) -----------------------------------------------------------------------

    async def releases(self, app: str, *, limit: int = 10) -> list[Release]:
        """The app's releases, newest version first (GraphQL ``releasesUnprocessed``)."""
        if not 1 <= limit <= 100:
            raise ValueError(f"limit must be between 1 and 100, got {limit}")
        ctx = {"call": "releases", "app": segment(app, "app name"), "machine": None}

        def parse(data: Any) -> list[Release]:
            errors = data.get("errors") if isinstance(data, Mapping) else None
            if errors:
                raise self._graphql_error(errors, ctx)
            return parse_releases(data)

        return await self._call(
            "POST",
            self._api / "graphql",
            call="releases",
            app=app,
            json_body={"query": RELEASES_QUERY, "variables": {"appName": app, "limit": limit}},
            parse=parse,
        )

    def _graphql_error(self, errors: Any, ctx: Mapping[str, Any]) -> FlyError:
        """The error for a GraphQL ``errors[]`` answer (HTTP 200).

        GraphQL has no status, so the kind is read from ``extensions.code`` and the message:
        not found, unauthorized, and server-side trouble are told apart; anything else is a
        rejection. (Fly's codes and texts here are UNCONFIRMED.)
        """
        messages, codes = [], []
        for err in errors if isinstance(errors, list) else [errors]:
            if isinstance(err, Mapping):
                messages.append(str(err.get("message") or ""))
                ext = err.get("extensions")
                if isinstance(ext, Mapping) and ext.get("code"):
                    codes.append(str(ext["code"]).upper())
        text = self._scrub(shorten("; ".join(messages)))
        low = text.lower()
        code = codes[0] if codes else None
        if "NOT_FOUND" in codes or "could not find" in low or "not found" in low:
            return FlyNotFound(text, code=code, **ctx)
        if {"UNAUTHORIZED", "UNAUTHENTICATED", "FORBIDDEN"} & set(codes) or (
            "not authorized" in low or "unauthorized" in low or "must be authenticated" in low
        ):
            return FlyUnauthorized(text, code=code, **ctx)
        if {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"} & set(codes) or (
            "timeout" in low or "timed out" in low or "try again" in low
        ):
            return FlyUnavailable(text, code=code, **ctx)
        return FlyRejected(text, code=code, **ctx)

    # --- logs -------------------------------------------------------------------------------------

    async def logs(
        self, app: str, *, next_token: str | None = None, instance: str | None = None
    ) -> LogPage:
        """One page of the logs polling API; without a token, the latest lines."""
        params: dict[str, str] = {}
        if next_token:
            params["next_token"] = next_token
        if instance:
            params["instance"] = segment(instance, "instance")
        return await self._call(
            "GET",
            self._api / "api" / "v1" / "apps" / segment(app, "app name") / "logs",
            call="logs",
            app=app,
            machine=instance,
            params=params,
            parse=parse_log_page,
        )

    # --- Prometheus -------------------------------------------------------------------------------

    async def query(self, promql: str) -> list[Sample]:
        """An instant PromQL (MetricsQL) query against Fly's managed Prometheus (§5.1)."""
        if self._prometheus is None:
            raise ValueError("no prometheus_url configured")
        if not promql.strip():
            raise ValueError("empty PromQL query")
        ctx = {"call": "query", "app": None, "machine": None}

        def parse(data: Any) -> list[Sample]:
            if isinstance(data, Mapping) and data.get("status") == "error":
                text, code = parse_error_body(json.dumps(data))
                unavailable = code in ("timeout", "unavailable", "internal")
                kind = FlyUnavailable if unavailable else FlyRejected
                raise kind(self._scrub(text), code=code, **ctx)
            return parse_prometheus(data)

        return await self._call(
            "GET",
            self._prometheus / "api" / "v1" / "query",
            call="query",
            params={"query": promql},
            parse=parse,
        )
