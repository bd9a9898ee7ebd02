"""Machines as the Machines API reports them: ``Machine`` and its ``Lease``.

``parse_machine`` reads one Machine object (``GET /machines/{id}``, the answer to an update),
``parse_machines`` the list, ``parse_lease`` the answer to taking a lease. A machine's events
and checks are read by ``models.events``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hotdash_watch.fly.models.events import (
    CheckStatus,
    MachineEvent,
    _Check,
    _Event,
    checks_from_wire,
    event_from_wire,
    newest_first,
)
from hotdash_watch.fly.models.payload import (
    PayloadError,
    Time,
    WireModel,
    opt_time,
    plain,
    validate,
)

__all__ = [
    "APP_EXCLUDED_PROCESS_GROUPS",
    "Lease",
    "Machine",
    "parse_lease",
    "parse_machine",
    "parse_machines",
]

#: Process groups of machines that are not the app's own (release command, console).
APP_EXCLUDED_PROCESS_GROUPS = frozenset({"fly_app_release_command", "fly_app_console"})
_GONE_STATES = frozenset({"destroyed", "destroying"})


# --- the values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """A Fly Machine as the Machines API reports it.

    ``config`` is a read-only deep copy of the raw config (kept for ``update``, which needs
    the full config back); ``config_copy()`` gives a mutable copy to edit. ``incomplete`` is
    True when the host is unreachable and only ``incomplete_config`` came back: never update
    or clone from it. ``events`` are newest first.
    """

    id: str
    name: str
    state: str
    region: str
    instance_id: str
    image: str
    memory_mb: int | None
    cpus: int | None
    cpu_kind: str | None
    process_group: str | None
    release_version: str | None
    host_status: str
    checks: tuple[CheckStatus, ...]
    events: tuple[MachineEvent, ...]
    autostop: bool | str | None
    autostart: bool | None
    is_standby: bool
    restart_policy: str | None
    config: Mapping[str, Any] = field(repr=False, hash=False)
    incomplete: bool = False
    cordoned: bool = False
    updated_at: float | None = None

    @property
    def checks_passing(self) -> bool | None:
        """True when every check passes, False when one does not, None without checks."""
        if not self.checks:
            return None
        return all(c.status == "passing" for c in self.checks)

    @property
    def latest_exit(self) -> MachineEvent | None:
        """The newest exit event, if the history holds one."""
        for event in self.events:
            if event.type == "exit" or event.exit is not None:
                return event
        return None

    @property
    def autostopped(self) -> bool:
        """Stopped or suspended on purpose: the newest exit was a requested stop."""
        if self.state not in ("stopped", "suspended"):
            return False
        latest = self.latest_exit
        return latest is not None and latest.exit is not None and latest.exit.requested_stop

    @property
    def is_app_machine(self) -> bool:
        """One of the app's own machines: not a release-command or console machine, not gone."""
        return (
            self.process_group not in APP_EXCLUDED_PROCESS_GROUPS and self.state not in _GONE_STATES
        )

    def config_copy(self) -> dict[str, Any]:
        """A mutable deep copy of ``config``, to change and send back with ``update``."""
        return plain(self.config)


@dataclass(frozen=True, slots=True)
class Lease:
    """A machine lease; ``nonce`` goes in the ``fly-machine-lease-nonce`` header of writes."""

    nonce: str
    expires_at: float | None
    owner: str | None
    description: str | None
    version: str | None


# --- wire models (private; their class names appear in PayloadError messages) -------------------


class _ImageRef(WireModel):
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None


class _Guest(WireModel):
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None


class _Service(WireModel):
    autostop: bool | str | None = None
    autostart: bool | None = None


class _RestartPolicy(WireModel):
    policy: str | None = None


class _Config(WireModel):
    image: str | None = None
    guest: _Guest | None = None
    metadata: dict[str, Any] | None = None
    services: list[_Service] | None = None
    standbys: list[Any] | None = None
    restart: _RestartPolicy | None = None


