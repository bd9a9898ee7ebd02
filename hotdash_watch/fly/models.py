"""What the Fly APIs answer, as frozen values, and the functions that parse it.

Response bodies are untrusted JSON: they are read through private pydantic models that ignore
unknown fields, then turned into the frozen dataclasses below, which are what the rest of the
daemon sees. Enum-like strings (states, event types, check statuses, release statuses) are kept
as given: a value Fly adds tomorrow is data, never an error. A body of the wrong shape raises
``PayloadError`` (a ``ValueError``), which the client reports as ``FlyMalformed``.

Times are epoch seconds (floats) everywhere. Fly sends them in several formats: event
timestamps in epoch milliseconds, ``exited_at`` as RFC 3339 or epoch milliseconds, log
timestamps as RFC 3339 with nanoseconds, Prometheus values with float epoch seconds;
``parse_time`` reads them all.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "APP_EXCLUDED_PROCESS_GROUPS",
    "CheckStatus",
    "ExitInfo",
    "Lease",
    "LogLine",
    "LogPage",
    "Machine",
    "MachineEvent",
    "PayloadError",
    "Release",
    "Sample",
    "parse_events",
    "parse_lease",
    "parse_log_page",
    "parse_machine",
    "parse_machines",
    "parse_prometheus",
    "parse_releases",
    "parse_time",
]

#: Process groups of machines that are not the app's own (release command, console).
APP_EXCLUDED_PROCESS_GROUPS = frozenset({"fly_app_release_command", "fly_app_console"})
_GONE_STATES = frozenset({"destroyed", "destroying"})
_COMPAT_CHECK_PREFIX = "bg_deployments_compat"
# An epoch number above this is in milliseconds (1e11 seconds is the year 5138).
_MS_THRESHOLD = 1e11


class PayloadError(ValueError):
    """A response body does not have the shape expected. The message names the fields only."""


# --- times ----------------------------------------------------------------------------------------


def parse_time(value: str | float | int) -> float:
    """Epoch seconds from RFC 3339 text, or from epoch seconds/milliseconds (number or digits).

    A number above 1e11 is read as milliseconds, anything smaller as seconds. A naive
    timestamp is taken as UTC. Fractions finer than microseconds are dropped.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isnan(number):
            return _parse_rfc3339(text)
    if not math.isfinite(number):
        raise ValueError("time is not a finite number")
    return number / 1000.0 if abs(number) > _MS_THRESHOLD else number


def _parse_rfc3339(text: str) -> float:
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        # Python keeps at most 6 fraction digits; Fly sends 9 in logs.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}" if frac else head + tail
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _opt_time(value: str | float | None) -> float | None:
    """``parse_time`` for optional fields: missing or empty is None."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise PayloadError(f"invalid time {str(value)[:40]!r}") from exc


# --- the values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a machine's process ended, from an exit event's ``request.exit_event``."""

    exit_code: int | None
    oom_killed: bool
    requested_stop: bool
    restarting: bool
    exited_at: float | None


@dataclass(frozen=True, slots=True)
class MachineEvent:
    """One entry of a machine's event history; ``timestamp`` in epoch seconds."""

    id: str | None
    type: str
    status: str
    source: str
    timestamp: float
    exit: ExitInfo | None = None
    restart_count: int | None = None


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """A health check's current status; ``updated_at`` is when the status last changed."""

    name: str
    status: str
    output: str
    updated_at: float | None


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
class Release:
    """One release of an app (GraphQL ``releasesUnprocessed``); ``created_at`` epoch seconds."""

    id: str
    version: int
    status: str
    image_ref: str | None
    stable: bool
    created_at: float
    description: str
    reason: str
    user: str | None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line from the logs polling API; ``timestamp`` in epoch seconds."""

    id: str
    timestamp: float
    message: str
    level: str
    instance: str | None
    region: str | None
    provider: str | None


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of log lines and the cursor to ask for the next one."""

    lines: tuple[LogLine, ...]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class Lease:
    """A machine lease; ``nonce`` goes in the ``fly-machine-lease-nonce`` header of writes."""

    nonce: str
    expires_at: float | None
    owner: str | None
    description: str | None
    version: str | None


@dataclass(frozen=True)
class Sample:
    """One value of a series: a Prometheus query result or a scraped ``/metrics`` line."""

    labels: Mapping[str, str] = field(hash=False)
    value: float
    timestamp: float


