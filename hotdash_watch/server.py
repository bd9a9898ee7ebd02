"""The watcher's HTTP surface: /metrics, /healthz, /readyz, /api/incidents, /api/incidents/{id}."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hotdash_watch.incident_model import State, incident_as_dict
from hotdash_watch.pipeline import Pipeline

__all__ = ["make_app"]

PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline", Pipeline)
STARTED_AT: web.AppKey[float] = web.AppKey("started_at", float)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[PIPELINE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """Alive when the scheduler ran an evaluation pass within ``timers.heartbeat_stale_s``."""
    p = request.app[PIPELINE]
    now = p.clock.timestamp()
    stale_after = p.settings.timers.heartbeat_stale_s
    last = p.last_tick if p.last_tick is not None else request.app[STARTED_AT]
    age = now - last
    body = {"status": "ok" if age <= stale_after else "stale",
            "last_tick_age_s": round(age, 1), "stale_after_s": stale_after,
            "ticked": p.last_tick is not None}
    return web.json_response(body, status=200 if age <= stale_after else 503)


async def readyz(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    store_ok = await p.store.ping()
    body = {"status": "ready" if store_ok else "not ready", "config": "loaded",
            "store": "ok" if store_ok else "unreachable", "apps": sorted(p.apps)}
    return web.json_response(body, status=200 if store_ok else 503)


async def list_incidents(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    q = request.query
    try:
        limit = int(q.get("limit", "50"))
        if not 1 <= limit <= 1000:
            raise ValueError
    except ValueError:
        return _error(400, f"limit must be an integer from 1 to 1000, got {q.get('limit')!r}")
    state = q.get("state")
    allowed = [s.value for s in State] + ["open"]
    if state is not None and state not in allowed:
        return _error(400, f"state must be one of {', '.join(allowed)}, got {state!r}")
    if state == "open":
        found = [i for i in await p.store.open_incidents()
                 if q.get("app") in (None, i.app)][:limit]
    else:
        found = await p.store.list_incidents(app=q.get("app"), state=state, limit=limit)
    return web.json_response({"incidents": [incident_as_dict(i, timeline=False) for i in found]})


async def get_incident(request: web.Request) -> web.Response:
    inc = await request.app[PIPELINE].store.get_incident(request.match_info["id"])
    if inc is None:
        return _error(404, f"no incident {request.match_info['id']!r}")
    return web.json_response(incident_as_dict(inc))


def make_app(pipeline: Pipeline) -> web.Application:
    app = web.Application()
    app[PIPELINE] = pipeline
    app[STARTED_AT] = pipeline.clock.timestamp()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{id}", get_incident)
    return app
