"""Reading a service's own ``/metrics``: the Prometheus text exposition format, counters, quantiles.

* ``parse_exposition(text)`` reads exposition format 0.0.4: ``# HELP`` / ``# TYPE`` lines, label
  values with the escapes ``\\\\``, ``\\"`` and ``\\n``, the values ``NaN``, ``+Inf`` and
  ``-Inf``, and optional timestamps (integer milliseconds). It returns the samples keyed by
  their metric name as written (``x_bucket``, ``x_sum`` and ``x_count`` are separate keys).
  ``metric_types(text)`` gives the ``# TYPE`` of each family.
* ``CounterRates`` turns successive scrapes of counters into increases and per-second rates,
  reading a decrease as a counter reset (the increase is then the new value), as Prometheus'
  ``increase()`` does.
* ``histogram_quantile(q, buckets)`` interpolates linearly within cumulative ``le`` buckets, as
  Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hotdash_watch.fly.models import Sample

__all__ = [
    "CounterDelta",
    "CounterRates",
    "ExpositionError",
    "SeriesKey",
    "bucket_counts",
    "histogram_quantile",
    "metric_types",
    "parse_exposition",
    "series_key",
]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BLANKS = " \t"
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}

#: A series' identity: its metric name and its sorted label pairs.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class ExpositionError(ValueError):
    """The text is not in the exposition format; ``lineno`` is 1-based."""

    def __init__(self, lineno: int, reason: str) -> None:
        self.lineno = lineno
        self.reason = reason
        super().__init__(f"line {lineno}: {reason}")


def series_key(name: str, labels: Mapping[str, str]) -> SeriesKey:
    """The key of the series ``name{labels}``."""
    return name, tuple(sorted(labels.items()))


# --- parsing --------------------------------------------------------------------------------------


def _skip_blanks(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in _BLANKS:
        pos += 1
    return pos


def _label_value(line: str, pos: int, lineno: int) -> tuple[str, int]:
    """The quoted value starting at ``line[pos] == '"'``, unescaped, and the position after it."""
    pos += 1
    end = line.find('"', pos)
    if end != -1 and "\\" not in line[pos:end]:  # the usual value: no escape before its end
        return line[pos:end], end + 1
    out: list[str] = []
    while pos < len(line):
        ch = line[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\" and pos + 1 < len(line):
            nxt = line[pos + 1]
            out.append(_LABEL_ESCAPES.get(nxt, "\\" + nxt))
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise ExpositionError(lineno, "unterminated label value")


def _labels(line: str, pos: int, lineno: int) -> tuple[dict[str, str], int]:
    """The labels of ``{...}`` starting at ``line[pos] == '{'``, and the position after ``}``."""
    labels: dict[str, str] = {}
    pos += 1
    while True:
        pos = _skip_blanks(line, pos)
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        m = _LABEL_NAME.match(line, pos)
        if m is None:
            raise ExpositionError(lineno, "expected a label name")
        name = m.group()
        pos = _skip_blanks(line, m.end())
        if pos >= len(line) or line[pos] != "=":
            raise ExpositionError(lineno, f"expected '=' after label {name!r}")
        pos = _skip_blanks(line, pos + 1)
        if pos >= len(line) or line[pos] != '"':
            raise ExpositionError(lineno, f"expected a quoted value for label {name!r}")
        value, pos = _label_value(line, pos, lineno)
        if name in labels:
            raise ExpositionError(lineno, f"duplicate label {name!r}")
        labels[name] = value
        pos = _skip_blanks(line, pos)
        if pos < len(line) and line[pos] == ",":
            pos += 1
        elif pos >= len(line) or line[pos] != "}":
            raise ExpositionError(lineno, "expected ',' or '}' after a label")


def _number(text: str, lineno: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(lineno, f"invalid {what} {text[:40]!r}") from None


def _sample_line(line: str, lineno: int, at: float) -> tuple[str, Sample]:
    m = _METRIC_NAME.match(line)
    if m is None:
        raise ExpositionError(lineno, "expected a metric name")
    name, pos = m.group(), _skip_blanks(line, m.end())
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _labels(line, pos, lineno)
    elif pos == m.end() and pos < len(line):
        raise ExpositionError(lineno, "expected a blank after the metric name")
    rest = line[pos:].split()
    for i, token in enumerate(rest):
        if token.startswith("#"):  # an OpenMetrics exemplar (never in format 0.0.4): ignored
            rest = rest[:i]
            break
    if not rest:
        raise ExpositionError(lineno, "missing value")
    if len(rest) > 2:
        raise ExpositionError(lineno, "unexpected text after the timestamp")
    value = _number(rest[0], lineno, "value")
    timestamp = at
    if len(rest) == 2:
        ms = _number(rest[1], lineno, "timestamp")
        if not math.isfinite(ms):
            raise ExpositionError(lineno, "invalid timestamp")
        timestamp = ms / 1000.0
    return name, Sample(MappingProxyType(labels), value, timestamp)


def _unescape_help(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"\\": "\\", "n": "\n"}.get(m[1], m[0]), text)


def _lines(text: str) -> Iterable[tuple[int, str]]:
    # Split on "\n" only: str.splitlines() would also split inside label values on \x1c, \u2028...
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r").strip(_BLANKS)
        if line:
            yield lineno, line


def _parse(text: str, at: float) -> tuple[dict[str, list[Sample]], dict[str, str], dict[str, str]]:
    samples: dict[str, list[Sample]] = {}
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for lineno, line in _lines(text):
        if line.startswith("#"):
            parts = line[1:].strip(_BLANKS).split(None, 2)
            if len(parts) >= 2 and parts[0] in ("HELP", "TYPE"):
                if not _METRIC_NAME.fullmatch(parts[1]):
                    raise ExpositionError(lineno, f"invalid metric name in # {parts[0]}")
                if parts[0] == "TYPE":
                    types[parts[1]] = parts[2].strip() if len(parts) > 2 else "untyped"
                else:
                    helps[parts[1]] = _unescape_help(parts[2]) if len(parts) > 2 else ""
            continue  # any other comment
        name, sample = _sample_line(line, lineno, at)
        samples.setdefault(name, []).append(sample)
    return samples, types, helps


def parse_exposition(text: str, *, at: float = 0.0) -> dict[str, list[Sample]]:
    """The samples of an exposition, keyed by metric name, in the order written.

    A sample without its own timestamp gets ``at`` (pass the scrape time). Raises
    ``ExpositionError`` on the first malformed line, as Prometheus fails the whole scrape.
    """
    return _parse(text, at)[0]


def metric_types(text: str) -> dict[str, str]:
    """The ``# TYPE`` of each metric family declared in ``text`` (counter, gauge, ...)."""
    return _parse(text, 0.0)[1]