def plain(value: Any) -> Any:
    """``value`` with every mapping made a dict and every sequence a list (JSON-ready copy)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return copy.copy(value)


# --- wire models (private) ------------------------------------------------------------------------

Time = str | float


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _ExitEvent(_Wire):
    exit_code: int | None = None
    oom_killed: bool | None = None
    requested_stop: bool | None = None
    restarting: bool | None = None
    exited_at: Time | None = None


class _MonitorEvent(_Wire):
    exit_event: _ExitEvent | None = None
    restart_count: int | None = None


class _EventRequest(_Wire):
    exit_event: _ExitEvent | None = None
    MonitorEvent: _MonitorEvent | None = None
    restart_count: int | None = None


class _Event(_Wire):
    id: str | None = None
    type: str = ""
    status: str = ""
    source: str = ""
    timestamp: Time
    # Typed as an opaque object in the spec: only the exit fields are read from it.
    request: dict[str, Any] | None = None


class _Check(_Wire):
    name: str = ""
    status: str = ""
    output: str | None = ""
    updated_at: Time | None = None


class _ImageRef(_Wire):
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None


class _Guest(_Wire):
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None


class _Service(_Wire):
    autostop: bool | str | None = None
    autostart: bool | None = None


class _RestartPolicy(_Wire):
    policy: str | None = None


class _Config(_Wire):
    image: str | None = None
    guest: _Guest | None = None
    metadata: dict[str, Any] | None = None
    services: list[_Service] | None = None
    standbys: list[Any] | None = None
    restart: _RestartPolicy | None = None


class _Machine(_Wire):
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


class _LeaseData(_Wire):
    nonce: str
    expires_at: Time | None = None
    owner: str | None = None
    description: str | None = None
    version: str | None = None


class _User(_Wire):
    id: str | None = None
    email: str | None = None
    name: str | None = None


class _ReleaseNode(_Wire):
    id: str
    version: int
    description: str | None = None
    reason: str | None = None
    status: str | None = None
    imageRef: str | None = None
    stable: bool | None = None
    user: _User | None = None
    createdAt: Time


class _ReleaseConnection(_Wire):
    nodes: list[_ReleaseNode | None]


class _App(_Wire):
    releases: _ReleaseConnection


class _ReleasesData(_Wire):
    app: _App


class _ReleasesBody(_Wire):
    data: _ReleasesData


class _Provider(_Wire):
    provider: str | None = None


class _LogMeta(_Wire):
    instance: str | None = None
    region: str | None = None
    event: _Provider | None = None


class _LogAttributes(_Wire):
    timestamp: Time
    message: str | None = ""
    level: str | None = ""
    instance: str | None = None
    region: str | None = None
    meta: _LogMeta | None = None


class _LogItem(_Wire):
    id: str | None = None
    attributes: _LogAttributes


class _LogPageMeta(_Wire):
    next_token: str | int | None = None


class _LogPage(_Wire):
    data: list[_LogItem] | None = None
    meta: _LogPageMeta | None = None


class _PromSeries(_Wire):
    metric: dict[str, str] = {}
    value: tuple[float, str] | None = None
    values: list[tuple[float, str]] | None = None


class _PromData(_Wire):
    resultType: str
    result: Any


class _PromBody(_Wire):
    status: Literal["success"]
    data: _PromData


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], data: Any, what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(f"unexpected {what} JSON: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """The failing fields and reasons, without the input values (they could be anything)."""
    parts = []
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return "; ".join(parts)


# --- parsing --------------------------------------------------------------------------------------


def _exit_info(ev: _ExitEvent) -> ExitInfo:
    return ExitInfo(
        exit_code=ev.exit_code,
        oom_killed=bool(ev.oom_killed),
        requested_stop=bool(ev.requested_stop),
        restarting=bool(ev.restarting),
        exited_at=_opt_time(ev.exited_at),
    )


def _event(w: _Event) -> MachineEvent:
    exit_info: ExitInfo | None = None
    restart_count: int | None = None
    if w.request:
        req = _validate(_EventRequest, w.request, "event request")
        monitor = req.MonitorEvent
        # fly-go looks at request.MonitorEvent.exit_event first, then request.exit_event.
        exit_event = (monitor.exit_event if monitor else None) or req.exit_event
        if exit_event is not None:
            exit_info = _exit_info(exit_event)
        restart_count = req.restart_count
        if restart_count is None and monitor is not None:
            restart_count = monitor.restart_count
    try:
        timestamp = parse_time(w.timestamp)
    except ValueError as exc:
        raise PayloadError(f"invalid event timestamp {str(w.timestamp)[:40]!r}") from exc
    return MachineEvent(
        id=w.id or None,
        type=w.type,
        status=w.status,
        source=w.source,
        timestamp=timestamp,
        exit=exit_info,
        restart_count=restart_count,
    )


def _newest_first(events: Iterable[MachineEvent]) -> tuple[MachineEvent, ...]:
    # The API sends them newest first already; sort (stably) in case it does not.
    return tuple(sorted(events, key=lambda e: e.timestamp, reverse=True))


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
    cfg = _validate(_Config, raw_config, "machine config")
    guest = cfg.guest or _Guest()
    metadata = cfg.metadata or {}
    first_service = cfg.services[0] if cfg.services else None
    group = metadata.get("fly_process_group")
    release = metadata.get("fly_release_version")
    checks = tuple(
        CheckStatus(
            name=c.name,
            status=c.status,
            output=c.output or "",
            updated_at=_opt_time(c.updated_at),
        )
        for c in (w.checks or ())
        if not c.name.startswith(_COMPAT_CHECK_PREFIX)
    )
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
        events=_newest_first(_event(e) for e in (w.events or ())),
        autostop=_normalise_autostop(first_service.autostop) if first_service else None,
        autostart=first_service.autostart if first_service else None,
        is_standby=bool(cfg.standbys),
        restart_policy=cfg.restart.policy if cfg.restart else None,
        config=MappingProxyType(_json_copy(raw_config)),
        incomplete=w.config is None,
        cordoned=bool(w.cordoned),
        updated_at=_opt_time(w.updated_at),
    )


def parse_machine(data: Any) -> Machine:
    """A ``Machine`` from one Machine object (``GET /machines/{id}``, update's answer)."""
    return _machine(_validate(_Machine, data, "machine"))


def parse_machines(data: Any) -> list[Machine]:
    """Every machine of a ``GET /machines`` array (no filtering: see ``Machine.is_app_machine``)."""
    if not isinstance(data, list):
        raise PayloadError("unexpected machine list JSON: not an array")
    return [parse_machine(item) for item in data]


def parse_events(data: Any) -> list[MachineEvent]:
    """The events of a ``GET /machines/{id}/events`` array, newest first."""
    if not isinstance(data, list):
        raise PayloadError("unexpected event list JSON: not an array")
    return list(_newest_first(_event(_validate(_Event, item, "event")) for item in data))


def parse_lease(data: Any) -> Lease:
    """A ``Lease`` from ``{"status": "success", "data": {...}}`` or the bare object (§2.12)."""
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    w = _validate(_LeaseData, data, "lease")
    return Lease(
        nonce=w.nonce,
        expires_at=_opt_time(w.expires_at),
        owner=w.owner or None,
        description=w.description,
        version=w.version or None,
    )


def parse_releases(data: Any) -> list[Release]:
    """The releases of a GraphQL ``releasesUnprocessed`` answer, newest version first."""
    body = _validate(_ReleasesBody, data, "releases")
    releases = []
    for node in body.data.app.releases.nodes:
        if node is None:
            continue
        user = node.user
        releases.append(
            Release(
                id=node.id,
                version=node.version,
                status=node.status or "",
                image_ref=node.imageRef or None,
                stable=bool(node.stable),
                created_at=_required_time(node.createdAt, "release createdAt"),
                description=node.description or "",
                reason=node.reason or "",
                user=(user.email or user.name or user.id) if user else None,
            )
        )
    releases.sort(key=lambda r: r.version, reverse=True)
    return releases


def _required_time(value: str | float, what: str) -> float:
    parsed = _opt_time(value)
    if parsed is None:
        raise PayloadError(f"missing {what}")
    return parsed


def _log_id(attrs: _LogAttributes, timestamp: float) -> str:
    # The API gives every line an id; should one be missing, derive a stable one.
    digest = zlib.crc32((attrs.message or "").encode("utf-8", errors="replace"))
    return f"{timestamp!r}/{attrs.instance or ''}/{digest:08x}"


def parse_log_page(data: Any) -> LogPage:
    """A ``LogPage`` from the logs polling API's JSON:API-style document (§4.1)."""
    page = _validate(_LogPage, data, "log page")
    lines = []
    for item in page.data or ():
        attrs = item.attributes
        meta = attrs.meta or _LogMeta()
        timestamp = _required_time(attrs.timestamp, "log timestamp")
        lines.append(
            LogLine(
                id=item.id or _log_id(attrs, timestamp),
                timestamp=timestamp,
                message=attrs.message or "",
                level=attrs.level or "",
                instance=attrs.instance or meta.instance or None,
                region=attrs.region or meta.region or None,
                provider=meta.event.provider if meta.event else None,
            )
        )
    token = page.meta.next_token if page.meta else None
    return LogPage(lines=tuple(lines), next_token=None if token in (None, "") else str(token))


def _float(text: str) -> float:
    """A Prometheus sample value: a decimal, or NaN / +Inf / -Inf."""
    try:
        return float(text)
    except ValueError as exc:
        raise PayloadError(f"sample value {text[:40]!r} is not a number") from exc


def parse_prometheus(data: Any) -> list[Sample]:
    """The samples of a successful Prometheus query answer (vector, scalar or matrix).

    A matrix gives every point of every series, oldest first within a series.
    """
    body = _validate(_PromBody, data, "prometheus")
    kind, result = body.data.resultType, body.data.result
    if kind == "scalar":
        point = _validate(_PromSeries, {"value": result}, "prometheus scalar").value
        if point is None:
            raise PayloadError("unexpected prometheus JSON: scalar without a value")
        return [Sample(MappingProxyType({}), _float(point[1]), point[0])]
    if kind not in ("vector", "matrix") or not isinstance(result, Sequence):
        raise PayloadError(f"unexpected prometheus result type {kind[:40]!r}")
    samples = []
    for item in result:
        series = _validate(_PromSeries, item, "prometheus series")
        labels = MappingProxyType(dict(series.metric))
        points = series.values if kind == "matrix" else [series.value] if series.value else []
        for ts, value in points or ():
            samples.append(Sample(labels, _float(value), ts))
    return samples
