"""The simulator's HTTP face: one aiohttp server with every Fly endpoint the daemon uses.

=========================================  ============================================
path                                       what
=========================================  ============================================
``/v1/apps/{app}/machines…``               Machines API (list, get, start, stop, restart,
                                           update, wait, events, leases)
``POST /graphql``                          GraphQL releases query (``graphql.py``)
``GET /api/v1/apps/{app}/logs``            logs polling API (what ``fly logs`` polls)
``GET /metrics``                           Fly's edge and instance series (Prometheus text)
``/apps/{app}/…``                          the app's public URL, through the proxy
=========================================  ============================================

The Machines API, GraphQL and logs need ``Authorization: Bearer <token>`` or
``FlyV1 <token>`` (anything else: 401) and answer 503 or hang during ``fly_api_down``. Errors
are Fly's JSON body ``{"error": "…", "status": "unknown"}``. Every response carries a
``fly-request-id`` header. ``/metrics`` and the public URLs need no token, as on Fly.

Every Machines API mutation received (whatever the answer) is appended to
``World.mutations`` as ``{"at_s", "app", "machine", "call", "status"}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hotdash_watch.clock import Clock
from hotdash_watch.sim.graphql import ObjectType, execute
from hotdash_watch.sim.ids import IdSource, rfc3339
from hotdash_watch.sim.machines_api import SETTLED
from hotdash_watch.sim.model import ApiError, Release, SimMachine
from hotdash_watch.sim.proxy import PROXY_WAIT_S
from hotdash_watch.sim.spec import Scenario
from hotdash_watch.sim.world import World

RELEASE_USER = {"id": "Kx81q", "email": "ci-bot@hotdash.example", "name": "CI Bot"}

__all__ = ["SimServer", "build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WAIT_MAX_S = 60
OUTAGE_HANG_MAX_S = 300.0
API_PREFIXES = ("/v1/", "/graphql", "/api/")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WORLD_KEY = web.AppKey("world", World)
TOKEN_KEY = web.AppKey("token", str)
IDS_KEY = web.AppKey("request_ids", IdSource)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": "unknown"}, status=status,
                             headers=headers)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme in ("Bearer", "FlyV1") and value.strip() == token


def _world(request: web.Request) -> World:
    return request.app[WORLD_KEY]


def _machine(request: web.Request) -> SimMachine:
    return _world(request).machine(request.match_info["app"], request.match_info["id"])


def _nonce(request: web.Request) -> str | None:
    return request.headers.get("fly-machine-lease-nonce") or None


async def _json_body(request: web.Request, *, required: bool) -> Any:
    if not request.can_read_body:
        if required:
            raise ApiError(400, "invalid request: a JSON body is required")
        return None
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid request: the body is not valid JSON") from None


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    world.step_to()
    if request.path.startswith(API_PREFIXES):
        response = await _api(request, handler, world)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as e:
            response = web.Response(status=e.status, text=f"{e.status} {e.reason}")
    rid = request.app[IDS_KEY].ulid(world.ts(world.now))
    response.headers["fly-request-id"] = f"{rid}-{_region(world)}"
    return response


def _region(world: World) -> str:
    return next(iter(world.apps.values())).spec.region if world.apps else "iad"


async def _api(request: web.Request, handler: Handler, world: World) -> web.StreamResponse:
    """Outage, auth and error translation for the Fly APIs; records every mutation."""
    response: web.StreamResponse
    if world.api_down():
        if world.api_outage_hangs():
            waited = 0.0
            while world.api_down() and not world.stopping and waited < OUTAGE_HANG_MAX_S:
                await world.pause(1.0)
                waited += 1.0
                world.step_to()
        response = _error(503, "the Fly API is unavailable (simulated outage), try again later")
    elif not _authorized(request, request.app[TOKEN_KEY]):
        response = _error(401, "You must be authenticated to view this.")
    else:
        try:
            response = await handler(request)
        except ApiError as e:
            response = _error(e.status, e.message, e.headers)
        except web.HTTPException as e:
            response = _error(e.status, f"{e.reason}: {request.method} {request.path}")
    if request.method in MUTATING and request.path.startswith("/v1/apps/"):
        route = request.match_info.route
        call = route.name or request.path.rstrip("/").rsplit("/", 1)[-1]
        world.record_mutation(request.match_info.get("app", ""), request.match_info.get("id", ""),
                              call, response.status)
    return response


# ------------------------------------------------------------------ Machines API


async def list_apps(request: web.Request) -> web.Response:
    world = _world(request)
    apps = [{"name": a.name, "id": a.name, "status": "deployed",
             "machine_count": len(a.machines), "organization": {"slug": "hotdash"}}
            for a in world.apps.values()]
    return web.json_response({"total_apps": len(apps), "apps": apps})


async def list_machines(request: web.Request) -> web.Response:
    world = _world(request)
    states = {s for v in request.query.getall("state", []) for s in v.split(",") if s}
    metadata = {k.removeprefix("metadata."): v for k, v in request.query.items()
                if k.startswith("metadata.")}
    return web.json_response(world.list_machines(
        request.match_info["app"], states=states or None, region=request.query.get("region"),
        summary=_flag(request, "summary"), include_leases=_flag(request, "include_leases"),
        metadata=metadata or None))


async def get_machine(request: web.Request) -> web.Response:
    world = _world(request)
    m = _machine(request)
    world.rate_limit(m, "get", read=True)
    return web.json_response(world.machine_json(m, include_lease=_flag(request, "include_leases")))


async def update_machine(request: web.Request) -> web.Response:
    world = _world(request)
    m = _machine(request)
    world.rate_limit(m, "update")
    world.check_lease(m, _nonce(request))
    body = await _json_body(request, required=True)
    return web.json_response(world.update(m, body))


async def start_machine(request: web.Request) -> web.Response:
    world = _world(request)
    m = _machine(request)
    world.rate_limit(m, "start")
    world.check_lease(m, _nonce(request))
    return web.json_response(world.start(m))


async def stop_machine(request: web.Request) -> web.Response:
    world = _world(request)
    m = _machine(request)
    world.rate_limit(m, "stop")
    world.check_lease(m, _nonce(request))
    body = await _json_body(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise ApiError(400, "invalid request: the body must be an object")
    return web.json_response(world.stop(m, body))


async def restart_machine(request: web.Request) -> web.Response:
    world = _world(request)
    m = _machine(request)
    world.rate_limit(m, "restart")
    world.check_lease(m, _nonce(request))
    return web.json_response(world.restart(m, request.query.get("signal")))


async def wait_machine(request: web.Request) -> web.Response:
    world = _world(request)
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
    world = _world(request)
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
    return web.json_response(_world(request).lease_get(_machine(request)))


async def acquire_lease(request: web.Request) -> web.Response:
    world = _world(request)
    m = _machine(request)
    world.rate_limit(m, "lease")
    body = await _json_body(request, required=False) or {}
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
    world = _world(request)
    m = _machine(request)
    return web.json_response(world.lease_release(m, _nonce(request)))


# ---------------------------------------------------------------- GraphQL, logs


def release_schema(world: World) -> ObjectType:
    """The slice of Fly's GraphQL schema the releases query needs, over ``world``."""

    def scalar(fn: Callable[[Any], Any]) -> tuple[Callable[[Any, Any], Any], None]:
        return (lambda parent, _args: fn(parent)), None

    user = ObjectType("User", {k: scalar(lambda u, k=k: u[k]) for k in ("id", "email", "name")})
    release = ObjectType("Release", {
        "id": scalar(lambda r: r.id),
        "version": scalar(lambda r: r.version),
        "description": scalar(lambda r: "Deploy image"),
        "reason": scalar(lambda r: "deploy"),
        "status": scalar(lambda r: r.status),
        "imageRef": scalar(lambda r: r.image),
        "stable": scalar(lambda r: r.stable),
        "inProgress": scalar(lambda r: r.status == "running"),
        "deploymentStrategy": scalar(lambda r: r.strategy),
        "evaluationId": scalar(lambda r: None),
        "createdAt": scalar(lambda r: rfc3339(world.ts(r.created_s))),
        "updatedAt": scalar(lambda r: rfc3339(world.ts(r.updated_s))),
        "user": ((lambda r, _a: dict(RELEASE_USER)), user),
    })
    page_info = ObjectType("PageInfo", {
        k: scalar(lambda p, k=k: p[k])
        for k in ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")
    })
    connection = ObjectType("ReleaseConnection", {
        "nodes": ((lambda c, _a: c["nodes"]), release),
        "totalCount": scalar(lambda c: c["totalCount"]),
        "pageInfo": ((lambda c, _a: c["pageInfo"]), page_info),
    })

    def releases(app_name: str, args: Any) -> dict[str, Any]:
        rels: list[Release] = world.releases(app_name)
        total = len(rels)
        if args.get("status"):
            rels = [r for r in rels if r.status.lower() == str(args["status"]).lower()]
        first, last = args.get("first"), args.get("last")
        if isinstance(first, int):
            rels = rels[:max(first, 0)]
        elif isinstance(last, int):
            rels = rels[-last:] if last > 0 else []
        return {"nodes": rels, "totalCount": total, "pageInfo": {
            "hasNextPage": len(rels) < total, "hasPreviousPage": False,
            "startCursor": "MQ" if rels else None, "endCursor": None}}

    def current(app_name: str, _args: Any) -> Release | None:
        rels = world.releases(app_name)
        return rels[0] if rels else None

    app = ObjectType("App", {
        "id": scalar(lambda a: a),
        "name": scalar(lambda a: a),
        "status": scalar(lambda a: "deployed"),
        "releasesUnprocessed": (releases, connection),
        "releases": (releases, connection),
        "currentReleaseUnprocessed": (current, release),
        "currentRelease": (current, release),
    })

    def find_app(_parent: Any, args: Any) -> str:
        name = args.get("name")
        if name not in world.apps:
            raise LookupError("Could not find App")
        return str(name)

    return ObjectType("Query", {"app": (find_app, app)})