class _Machine(WireModel):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    instance_id: str | None = None
    image_ref: _ImageRef | None = None
    config: dict[str, Any] | None = None
    incomplete_config: dict[str, Any] | None = None
    checks: list[_Check] | None = None
    events: list[_Event] | None = None
    host_status: str | None = None
    cordoned: bool | None = None
    updated_at: Time | None = None


class _LeaseData(WireModel):
    nonce: str
    expires_at: Time | None = None
    owner: str | None = None
    description: str | None = None
    version: str | None = None


# --- parsing --------------------------------------------------------------------------------------


def _image_from_ref(ref: _ImageRef | None) -> str:
    if ref is None or not ref.repository:
        return ""
    image = f"{ref.registry}/{ref.repository}" if ref.registry else ref.repository
    if ref.tag:
        image += f":{ref.tag}"
    elif ref.digest:
        image += f"@{ref.digest}"
    return image


def _normalise_autostop(value: bool | str | None) -> bool | str | None:
    """Responses say false (off), true (stop) or "suspend"; requests may say "off"/"stop"."""
    if isinstance(value, str):
        lowered = value.lower()
        if lowered == "off":
            return False
        if lowered == "stop":
            return True
        return lowered
    return value


def _json_copy(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists, scalars): what ``copy.deepcopy`` does for it,
    several times faster (no memo; JSON has no cycles or shared nodes to keep)."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    return [_json_copy(v) for v in value] if isinstance(value, list) else value


def _machine(w: _Machine) -> Machine:
    raw_config = w.config if w.config is not None else (w.incomplete_config or {})
    cfg = validate(_Config, raw_config, "machine config")
    guest = cfg.guest or _Guest()
    metadata = cfg.metadata or {}
    first_service = cfg.services[0] if cfg.services else None
    group = metadata.get("fly_process_group")
    release = metadata.get("fly_release_version")
    checks = checks_from_wire(w.checks or ())
    host_status = w.host_status or ("ok" if w.config is not None else "unknown")
    return Machine(
        id=w.id,
        name=w.name or "",
        state=w.state or "",
        region=w.region or "",
        instance_id=w.instance_id or "",
        image=cfg.image or _image_from_ref(w.image_ref),
        memory_mb=guest.memory_mb,
        cpus=guest.cpus,
        cpu_kind=guest.cpu_kind,
        process_group=None if group is None else str(group),
        release_version=None if release is None else str(release),
        host_status=host_status,
        checks=checks,
        events=newest_first(event_from_wire(e) for e in (w.events or ())),
        autostop=_normalise_autostop(first_service.autostop) if first_service else None,
        autostart=first_service.autostart if first_service else None,
        is_standby=bool(cfg.standbys),
        restart_policy=cfg.restart.policy if cfg.restart else None,
        config=MappingProxyType(_json_copy(raw_config)),
        incomplete=w.config is None,
        cordoned=bool(w.cordoned),
        updated_at=opt_time(w.updated_at),
    )


def parse_machine(data: Any) -> Machine:
    """A ``Machine`` from one Machine object (``GET /machines/{id}``, update's answer)."""
    return _machine(validate(_Machine, data, "machine"))


def parse_machines(data: Any) -> list[Machine]:
    """Every machine of a ``GET /machines`` array (no filtering: see ``Machine.is_app_machine``)."""
    if not isinstance(data, list):
        raise PayloadError("unexpected machine list JSON: not an array")
    return [parse_machine(item) for item in data]


def parse_lease(data: Any) -> Lease:
    """A ``Lease`` from ``{"status": "success", "data": {...}}`` or the bare object."""
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    w = validate(_LeaseData, data, "lease")
    return Lease(
        nonce=w.nonce,
        expires_at=opt_time(w.expires_at),
        owner=w.owner or None,
        description=w.description,
        version=w.version or None,
    )
