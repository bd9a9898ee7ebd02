"""The watcher's health record per release: was the app healthy while that image ran?

A rollback goes only to a release this record knows was healthy, never blind. The record is
keyed by the image the app's machines actually run, not by Fly's "current release": a rollback
made through the Machines API (each machine updated to the earlier image) creates no release on
Fly, so after one the current release still names the bad version while the machines run the
old image.

Pure: ``observe`` returns a new record; the mitigation stage keeps it in the store's kv.
``running_image`` says which image that is at one poll, and ``rollback_target`` which release
a rollback may go to.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hotdash_watch.policy import ReleaseView

if TYPE_CHECKING:
    from hotdash_watch.probes.machines import MachinesReport
    from hotdash_watch.probes.releases import ReleasesReport

__all__ = ["ImageHealth", "from_json", "known_healthy", "observe", "rollback_target",
           "running_image", "to_json"]

#: Longest gap between two observations that still counts as continuous (clock seconds).
MAX_GAP_S = 30.0


@dataclass(frozen=True, slots=True)
class ImageHealth:
    image: str
    version: int | None
    healthy_s: float  # seconds the app was seen healthy while every machine ran this image
    last_at: float  # last observation (healthy or not)
    first_seen: float


Record = dict[str, ImageHealth]


def observe(record: Mapping[str, ImageHealth], image: str | None, version: int | None,
            healthy: bool, now: float) -> Record:
    """Account one evaluation: ``image`` is what every serving machine runs (None when they
    differ, e.g. mid-deploy: nothing is counted then)."""
    out = dict(record)
    if not image:
        return out
    old = out.get(image)
    if old is None:
        out[image] = ImageHealth(image, version, 0.0, now, now)
        return out
    gap = now - old.last_at
    gained = gap if healthy and 0 < gap <= MAX_GAP_S else 0.0
    out[image] = ImageHealth(image, version if version is not None else old.version,
                             old.healthy_s + gained, now, old.first_seen)
    return out


def known_healthy(record: Mapping[str, ImageHealth], after_s: float) -> list[ImageHealth]:
    """Images seen healthy for at least ``after_s``, newest version first."""
    good = [h for h in record.values() if h.healthy_s >= after_s]
    return sorted(good, key=lambda h: (h.version or 0, h.first_seen), reverse=True)


def rollback_target(record: Mapping[str, ImageHealth], current: ReleaseView, *,
                    left: Collection[str] = (), healthy_after_s: float) -> ReleaseView | None:
    """The newest release a rollback from ``current`` may go to, or None.

    Only an image this record saw healthy for ``healthy_after_s``; never the image running now
    nor one an earlier rollback of the incident left (``left``); never a version at or above
    the current one. An image whose version is unknown is taken as the one just before.
    """
    for h in known_healthy(record, healthy_after_s):
        if h.image == current.image or h.image in left:
            continue
        if h.version is not None and h.version >= current.version:
            continue
        version = h.version if h.version is not None else current.version - 1
        return ReleaseView(version, h.image, h.first_seen)
    return None


def running_image(machines: MachinesReport | None, releases: ReleasesReport | None
                  ) -> tuple[str | None, int | None]:
    """The one image every started app machine runs, and its release version if known.

    (None, None) when no machine is started or they run different images (mid-deploy). The
    version is the release whose image it is (current or previous), else the machines' common
    release tag.
    """
    if machines is None or not machines.machines:
        return None, None
    started = [m for m in machines.machines if m.is_app_machine and not m.is_standby
               and m.state == "started"]
    images = {m.image for m in started if m.image}
    if len(images) != 1:
        return None, None
    image = images.pop()
    version: int | None = None
    if releases is not None:
        for r in (releases.current, releases.previous):
            if r is not None and r.image_ref == image:
                version = r.version
    if version is None:
        tags = {m.release_version for m in started if m.release_version}
        if len(tags) == 1:
            try:
                version = int(tags.pop() or "")
            except ValueError:
                version = None
    return image, version


def to_json(record: Mapping[str, ImageHealth]) -> dict[str, Any]:
    return {h.image: {"version": h.version, "healthy_s": round(h.healthy_s, 1),
                      "last_at": h.last_at, "first_seen": h.first_seen}
            for h in record.values()}


def from_json(data: Any) -> Record:
    """The record from its stored JSON; entries that do not parse are dropped."""
    out: Record = {}
    if not isinstance(data, Mapping):
        return out
    for image, v in data.items():
        try:
            version = v.get("version")
            out[str(image)] = ImageHealth(str(image), int(version) if version is not None
                                          else None, float(v["healthy_s"]),
                                          float(v["last_at"]), float(v["first_seen"]))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out
