"""The text of the diagnostics files, in the shapes of the ``fly`` commands they stand for. Pure.

``format_app_status`` (``fly status``), ``format_machine_list`` (``fly machine list``),
``format_machine_detail`` (``fly machine status``), ``format_logs`` (``fly logs``) and
``format_releases`` (``fly releases``) each take what the Fly API answered, or a ``Failed``
saying what was asked and why it did not come, and return lines. ``bound_text`` cuts a file to
its byte limit at a line end; ``evidence_json`` is the incident as the API shows it, giving up
its evidence and timeline (with a note) rather than its validity when too big.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hotdash_watch.fly import LogLine, Machine, MachineEvent, Release
from hotdash_watch.model.incident import Incident, incident_as_dict
from hotdash_watch.records.findings import iso_utc

__all__ = [
    "RELEASES_LIMIT",
    "Failed",
    "bound_text",
    "evidence_json",
    "format_app_status",
    "format_logs",
    "format_machine_detail",
    "format_machine_list",
    "format_releases",
]

RELEASES_LIMIT = 10


@dataclass(frozen=True, slots=True)
class Failed:
    """A call that did not deliver: what was asked and why it failed."""

    what: str
    why: str

    @property
    def line(self) -> str:
        return f"capture failed: {self.what}: {self.why}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return (indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                ).rstrip()

    return [fmt(headers), *(fmt(r) for r in rows)]


def _ts(value: float | None) -> str:
    return "-" if value is None else iso_utc(value)


def _ts_ms(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _checks_summary(m: Machine) -> str:
    if not m.checks:
        return "-"
    counts = Counter(c.status for c in m.checks)
    parts = [f"{len(m.checks)} total"] + [f"{n} {status}" for status, n in sorted(counts.items())]
    return ", ".join(parts)


def _size(m: Machine) -> str:
    cpus = f"{m.cpu_kind or 'shared'}-cpu-{m.cpus or 1}x"
    return f"{cpus}:{m.memory_mb}MB" if m.memory_mb else cpus


def _exit_info(e: MachineEvent) -> str:
    parts = []
    if e.exit is not None:
        x = e.exit
        parts.append(f"exit_code={x.exit_code if x.exit_code is not None else '-'}")
        parts.append(f"oom_killed={str(x.oom_killed).lower()}")
        parts.append(f"requested_stop={str(x.requested_stop).lower()}")
        parts.append(f"restarting={str(x.restarting).lower()}")
    if e.restart_count is not None:
        parts.append(f"restart_count={e.restart_count}")
    return ",".join(parts)


def _current_release(releases: Sequence[Release]) -> Release | None:
    done = [r for r in releases if r.status == "complete"] or list(releases)
    return max(done, key=lambda r: r.version) if done else None


def format_app_status(
    app: str, machines: Sequence[Machine] | Failed, releases: Sequence[Release] | Failed
) -> list[str]:
    """``fly status -a APP``: the app, its image and release, its machines by state."""
    out = ["App", f"  Name     = {app}", f"  Hostname = {app}.fly.dev"]
    current = None if isinstance(releases, Failed) else _current_release(releases)
    if isinstance(machines, Failed):
        image = current.image_ref if current and current.image_ref else "-"
    else:
        images = Counter(m.image for m in machines if m.image)
        image = images.most_common(1)[0][0] if images else (
            current.image_ref if current and current.image_ref else "-")
    out.append(f"  Image    = {image}")
    if isinstance(releases, Failed):
        out.append(f"  Release  = ({releases.line})")
    elif current is None:
        out.append("  Release  = none recorded")
    else:
        by = f" by {current.user}" if current.user else ""
        out.append(f"  Release  = v{current.version} {current.status}, deployed "
                   f"{iso_utc(current.created_at)}{by}")
    if isinstance(machines, Failed):
        out += ["", "Machines", machines.line]
        return out
    states = Counter(m.state for m in machines)
    by_state = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
    checks = [c for m in machines for c in m.checks]
    passing = sum(c.status == "passing" for c in checks)
    out.append(f"  Machines = {len(machines)} total: {by_state}; "
               f"checks {passing}/{len(checks)} passing")
    out += ["", "Machines"]
    if not machines:
        out.append("no machines")
        return out
    out += _table(
        ("PROCESS", "ID", "VERSION", "REGION", "STATE", "ROLE", "CHECKS", "LAST UPDATED"),
        ((m.process_group or "-", m.id, m.release_version or "-", m.region, m.state,
          "standby" if m.is_standby else "", _checks_summary(m), _ts(m.updated_at))
         for m in machines),
    )
    return out


def format_machine_list(app: str, machines: Sequence[Machine] | Failed) -> list[str]:
    """``fly machine list -a APP``."""
    if isinstance(machines, Failed):
        return [machines.line]
    out = [f"{len(machines)} machines have been retrieved from app {app}.", ""]
    if not machines:
        return out
    out += _table(
        ("ID", "NAME", "STATE", "CHECKS", "REGION", "IMAGE", "VERSION", "PROCESS GROUP", "SIZE",
         "LAST UPDATED"),
        ((m.id, m.name, m.state, _checks_summary(m), m.region, m.image or "-",
          m.release_version or "-", m.process_group or "-", _size(m), _ts(m.updated_at))
         for m in machines),
    )
    return out


def format_machine_detail(
    m: Machine, events: Sequence[MachineEvent] | Failed
) -> list[str]:
    """``fly machine status ID -a APP``: VM, checks with output, event logs with exit details."""
    out = [f"Machine ID: {m.id}", f"Instance ID: {m.instance_id}", f"State: {m.state}", "", "VM"]
    fields = (
        ("ID", m.id), ("Instance ID", m.instance_id), ("State", m.state), ("Image", m.image),
        ("Name", m.name), ("Region", m.region), ("Process Group", m.process_group or "-"),
        ("CPU Kind", m.cpu_kind or "-"), ("vCPUs", str(m.cpus or "-")),
        ("Memory", f"{m.memory_mb} MB" if m.memory_mb else "-"),
        ("Release", m.release_version or "-"), ("Host Status", m.host_status),
        ("Restart Policy", m.restart_policy or "-"),
        ("Autostop", str(m.autostop)), ("Autostart", str(m.autostart)),
        ("Incomplete", str(m.incomplete)), ("Updated", _ts(m.updated_at)),
    )
    width = max(len(k) for k, _ in fields)
    out += [f"  {k.ljust(width)} = {v}" for k, v in fields]
    passing = sum(c.status == "passing" for c in m.checks)
    out += ["", f"Checks [{passing}/{len(m.checks)}]"]
    if m.checks:
        out += _table(("NAME", "STATUS", "LAST UPDATED", "OUTPUT"),
                      ((c.name, c.status, _ts(c.updated_at), " ".join(c.output.split()) or "-")
                       for c in m.checks), indent="  ")
    else:
        out.append("  none reported")
    out += ["", "Event Logs"]
    shown: Sequence[MachineEvent]
    if isinstance(events, Failed):
        out.append(f"  {events.line}; the events embedded in the machine list follow")
        shown = m.events
    else:
        shown = events
    if shown:
        out += _table(("STATE", "EVENT", "SOURCE", "TIMESTAMP", "INFO"),
                      ((e.status, e.type, e.source, _ts_ms(e.timestamp), _exit_info(e))
                       for e in shown), indent="  ")
    else:
        out.append("  none")
    return out


def format_logs(lines: Sequence[LogLine] | Failed) -> list[str]:
    """``fly logs -a APP``: ``<time> <provider>[<instance>] <region> [<level>] <message>``."""
    if isinstance(lines, Failed):
        return [lines.line]
    if not lines:
        return ["no log lines"]
    return [f"{_ts_ms(line.timestamp)} {line.provider or 'app'}[{line.instance or '-'}] "
            f"{line.region or '-'} [{line.level or '-'}] {line.message.rstrip()}"
            for line in sorted(lines, key=lambda x: x.timestamp)]


def format_releases(releases: Sequence[Release] | Failed, limit: int = RELEASES_LIMIT
                    ) -> list[str]:
    """``fly releases -a APP | head``: the newest ``limit`` releases."""
    if isinstance(releases, Failed):
        return [releases.line]
    if not releases:
        return ["no releases"]
    newest = sorted(releases, key=lambda r: r.version, reverse=True)[:limit]
    return _table(
        ("VERSION", "STATUS", "STABLE", "DESCRIPTION", "USER", "DATE", "DOCKER IMAGE"),
        ((f"v{r.version}", r.status, str(r.stable).lower(), " ".join(r.description.split()) or "-",
          r.user or "-", iso_utc(r.created_at), r.image_ref or "-") for r in newest),
    )


def bound_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes at a line end, with a marker line."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = (f"... truncated: {len(data)} bytes captured, more than the limit of "
              f"{max_bytes} bytes\n")
    room = max(0, max_bytes - len(marker.encode("utf-8")))
    head = data[:room].decode("utf-8", "ignore")
    if "\n" in head:
        head = head[: head.rfind("\n") + 1]
    elif head:
        head += "\n"
    out = head + marker
    return out.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def evidence_json(incident: Incident, apps: Sequence[str], captured_at: float,
                   max_bytes: int) -> str:
    doc: dict[str, Any] = {"captured_at": iso_utc(captured_at), "apps": list(apps),
                           "incident": incident_as_dict(incident)}
    text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    if len(text.encode("utf-8")) > max_bytes:
        size = len(text.encode("utf-8"))
        slim = incident_as_dict(incident, timeline=False)
        slim["evidence"] = {"truncated": f"{size} bytes with evidence and timeline, more than "
                                         f"the limit of {max_bytes} bytes"}
        doc["incident"] = slim
        text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    return text
