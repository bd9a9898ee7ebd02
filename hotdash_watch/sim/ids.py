"""Deterministic identifiers and Fly's timestamp formats for the simulator.

Everything the simulator invents (machine ids and names, instance ids, event and log ids, lease
nonces, release ids, image tags) comes from a ``random.Random`` seeded by the scenario's seed and
a stream name, so two runs of one scenario produce the same world.

Formats follow Fly's APIs: machine ids are 14 lowercase hex characters, instance ids
and event ids 26-character ULIDs (Crockford base 32, time-ordered), events carry epoch
milliseconds, objects RFC 3339 strings, logs RFC 3339 with sub-second digits and a nanosecond
``next_token``.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

__all__ = [
    "IdSource",
    "epoch_ms",
    "epoch_ns",
    "machine_identities",
    "rfc3339",
]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALNUM = string.ascii_letters + string.digits

_ADJECTIVES = (
    "falling", "quiet", "bold", "ancient", "autumn", "billowing", "broken", "cold", "damp",
    "dark", "dawn", "delicate", "divine", "dry", "empty", "floral", "fragrant", "frosty",
    "gentle", "green", "hidden", "holy", "icy", "jolly", "late", "lingering", "little", "lively",
    "long", "misty", "morning", "muddy", "nameless", "old", "patient", "polished", "proud",
    "purple", "restless", "rough", "shy", "silent", "small", "snowy", "solitary", "sparkling",
    "spring", "still", "summer", "throbbing", "twilight", "wandering", "weathered", "white",
    "wild", "winter", "wispy", "withered", "young",
)
_NOUNS = (
    "river", "meadow", "thunder", "bird", "breeze", "brook", "bush", "butterfly", "cherry",
    "cloud", "darkness", "dawn", "dew", "dream", "dust", "feather", "field", "fire", "firefly",
    "flower", "fog", "forest", "frog", "frost", "glade", "glitter", "grass", "haze", "hill",
    "lake", "leaf", "moon", "morning", "mountain", "night", "paper", "pine", "pond", "rain",
    "resonance", "sea", "shadow", "shape", "silence", "sky", "smoke", "snow", "snowflake",
    "sound", "star", "sun", "sunset", "surf", "thunder", "tree", "violet", "water", "wave",
    "wildflower", "wind", "wood",
)


def rfc3339(ts: float, digits: int = 0) -> str:
    """``ts`` (epoch seconds) as UTC RFC 3339 with ``digits`` fractional digits (0, 3 or 6)."""
    dt = datetime.fromtimestamp(ts, UTC)
    if digits == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frac = f"{dt.microsecond:06d}"[:digits]
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac}Z"


def epoch_ms(ts: float) -> int:
    """``ts`` (epoch seconds) as integer epoch milliseconds, the unit of machine events."""
    return round(ts * 1000)


def epoch_ns(ts: float) -> int:
    """``ts`` (epoch seconds) as integer epoch nanoseconds, the unit of the logs cursor."""
    return round(ts * 1_000_000) * 1000


class IdSource:
    """A deterministic stream of identifiers (one per purpose, so streams do not interfere)."""

    def __init__(self, seed: int, stream: str) -> None:
        self.rng = random.Random(f"{seed}:{stream}")

    def ulid(self, ts: float) -> str:
        """A 26-character ULID whose first 10 characters encode ``ts`` in milliseconds."""
        ms = max(0, int(ts * 1000))
        head = "".join(CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
        tail = "".join(self.rng.choice(CROCKFORD) for _ in range(16))
        return head + tail

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def alnum(self, n: int) -> str:
        return "".join(self.rng.choice(_ALNUM) for _ in range(n))


def machine_identities(seed: int, app: str, count: int) -> list[tuple[str, str]]:
    """The (id, name) of an app's machines: 14 hex chars and names like ``falling-river-4821``.

    Deterministic from the seed and the app name, so a scenario may name machines.
    """
    rng = random.Random(f"{seed}:machines:{app}")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < count:
        mid = "".join(rng.choice("0123456789abcdef") for _ in range(14))
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randint(1000, 9999)}"
        if mid in seen or name in seen:
            continue
        seen.update((mid, name))
        out.append((mid, name))
    return out
