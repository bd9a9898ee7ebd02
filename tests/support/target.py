"""A local HTTP service for tests: /health fails a chosen fraction of requests."""

from __future__ import annotations

import random

from aiohttp import web


class LocalService:
    """``error_ratio`` of /health requests answer 503 (0.0 and 1.0 are deterministic)."""

    def __init__(self) -> None:
        self.error_ratio = 0.0
        self.rng = random.Random(7)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _health(self, request: web.Request) -> web.Response:
        if self.rng.random() < self.error_ratio:
            return web.Response(status=503, text="upstream unavailable")
        return web.Response(text="ok")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/health"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
