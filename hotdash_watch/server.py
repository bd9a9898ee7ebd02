"""The watcher's HTTP surface.

Read: ``/metrics``, ``/healthz``, ``/readyz``, ``/api/incidents``, ``/api/incidents/{id}``,
``/api/silences``, ``/api/pages``. Mutations (``POST /api/silences``,
``DELETE /api/silences/{id}``, ``POST /api/incidents/{id}/acknowledge``) need
``Authorization: Bearer <server.api_token>``, compared in constant time; without a configured
token they are refused.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hotdash_watch.incident_model import State, incident_as_dict
from hotdash_watch.pipeline import Pipeline

__all__ = ["make_app"]

log = structlog.get_logger("hotdash_watch.server")

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
    body: dict[str, Any] = {"status": "ok" if age <= stale_after else "stale",
                            "last_tick_age_s": round(age, 1), "stale_after_s": stale_after,
                            "ticked": p.last_tick is not None}
    outbox = getattr(p.responder, "outbox", None)
    if outbox is not None:
        # Paging trouble is reported here but does not fail liveness: restarting the watcher
        # would not mend a receiver, and the outbox keeps every page until it is delivered.
        body["paging"] = outbox.paging_status()
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


def _authorized(request: web.Request) -> web.Response | None:
    """None when the bearer token matches; otherwise the refusal to send."""
    token = request.app[PIPELINE].settings.server.api_token
    if token is None:
        return _error(403, "mutations are disabled: set server.api_token "
                           "(HOTDASH_WATCH_SERVER__API_TOKEN) to enable them")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.get_secret_value().encode()):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                                 headers={"WWW-Authenticate": "Bearer"})
    return None


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    return body


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _silence_json(s: Any, now: float) -> dict[str, Any]:
    return {"id": s.id, "app": s.app, "starts_at": _iso(s.starts_at), "ends_at": _iso(s.ends_at),
            "author": s.author, "reason": s.reason,
            "suspend_mitigation": s.suspend_mitigation, "active": s.active(now)}


async def list_silences(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    now = p.clock.timestamp()
    rows = await p.store.list_silences()
    return web.json_response({"silences": [_silence_json(s, now) for s in rows]})


async def create_silence(request: web.Request) -> web.Response:
    """``{"app": "<name>|*", "duration_s": 3600, "author": "...", "reason": "...",
    "suspend_mitigation": false}``; every silence has an end and an author."""
    if (refused := _authorized(request)) is not None:
        return refused
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    p = request.app[PIPELINE]
    app = body.get("app")
    if app != "*" and app not in p.apps:
        return _error(400, f"app must be '*' or one of {', '.join(sorted(p.apps))}, got {app!r}")
    author = body.get("author")
    if not isinstance(author, str) or not author.strip():
        return _error(400, "author is required: who is silencing")
    duration = body.get("duration_s")
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) \
            or not 0 < duration <= 7 * 86400:
        return _error(400, f"duration_s must be a number of seconds from 1 to 604800 (7 days), "
                           f"got {duration!r}")
    reason = body.get("reason", "")
    suspend = body.get("suspend_mitigation", False)
    if not isinstance(reason, str) or not isinstance(suspend, bool):
        return _error(400, "reason must be a string and suspend_mitigation a boolean")
    now = p.clock.timestamp()
    silence = await p.store.add_silence(app, now, now + duration, author=author.strip(),
                                        reason=reason, created_at=now,
                                        suspend_mitigation=suspend)
    log.info("silence_created", app=app, author=author, ends_in_s=duration,
             suspend_mitigation=suspend, silence_id=silence.id)
    return web.json_response(_silence_json(silence, now), status=201)


async def end_silence(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    p = request.app[PIPELINE]
    try:
        silence_id = int(request.match_info["id"])
    except ValueError:
        return _error(400, f"silence id must be an integer, got {request.match_info['id']!r}")
    now = p.clock.timestamp()
    ended = await p.store.end_silence(silence_id, now)
    if ended is None:
        return _error(404, f"no active silence {silence_id}")
    log.info("silence_ended", silence_id=silence_id)
    return web.json_response(_silence_json(ended, now))


async def acknowledge(request: web.Request) -> web.Response:
    """``{"author": "..."}``: a person has the incident; recorded on its timeline."""
    if (refused := _authorized(request)) is not None:
        return refused
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    author = body.get("author")
    if not isinstance(author, str) or not author.strip():
        return _error(400, "author is required: who acknowledges")
    p = request.app[PIPELINE]
    inc = await p.acknowledge(request.match_info["id"], author.strip())
    if inc is None:
        return _error(404, f"no open incident {request.match_info['id']!r}")
    return web.json_response(incident_as_dict(inc))


async def list_pages(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    rows = await p.store.list_pages(incident_id=request.query.get("incident_id"), limit=200)
    return web.json_response({"pages": [
        {"id": r.id, "key": r.key, "channel": r.channel, "incident_id": r.incident_id,
         "event": r.event, "severity": r.severity, "state": str(r.state),
         "attempts": r.attempts, "created_at": _iso(r.created_at), "sent_at": _iso(r.sent_at),
         "last_error": r.last_error, "subject": r.page.get("subject")} for r in rows]})


def make_app(pipeline: Pipeline) -> web.Application:
    app = web.Application()
    app[PIPELINE] = pipeline
    app[STARTED_AT] = pipeline.clock.timestamp()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{id}", get_incident)
    app.router.add_post("/api/incidents/{id}/acknowledge", acknowledge)
    app.router.add_get("/api/silences", list_silences)
    app.router.add_post("/api/silences", create_silence)
    app.router.add_delete("/api/silences/{id}", end_silence)
    app.router.add_get("/api/pages", list_pages)
    return app
