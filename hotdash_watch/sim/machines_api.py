"""The Machines API's verbs on the simulated machines: list, get, start, stop, restart, update,
wait, events and leases, with Fly's rate limits, lease checks and refusals (``ApiError``), and
the JSON shapes it answers with. No HTTP here (``routes/machines.py`` serves these).

A verb changes a machine only through flyd; an update also tells the active faults (a raised
memory or a rolled-back image may cure one: ``ApiEffects``).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

from hotdash_watch.sim.flyd import HIDDEN_CHECK_STATES, Flyd
from hotdash_watch.sim.ids import IdSource, epoch_ms, rfc3339
from hotdash_watch.sim.model import (
    ApiError,
    Bucket,
    Event,
    Lease,
    SimApp,
    SimMachine,
    Timeline,
    app_named,
)

__all__ = ["SETTLED", "SIM_OWNER", "ApiEffects", "MachinesApi"]

SIM_OWNER = "sim-user@hotdash.example"
MUTATION_RATE = (1.0, 3.0)  # tokens per scenario second, burst
GET_RATE = (5.0, 10.0)
SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM")
SETTLED = ("started", "stopped", "suspended", "failed", "destroyed")
EMBEDDED_EVENTS = 5


class ApiEffects(Protocol):
    """What the Machines API tells the active faults."""

    def updated(self, m: SimMachine, cause: str) -> None:
        """``m``'s config was just replaced (by ``cause``, e.g. "update")."""
        ...