# --- counters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterDelta:
    """How much one counter series grew between two scrapes ``interval_s`` seconds apart."""

    name: str
    labels: Mapping[str, str] = field(hash=False)
    increase: float
    rate: float
    interval_s: float


class CounterRates:
    """Increase and per-second rate of counter series between successive scrapes.

    ``update(samples, at)`` returns a delta for every series present in this scrape and the
    previous one. A value lower than the previous one is a counter reset: the increase is the
    new value. Values that are not finite or are negative (not a valid counter) are skipped.
    If ``at`` is not later than the previous scrape, no deltas are returned and this scrape
    becomes the baseline. Series missing from a scrape are forgotten.
    """

    def __init__(self) -> None:
        self._last: dict[SeriesKey, float] = {}
        self._at: float | None = None

    def update(
        self, samples: Mapping[str, Iterable[Sample]], at: float
    ) -> dict[SeriesKey, CounterDelta]:
        current: dict[SeriesKey, float] = {}
        for name, series in samples.items():
            for sample in series:
                if math.isfinite(sample.value) and sample.value >= 0:
                    current[series_key(name, sample.labels)] = sample.value
        deltas: dict[SeriesKey, CounterDelta] = {}
        if self._at is not None and at > self._at:
            interval = at - self._at
            for key, value in current.items():
                before = self._last.get(key)
                if before is None:
                    continue
                increase = value - before if value >= before else value
                deltas[key] = CounterDelta(
                    name=key[0],
                    labels=MappingProxyType(dict(key[1])),
                    increase=increase,
                    rate=increase / interval,
                    interval_s=interval,
                )
        self._last = current
        self._at = at
        return deltas


# --- histograms -----------------------------------------------------------------------------------


def bucket_counts(samples: Iterable[Sample]) -> list[tuple[float, float]]:
    """``(le, count)`` pairs summed over the given ``_bucket`` samples, as ``sum by (le)``."""
    totals: dict[float, float] = {}
    for sample in samples:
        le = sample.labels.get("le")
        if le is None:
            continue
        bound = float(le)
        totals[bound] = totals.get(bound, 0.0) + sample.value
    return sorted(totals.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q``-quantile of cumulative ``(le, count)`` buckets, as Prometheus computes it.

    Linear interpolation within the bucket holding the rank (the lowest bucket starts at 0
    unless its bound is <= 0); a rank in the ``+Inf`` bucket gives the highest finite bound.
    Counts that decrease with ``le`` are raised to keep them monotonic. ``q < 0`` gives -Inf and
    ``q > 1`` +Inf, like Prometheus. None (where Prometheus says NaN) when there is no ``+Inf``
    bucket, fewer than two buckets, no observations, or ``q`` is NaN.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for le, count in buckets:
        if math.isnan(le) or math.isnan(count):
            continue
        merged[le] = merged.get(le, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    bounds = [le for le, _ in ordered]
    counts: list[float] = []
    for _, count in ordered:
        counts.append(max(count, counts[-1]) if counts else count)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next((i for i in range(len(counts) - 1) if counts[i] >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count <= 0:  # q == 0 with an empty lowest bucket: 0/0, NaN in Prometheus
        return None
    return start + (bounds[b] - start) * (rank / count)
