"""A collecting webhook receiver on a real socket, modelled on alertmanager's ``Collector``.

It records every request (path, headers, raw body, JSON) and answers 2xx (202 on PagerDuty's
``/v2/enqueue``, 200 elsewhere), unless told to fail: with a status (its body then echoes the
request's path, headers and body, so that a notifier that quotes error bodies must redact),
by closing the connection (``"disconnect"``), by resetting it (``"reset"``), or by never
answering (``"hang"``). A failure applies to every path or to paths starting with a prefix,
for the next ``times`` requests or until ``recover()``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["Fault", "Received", "Receiver"]

Mode = int | str  # a status code, "disconnect", "reset" or "hang"


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    answered: int | str

    @property
    def accepted(self) -> bool:
        return isinstance(self.answered, int) and 200 <= self.answered < 300


@dataclass
class Fault:
    mode: Mode
    prefix: str = ""
    times: int | None = None


@dataclass
class Receiver:
    """Start with ``await start()``; ``url(path)`` is where notifiers are pointed."""

    requests: list[Received] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _server: TestServer | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        self._release.set()
        if self._server is not None:
            await self._server.close()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    # -- behaviour -----------------------------------------------------------------------------

    def fail(self, mode: Mode, *, prefix: str = "", times: int | None = None) -> None:
        """Fail requests to paths starting with ``prefix`` (all by default)."""
        self.faults.append(Fault(mode, prefix, times))

    def recover(self, prefix: str | None = None) -> None:
        """Stop failing (only the faults of ``prefix`` when given)."""
        self.faults = [f for f in self.faults if prefix is not None and f.prefix != prefix]

    def _fault_for(self, path: str) -> Fault | None:
        for f in self.faults:
            if path.startswith(f.prefix):
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
                return f
        return None

    # -- what arrived --------------------------------------------------------------------------

    def accepted(self, prefix: str = "") -> list[Received]:
        return [r for r in self.requests if r.accepted and r.path.startswith(prefix)]

    def attempts(self, prefix: str = "") -> list[Received]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    async def wait_for(self, count: int, *, accepted: bool = True, prefix: str = "",
                       within_s: float = 5.0) -> list[Received]:
        """Wait (real time, bounded) until ``count`` requests arrived; return them."""

        def seen() -> list[Received]:
            return self.accepted(prefix) if accepted else self.attempts(prefix)

        async with asyncio.timeout(within_s), self._arrived:
            await self._arrived.wait_for(lambda: len(seen()) >= count)
        return seen()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        fault = self._fault_for(request.path)
        answered: Mode = fault.mode if fault else (
            202 if request.path.endswith("/v2/enqueue") else 200)
        self.requests.append(Received(request.path, dict(request.headers), raw, parsed,
                                      answered))
        async with self._arrived:
            self._arrived.notify_all()
        if fault is None:
            return web.json_response({"status": "success"}, status=int(answered))
        if answered == "hang":
            await self._release.wait()
            return web.Response(status=504)
        if answered in ("disconnect", "reset"):
            if answered == "reset":
                sock = request.transport.get_extra_info("socket") if request.transport else None
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if request.transport is not None:
                    request.transport.abort()
            elif request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # the connection is gone: no response
        # The worst receiver: it echoes what identifies the sender (path, auth, keys) first.
        keys = parsed.get("routing_key", "") if isinstance(parsed, dict) else ""
        echo = (f"failing {request.path} {request.headers.get('Authorization', '')} {keys} "
                f"{raw.decode(errors='replace')}")
        return web.Response(status=int(answered), text=echo)
