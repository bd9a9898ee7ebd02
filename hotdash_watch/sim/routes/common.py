"""What the simulator's routes share: the world they serve, JSON bodies and Fly's error body."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hotdash_watch.sim.model import ApiError
from hotdash_watch.sim.world import World

__all__ = ["WORLD_KEY", "error", "flag", "json_body", "world_of"]

WORLD_KEY = web.AppKey("world", World)


def world_of(request: web.Request) -> World:
    return request.app[WORLD_KEY]


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Fly's JSON error body, ``{"error": "…", "status": "unknown"}``."""
    return web.json_response({"error": message, "status": "unknown"}, status=status,
                             headers=headers)


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def json_body(request: web.Request, *, required: bool) -> Any:
    if not request.can_read_body:
        if required:
            raise ApiError(400, "invalid request: a JSON body is required")
        return None
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid request: the body is not valid JSON") from None