class MachinesApi:
    """The Machines API's verbs; ``mutations`` lists every mutation received and its answer."""

    def __init__(self, timeline: Timeline, apps: Mapping[str, SimApp], ids: IdSource,
                 flyd: Flyd, effects: ApiEffects) -> None:
        self.timeline = timeline
        self.apps = apps
        self.ids = ids
        self.flyd = flyd
        self.effects = effects
        self.mutations: list[dict[str, Any]] = []

    def record_mutation(self, app: str, machine: str, call: str, status: int) -> None:
        """Remember one Machines API mutation the simulator received, and its answer."""
        self.mutations.append({"at_s": round(self.timeline.now, 3), "app": app,
                               "machine": machine, "call": call, "status": status})

    def rate_limit(self, m: SimMachine, action: str, *, read: bool = False) -> None:
        """Fly's per-machine, per-action rate limit; ``ApiError(429)`` with Retry-After."""
        now = self.timeline.now
        rate, burst = GET_RATE if read else MUTATION_RATE
        bucket = m.buckets.get(action)
        if bucket is None:
            bucket = m.buckets[action] = Bucket(rate, burst, burst, now)
        wait = bucket.take(now)
        if wait is not None:
            raise ApiError(429, f"rate limit exceeded for {action} on machine {m.id}, "
                           "try again later", {"Retry-After": str(max(1, math.ceil(wait)))})

    # ------------------------------------------------------------- verbs

    def list_machines(self, app: str, *, states: set[str] | None = None,
                      region: str | None = None, summary: bool = False,
                      include_leases: bool = False,
                      metadata: dict[str, str] | None = None) -> list[dict[str, Any]]:
        out = []
        for m in app_named(self.apps, app).machines:
            if states and m.state not in states:
                continue
            if region and m.region != region:
                continue
            meta = m.config.get("metadata") or {}
            if metadata and any(meta.get(k) != v for k, v in metadata.items()):
                continue
            out.append(self.machine_json(m, summary=summary, include_lease=include_leases))
        return out

    def start(self, m: SimMachine) -> dict[str, Any]:
        previous = m.state
        if m.state in ("stopped", "suspended", "created", "failed"):
            self.flyd.begin_start(m, "api")
        elif m.state not in ("started", "starting"):
            raise ApiError(412, f"unable to start machine from current state: {m.state}")
        return {"previous_state": previous, "migrated": False, "new_host": ""}

    def stop(self, m: SimMachine, body: dict[str, Any] | None) -> dict[str, Any]:
        body = body or {}
        signal = body.get("signal")
        if signal is not None and signal not in SIGNALS and signal not in (9, 15, 2):
            raise ApiError(400, f"invalid signal: {signal!r}")
        timeout = body.get("timeout")
        if timeout is not None and not _is_duration(timeout):
            raise ApiError(400, f"invalid timeout: {timeout!r} (a duration such as \"10s\")")
        if m.state in ("stopped", "suspended", "created"):
            raise ApiError(409, "unable to stop machine, not currently started")
        if m.state == "stopping":
            return {"ok": True}
        if m.state not in ("started", "starting", "failed"):
            raise ApiError(412, f"unable to stop machine from current state: {m.state}")
        self.flyd.begin_stop(m, "api")
        return {"ok": True}

    def restart(self, m: SimMachine, signal: str | None) -> dict[str, Any]:
        if signal and signal not in SIGNALS:
            raise ApiError(400, f"invalid signal: {signal!r}")
        if m.state != "started":
            raise ApiError(409, "unable to restart machine, not currently started")
        self.flyd.begin_restart(m)
        return {"ok": True}

    def update(self, m: SimMachine, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            raise ApiError(400, "invalid request: config is required (the full machine config; "
                           "partial updates are not supported)")
        cfg = copy.deepcopy(body["config"])
        image = cfg.get("image")
        if not isinstance(image, str) or not image:
            raise ApiError(400, "invalid config: image is required")
        for key, current in (("name", m.name), ("region", m.region)):
            if body.get(key) not in (None, current):
                raise ApiError(400, f"invalid request: {key} cannot be changed")
        version = body.get("current_version")
        if version not in (None, "") and version != m.instance_id:
            raise ApiError(409, f"machine {m.id} current_version mismatch: the machine is at "
                           f"version {m.instance_id}, not {version}")
        if m.state not in ("started", "stopped", "suspended", "created", "failed"):
            raise ApiError(412, f"unable to update machine from current state: {m.state}")
        _normalize_config(cfg)
        skip_launch = bool(body.get("skip_launch", False))
        m.config = cfg
        launch = not skip_launch or m.state in ("started", "failed")  # running ones reboot
        self.flyd.begin_replace(m, launch=launch, cause="update")
        self.effects.updated(m, "update")
        return self.machine_json(m)

    def wait_result(self, m: SimMachine, states: set[str], version: str | None
                    ) -> dict[str, Any] | None:
        """The wait endpoint's answer once ``m`` is in one of ``states`` (at ``version``)."""
        if version and version != m.instance_id:
            return None
        wanted = states
        if "settled" in wanted:
            wanted = (wanted - {"settled"}) | set(SETTLED)
        if m.state not in wanted or m.flyd_pending:
            return None
        event = m.events[-1] if m.events else None
        return {"ok": True, "state": m.state, "event_id": event.id if event else "",
                "version": m.instance_id}

    def check_wait_version(self, m: SimMachine, version: str | None) -> None:
        if version and version != m.instance_id:
            if version in m.versions:
                raise ApiError(400, f"machine {m.id} version {version} is currently replaced "
                               f"(current version {m.instance_id})")
            raise ApiError(404, f"machine {m.id} has no version {version}")

    def events(self, m: SimMachine, limit: int) -> list[dict[str, Any]]:
        return [self.event_json(e) for e in reversed(m.events[-limit:])]

    # ------------------------------------------------------------- leases

    def _live_lease(self, m: SimMachine) -> Lease | None:
        if m.lease is not None and m.lease.expires_s <= self.timeline.now:
            m.lease = None
        return m.lease

    def _held(self, m: SimMachine, lease: Lease) -> ApiError:
        return ApiError(409, f"aborted: machine ID {m.id} lease currently held by "
                        f"{lease.owner}, expires at "
                        f"{rfc3339(self.timeline.ts(lease.expires_s))}")

    def check_lease(self, m: SimMachine, nonce: str | None) -> None:
        """A write to a leased machine needs the lease's nonce; ``ApiError(409)`` otherwise."""
        lease = self._live_lease(m)
        if lease is not None and nonce != lease.nonce:
            raise self._held(m, lease)

    def lease_json(self, lease: Lease) -> dict[str, Any]:
        return {"status": "success", "data": {
            "nonce": lease.nonce, "expires_at": int(self.timeline.ts(lease.expires_s)),
            "owner": lease.owner, "description": lease.description, "version": lease.version}}

    def lease_get(self, m: SimMachine) -> dict[str, Any]:
        lease = self._live_lease(m)
        if lease is None:
            raise ApiError(404, f"no lease on machine {m.id}")
        return self.lease_json(lease)

    def lease_acquire(self, m: SimMachine, nonce: str | None, ttl: float,
                      description: str, owner: str = SIM_OWNER) -> dict[str, Any]:
        now = self.timeline.now
        lease = self._live_lease(m)
        if lease is not None:
            if nonce != lease.nonce:
                raise self._held(m, lease)
            lease.expires_s = now + ttl
            lease.description = description or lease.description
            lease.version = m.instance_id
            return self.lease_json(lease)
        m.lease = Lease(self.ids.hex(12), owner, description, now + ttl, m.instance_id)
        return self.lease_json(m.lease)

    def lease_release(self, m: SimMachine, nonce: str | None) -> dict[str, Any]:
        lease = self._live_lease(m)
        if lease is None:
            raise ApiError(404, f"no lease on machine {m.id}")
        if not nonce:
            raise ApiError(400, "fly-machine-lease-nonce header is required to release a lease")
        if nonce != lease.nonce:
            raise self._held(m, lease)
        m.lease = None
        return {"status": "success"}

    def hold_lease(self, m: SimMachine, owner: str, ttl_s: float, description: str) -> str:
        """Lease ``m`` as someone else would (a running deploy); returns the nonce."""
        m.lease = None
        data = self.lease_acquire(m, None, ttl_s, description, owner=owner)
        return str(data["data"]["nonce"])

    # ---------------------------------------------------------- rendering

    def machine_json(self, m: SimMachine, *, summary: bool = False,
                     include_lease: bool = False) -> dict[str, Any]:
        """The Machines API object for ``m`` (tests/fixtures/machines-list.json has the shape)."""
        ts = self.timeline.ts
        out: dict[str, Any] = {
            "id": m.id,
            "name": m.name,
            "state": m.state,
            "region": m.region,
            "instance_id": m.instance_id,
            "private_ip": m.private_ip,
            "image_ref": _image_ref(m.image),
        }
        if not summary:
            out["config"] = _json_copy(m.config)
        out["cordoned"] = False
        if not summary:
            out["host_status"] = "ok"
        out["created_at"] = rfc3339(ts(m.created_s))
        out["updated_at"] = rfc3339(ts(m.updated_s))
        if not summary:
            if m.state not in HIDDEN_CHECK_STATES:
                out["checks"] = [
                    {"name": name, "status": c.status, "output": c.output,
                     "updated_at": rfc3339(ts(c.changed_s), 3)}
                    for name, c in m.checks.items()
                ]
            out["events"] = [self.event_json(e, with_id=False)
                             for e in reversed(m.events[-EMBEDDED_EVENTS:])]
        if include_lease:
            lease = self._live_lease(m)
            if lease is not None:
                out["lease"] = {"owner": lease.owner, "description": lease.description,
                                "expires_at": int(ts(lease.expires_s)),
                                "nonce": lease.nonce, "version": lease.version}
        return out

    def event_json(self, e: Event, *, with_id: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": e.id} if with_id else {}
        out.update(type=e.type, status=e.status, source=e.source,
                   timestamp=epoch_ms(self.timeline.ts(e.t)))
        if e.request is not None:
            out["request"] = copy.deepcopy(e.request)
        return out


def _image_ref(image: str) -> dict[str, Any]:
    registry, _, rest = image.partition("/")
    if not rest or ("." not in registry and ":" not in registry):
        registry, rest = "docker-hub-mirror.fly.io", image
    repository, _, tag = rest.partition(":")
    digest = hashlib.sha256(image.encode()).hexdigest()
    return {"registry": registry, "repository": repository, "tag": tag or "latest",
            "digest": f"sha256:{digest}", "labels": {}}


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (a response must never share the world's own dicts)."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    return [_json_copy(v) for v in value] if isinstance(value, list) else value


def _autostop_json(value: Any) -> bool | str:
    """Autostop as responses show it: false (off), true (stop) or "suspend"."""
    if value in ("suspend",):
        return "suspend"
    if isinstance(value, bool):
        return value
    return value == "stop"


_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def _is_duration(value: Any) -> bool:
    """A Go duration string ("10s", "1m30s") or a number (fly-go accepts both)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value >= 0
    return isinstance(value, str) and bool(_DURATION.match(value))


def _normalize_config(cfg: dict[str, Any]) -> None:
    """Apply Fly's defaults and checks to an update's config; ``ApiError`` when invalid."""
    guest = cfg.get("guest")
    if guest is None:
        guest = cfg["guest"] = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    if not isinstance(guest, dict):
        raise ApiError(400, "invalid config: guest must be an object")
    kind = guest.setdefault("cpu_kind", "shared")
    cpus = guest.setdefault("cpus", 1)
    mem = guest.setdefault("memory_mb", 256)
    for key, value in (("cpus", cpus), ("memory_mb", mem)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ApiError(400, f"invalid config: guest.{key} must be a positive integer")
    if kind == "shared":
        if cpus not in (1, 2, 4, 6, 8) or mem % 256 or not 256 * cpus <= mem <= 2048 * cpus:
            raise ApiError(422, f"invalid guest: {cpus} shared CPU(s) take memory in multiples "
                           f"of 256 MB between {256 * cpus} and {2048 * cpus} MB (got {mem} MB)")
    elif kind == "performance":
        if cpus not in (1, 2, 4, 8, 16) or mem % 1024 or not 2048 * cpus <= mem <= 8192 * cpus:
            raise ApiError(422, f"invalid guest: {cpus} performance CPU(s) take memory in "
                           f"multiples of 1024 MB between {2048 * cpus} and {8192 * cpus} MB "
                           f"(got {mem} MB)")
    else:
        raise ApiError(400, f"invalid config: guest.cpu_kind {kind!r} is not shared or "
                       "performance")
    for svc in cfg.get("services") or []:
        if isinstance(svc, dict) and "autostop" in svc:
            svc["autostop"] = _autostop_json(svc["autostop"])