async def graphql(request: web.Request) -> web.Response:
    body = await _json_body(request, required=True)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return web.json_response({"errors": [{"message": "No query string was present"}]})
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        return web.json_response({"errors": [{"message": "variables must be an object"}]})
    return web.json_response(execute(release_schema(_world(request)), body["query"], variables))


async def logs(request: web.Request) -> web.Response:
    world = _world(request)
    q = request.query
    return web.json_response(world.logs_page(
        request.match_info["app"], q.get("next_token") or None, q.get("instance") or None,
        q.get("region") or None))


# ------------------------------------------------------------- metrics, proxy


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=_world(request).metrics_text(),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def proxy(request: web.Request) -> web.StreamResponse:
    """The app's public URL: Fly's proxy picks a machine (autostart), which answers."""
    world = _world(request)
    name = request.match_info["app"]
    path = "/" + request.match_info["tail"]
    app = world.apps.get(name)
    if app is None:
        return web.Response(status=404, text="404 page not found")
    if world.partitioned(name):
        return await _partitioned(request, world, name)
    t_start = world.t()
    m = world.route(app)
    while m is None and world.can_wait(app) and not world.stopping:
        if world.t() - t_start >= PROXY_WAIT_S:
            break
        await world.pause(0.25)
        world.step_to()
        m = world.route(app)
    waited = max(0.0, world.t() - t_start)
    if m is None:
        world.no_machine(app, waited)
        return web.Response(status=503, text="no machine is available to serve this request")
    status, latency, body = world.serve(app, m, path, log_all=True, method=request.method)
    await world.pause(latency)
    world.step_to()
    world.record_edge(app, status, waited + latency)
    return web.Response(status=status, text=body)


