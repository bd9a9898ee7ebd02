"""The Machines API routes: ``/v1/apps`` and ``/v1/apps/{app}/machines…`` (list, get, start,
stop, restart, update, wait, events, leases), over the world's Machines API verbs."""

from __future__ import annotations

from aiohttp import web

from hotdash_watch.sim.machines_api import SETTLED
from hotdash_watch.sim.model import ApiError, SimMachine
from hotdash_watch.sim.routes.common import flag, json_body, world_of

__all__ = ["add_routes"]

WAIT_MAX_S = 60


def _machine(request: web.Request) -> SimMachine:
    return world_of(request).machine(request.match_info["app"], request.match_info["id"])


def _nonce(request: web.Request) -> str | None:
    return request.headers.get("fly-machine-lease-nonce") or None


async def list_apps(request: web.Request) -> web.Response:
    world = world_of(request)
    apps = [{"name": a.name, "id": a.name, "status": "deployed",
             "machine_count": len(a.machines), "organization": {"slug": "hotdash"}}
            for a in world.apps.values()]
    return web.json_response({"total_apps": len(apps), "apps": apps})


async def list_machines(request: web.Request) -> web.Response:
    world = world_of(request)
    states = {s for v in request.query.getall("state", []) for s in v.split(",") if s}
    metadata = {k.removeprefix("metadata."): v for k, v in request.query.items()
                if k.startswith("metadata.")}
    return web.json_response(world.list_machines(
        request.match_info["app"], states=states or None, region=request.query.get("region"),
        summary=flag(request, "summary"), include_leases=flag(request, "include_leases"),
        metadata=metadata or None))


async def get_machine(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    world.rate_limit(m, "get", read=True)
    return web.json_response(world.machine_json(m, include_lease=flag(request, "include_leases")))


async def update_machine(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    world.rate_limit(m, "update")
    world.check_lease(m, _nonce(request))
    body = await json_body(request, required=True)
    return web.json_response(world.update(m, body))


async def start_machine(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    world.rate_limit(m, "start")
    world.check_lease(m, _nonce(request))
    return web.json_response(world.start(m))


async def stop_machine(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    world.rate_limit(m, "stop")
    world.check_lease(m, _nonce(request))
    body = await json_body(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise ApiError(400, "invalid request: the body must be an object")
    return web.json_response(world.stop(m, body))


async def restart_machine(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    world.rate_limit(m, "restart")
    world.check_lease(m, _nonce(request))
    return web.json_response(world.restart(m, request.query.get("signal")))


async def wait_machine(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    states = {s for v in request.query.getall("state", []) for s in v.split(",") if s}
    states = states or {"started"}
    unknown = states - set(SETTLED) - {"settled"}
    if unknown:
        raise ApiError(400, f"invalid state {sorted(unknown)[0]!r}: wait for one of "
                       f"{', '.join((*SETTLED, 'settled'))}")
    raw_timeout = request.query.get("timeout", str(WAIT_MAX_S))
    try:
        timeout = min(float(raw_timeout.removesuffix("s")), WAIT_MAX_S)
    except ValueError:
        raise ApiError(400, f"invalid timeout {raw_timeout!r}: integer seconds") from None
    version = request.query.get("version") or request.query.get("instance_id") or None
    if "stopped" in states and not version:
        raise ApiError(400, "instance_id (version) is required when waiting for the "
                       "stopped state")
    world.check_wait_version(m, version)
    deadline = world.t() + timeout
    while True:
        world.step_to()
        result = world.wait_result(m, states, version)
        if result is not None:
            return web.json_response(result)
        world.check_wait_version(m, version)
        remaining = deadline - world.t()
        if remaining <= 0 or world.stopping:
            raise ApiError(408, f"deadline_exceeded: machine {m.id} did not reach "
                           f"{'/'.join(sorted(states))} within {timeout:g}s "
                           f"(currently {m.state})")
        await world.pause(min(0.25, remaining))


async def machine_events(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    raw = request.query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid limit {raw!r}: an integer from 1 to 50") from None
    if limit < 1:
        raise ApiError(400, f"invalid limit {raw!r}: an integer from 1 to 50")
    return web.json_response(world.events(m, min(limit, 50)))


async def get_lease(request: web.Request) -> web.Response:
    return web.json_response(world_of(request).lease_get(_machine(request)))


async def acquire_lease(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    world.rate_limit(m, "lease")
    body = await json_body(request, required=False) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid request: the body must be an object")
    raw_ttl = body.get("ttl", request.query.get("ttl", 30))
    try:
        ttl = float(raw_ttl)
    except (TypeError, ValueError):
        raise ApiError(400, f"invalid ttl {raw_ttl!r}: seconds") from None
    if ttl <= 0:
        raise ApiError(400, f"invalid ttl {raw_ttl!r}: must be > 0")
    description = str(body.get("description") or "")
    data = world.lease_acquire(m, _nonce(request), ttl, description)
    return web.json_response(data, status=201)


async def release_lease(request: web.Request) -> web.Response:
    world = world_of(request)
    m = _machine(request)
    return web.json_response(world.lease_release(m, _nonce(request)))


def add_routes(r: web.UrlDispatcher) -> None:
    """Mount the Machines API; a route's name is the call recorded in ``World.mutations``."""
    base = "/v1/apps/{app}/machines"
    r.add_get("/v1/apps", list_apps, name="list_apps")
    r.add_get(base, list_machines, name="list")
    r.add_get(base + "/{id}", get_machine, name="get")
    r.add_post(base + "/{id}", update_machine, name="update")
    r.add_post(base + "/{id}/start", start_machine, name="start")
    r.add_post(base + "/{id}/stop", stop_machine, name="stop")
    r.add_post(base + "/{id}/restart", restart_machine, name="restart")
    r.add_get(base + "/{id}/wait", wait_machine, name="wait")
    r.add_get(base + "/{id}/events", machine_events, name="events")
    r.add_get(base + "/{id}/lease", get_lease, name="lease_get")
    r.add_post(base + "/{id}/lease", acquire_lease, name="lease_acquire")
    r.add_delete(base + "/{id}/lease", release_lease, name="lease_release")
