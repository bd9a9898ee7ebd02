"""The watcher's health record per release: was the app healthy while that image ran?

A rollback goes only to a release this record knows was healthy, never blind. The record is
keyed by the image the app's machines actually run, not by Fly's "current release": a rollback
made through the Machines API (each machine updated to the earlier image) creates no release on
Fly, so after one the current release still names the bad version while the machines run the
old image.

Pure: ``observe`` returns a new record; the mitigation stage keeps it in the store's kv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ImageHealth", "from_json", "known_healthy", "observe", "to_json"]

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