async def _partitioned(request: web.Request, world: World, name: str) -> web.StreamResponse:
    """The watcher cannot reach the app: hang, or drop the connection without a response."""
    if world.partition_hangs(name):
        while world.partitioned(name) and not world.stopping:
            await world.pause(1.0)
            world.step_to()
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)


# ---------------------------------------------------------------------- server


def build_app(world: World, token: str) -> web.Application:
    """The aiohttp application serving ``world`` with ``token`` as the only valid token."""
    app = web.Application(middlewares=[_middleware])
    app[WORLD_KEY] = world
    app[TOKEN_KEY] = token
    app[IDS_KEY] = IdSource(world.scenario.seed, "requests")
    base = "/v1/apps/{app}/machines"
    r = app.router
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
    r.add_post("/graphql", graphql, name="graphql")
    r.add_get("/api/v1/apps/{app}/logs", logs, name="logs")
    r.add_get("/metrics", metrics, name="metrics")
    r.add_route("*", "/apps/{app}/{tail:.*}", proxy, name="proxy")
    return app


class SimServer:
    """The Fly simulator as a real HTTP server on a local port, driven by ``clock``."""

    def __init__(self, scenario: Scenario, clock: Clock, *, token: str = "sim-token",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.clock = clock
        self.token = token
        self.host = host
        self.port = port
        self.world = World(scenario, clock)
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def machines_url(self) -> str:
        """Base URL of the Machines API (paths start ``/v1/apps/…``)."""
        return self.base_url

    @property
    def api_url(self) -> str:
        """Base URL of GraphQL (``POST /graphql``) and logs (``/api/v1/apps/{app}/logs``)."""
        return self.base_url

    @property
    def metrics_url(self) -> str:
        return f"{self.base_url}/metrics"

    def health_url(self, app: str) -> str:
        """The app's public health URL, through the simulated proxy."""
        return f"{self.base_url}/apps/{app}/health"

    async def start(self) -> None:
        """Bind, start the world's background task; world time 0 is now."""
        if self._runner is not None:
            return
        self.world.begin()
        runner = web.AppRunner(build_app(self.world, self.token), access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{host}:{self.port}"
        self._task = asyncio.create_task(self.world.run(), name="hotdash-sim-world")

    async def stop(self) -> None:
        """Cancel the background task, wake waiting requests and close the server."""
        self.world.shutdown()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
