"""A sparse log-scale latency histogram whose quantiles carry a stated error bound.

A quantile estimate ``e`` of a true quantile ``x`` (by the rank definition documented on
``LogHistogram.quantile``) satisfies ``|e - x| <= relative_error * x`` for latencies inside
``[MIN_MS, MAX_MS]``; latencies outside are clamped to those bounds first. Merging histograms
is exact (bin counts add up), so a quantile over many buckets has the same bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["MAX_MS", "MIN_MS", "LogHistogram"]

MIN_MS = 0.01
"""Smallest latency told apart: values at or below it share one bin represented by ``MIN_MS``."""
MAX_MS = 3_600_000.0
"""Largest latency kept: larger values are recorded as ``MAX_MS`` (one hour)."""

_MIN_KEY = -(1 << 62)  # the bin of values <= MIN_MS; sorts below every real bin index


def _rank(q: float, count: int) -> int:
    """The 1-based rank of the ``q`` quantile among ``count`` samples: ``max(1, ceil(q*n))``."""
    return max(1, math.ceil(q * count))


class LogHistogram:
    """A mergeable log-scale histogram of latencies in ms (DDSketch-style).

    With ``a = relative_error`` and ``gamma = (1 + a) / (1 - a)``, a value ``v`` goes to bin
    ``i = ceil(log(v) / log(gamma))``, i.e. ``gamma**(i-1) < v <= gamma**i``, and the bin is
    represented by ``2 * gamma**i / (gamma + 1)``. That representative is within ``a * v`` of
    every value of the bin, so **any quantile computed by rank is within relative error ``a``
    of the true quantile**: ``|estimate - true| <= a * true``, for values in
    ``[MIN_MS, MAX_MS]``. Values ``<= MIN_MS`` (including 0 and negatives) share one bin whose
    representative is ``MIN_MS``; values above ``MAX_MS`` are recorded as ``MAX_MS``.

    Storage is sparse (bin index -> count), so a histogram costs one dict entry per distinct bin
    in use, at most ``max_bins``. ``merge`` adds counts and is exact.
    """

    __slots__ = ("_bins", "_inv_log_gamma", "_log_gamma", "gamma", "relative_error")

    def __init__(self, relative_error: float = 0.01) -> None:
        if not 0.0 < relative_error < 1.0:
            raise ValueError(f"relative_error must be in (0, 1), got {relative_error!r}")
        self.relative_error = float(relative_error)
        self.gamma = (1.0 + relative_error) / (1.0 - relative_error)
        self._log_gamma = math.log(self.gamma)
        self._inv_log_gamma = 1.0 / self._log_gamma
        self._bins: dict[int, int] = {}

    # -- writing -------------------------------------------------------------------------------

    def key(self, value_ms: float) -> int:
        """The bin index a value goes to (after clamping to ``[MIN_MS, MAX_MS]``)."""
        if not value_ms > MIN_MS:  # also NaN
            return _MIN_KEY
        if value_ms > MAX_MS:
            value_ms = MAX_MS
        return math.ceil(math.log(value_ms) * self._inv_log_gamma)

    def add(self, value_ms: float) -> None:
        """Count one value."""
        k = self.key(value_ms)
        bins = self._bins
        bins[k] = bins.get(k, 0) + 1

    def merge(self, other: LogHistogram) -> None:
        """Add every count of ``other`` to this histogram (in place; exact)."""
        if other.gamma != self.gamma:
            raise ValueError(
                f"cannot merge histograms of different relative_error "
                f"({self.relative_error} and {other.relative_error})"
            )
        _add_bins(self._bins, other._bins)

    def clear(self) -> None:
        self._bins.clear()

    # -- reading -------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many values were added."""
        return sum(self._bins.values())

    @property
    def bin_count(self) -> int:
        """How many bins are in use (the histogram's size)."""
        return len(self._bins)

    @property
    def max_bins(self) -> int:
        """The most bins this histogram can ever use: all of ``[MIN_MS, MAX_MS]`` plus one."""
        # keys of (MIN_MS, MAX_MS] are > floor(log(MIN_MS) / log(gamma)); one more for MIN_MS
        return self.key(MAX_MS) - math.floor(math.log(MIN_MS) * self._inv_log_gamma) + 1

    def value_of(self, key: int) -> float:
        """The representative value of bin ``key``."""
        if key == _MIN_KEY:
            return MIN_MS
        return 2.0 * math.exp(key * self._log_gamma) / (self.gamma + 1.0)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (``0 <= q <= 1``), or None when the histogram is empty.

        Rank definition: the smallest value ``v`` such that at least ``ceil(q * count)`` samples
        are ``<= v`` (at least one sample, so ``q = 0`` is the minimum and ``q = 1`` the
        maximum). The estimate is within ``relative_error`` of that value.
        """
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> tuple[float | None, ...]:
        """Several quantiles at once (one sort of the bins); same definition as ``quantile``."""
        return _quantiles(self._bins, qs, self)


def _add_bins(into: dict[int, int], other: dict[int, int]) -> None:
    get = into.get
    for k, c in other.items():
        into[k] = get(k, 0) + c


def _sub_bins(into: dict[int, int], other: dict[int, int]) -> None:
    for k, c in other.items():
        left = into[k] - c
        if left:
            into[k] = left
        else:
            del into[k]


def _quantiles(
    bins: dict[int, int], qs: Sequence[float], hist: LogHistogram
) -> tuple[float | None, ...]:
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
    count = sum(bins.values())
    if count == 0:
        return tuple(None for _ in qs)
    wanted = sorted((_rank(q, count), i) for i, q in enumerate(qs))
    out: list[float | None] = [None] * len(qs)
    j = 0
    seen = 0
    for k, c in sorted(bins.items()):
        seen += c
        while j < len(wanted) and wanted[j][0] <= seen:
            out[wanted[j][1]] = hist.value_of(k)
            j += 1
        if j == len(wanted):
            break
    return tuple(out)
