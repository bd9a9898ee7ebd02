"""The rolling window of probe observations kept per app (``Window``) and its ``Snapshot``.

A ``Window`` holds the last ``span_s`` seconds of one app's observations in fixed time buckets
of ``bucket_s`` seconds, kept in a ring buffer. Memory does not grow with the sample rate: a
bucket holds a few counters and a sparse log-scale latency histogram (``LogHistogram``), so an
app costs at most *slots x distinct histogram bins*, however many samples arrive.

Bucket semantics
    Bucket number ``b`` covers the wall-time interval ``[b * bucket_s, (b + 1) * bucket_s)``
    (epoch seconds; ``b`` is ``floor(at / bucket_s)``). The ring has
    ``ceil(span_s / bucket_s) + 1`` slots, so it holds every bucket that overlaps the last
    ``span_s`` seconds before any instant inside the newest bucket. A slot remembers the number
    of the bucket it holds; a slot holding an older bucket is cleared before it is reused, so
    counts never leak across a wrap-around. An observation whose bucket is older than the ring
    can hold (more than ``span_s`` before the newest bucket seen) is dropped and counted in
    ``Window.dropped_late``.

    ``snapshot(now, over_s)`` merges the buckets that overlap ``(now - over_s, now]``: every
    observation in that interval is counted, and observations up to one ``bucket_s`` older may
    be counted too (the figures are only as fine as the buckets).

Error bound
    Counts and the error ratio are exact. Latency quantiles come from ``LogHistogram``: a
    quantile estimate ``e`` of a true quantile ``x`` (by the rank definition documented on
    ``LogHistogram.quantile``) satisfies ``|e - x| <= relative_error * x`` for latencies inside
    ``[MIN_MS, MAX_MS]``; latencies outside are clamped to those bounds first. Merging
    histograms is exact (bin counts add up), so a quantile over many buckets has the same bound.

Nothing here reads the clock: observations carry their time and ``snapshot`` takes ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hotdash_watch.probes.base import FailureKind, Observation
from hotdash_watch.window.histogram import (
    _MIN_KEY,
    MAX_MS,
    MIN_MS,
    LogHistogram,
    _add_bins,
    _quantiles,
    _sub_bins,
)

__all__ = ["Snapshot", "Window"]

_WATCHER_SIDE = frozenset(k for k in FailureKind if k.watcher_side)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The window of one app at one instant ``at``, over the last ``over_s`` seconds.

    *Service-side* samples are those whose failure is None or not watcher-side; ``total``
    counts them and ``failures`` those of them that failed. Watcher-side failures are counted
    apart in ``watcher_failures`` and never affect the error ratio. ``over_budget`` counts good
    but slow samples (in ``total``, not in ``failures``). Latency quantiles cover every sample
    that has a ``latency_ms``; they are within the window's relative error of the exact ones.

    ``consecutive_ok``, ``consecutive_failures``, ``last_at`` and ``last_ok_at`` describe the
    whole stream in arrival order, not just the span.
    """

    app: str
    at: float
    over_s: float
    total: int
    failures: int
    watcher_failures: int
    over_budget: int
    error_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    latency_samples: int
    failure_kinds: tuple[tuple[str, int], ...]
    consecutive_ok: int
    consecutive_failures: int
    last_at: float | None
    last_ok_at: float | None

    def to_evidence(self) -> dict[str, Any]:
        """The figures as a plain JSON-able dict: ratios to 4 decimals, milliseconds to 1."""

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {
            "at": self.at,
            "over_s": self.over_s,
            "total": self.total,
            "failures": self.failures,
            "watcher_failures": self.watcher_failures,
            "over_budget": self.over_budget,
            "error_ratio": None if self.error_ratio is None else round(self.error_ratio, 4),
            "p50_ms": ms(self.p50_ms),
            "p95_ms": ms(self.p95_ms),
            "p99_ms": ms(self.p99_ms),
            "latency_samples": self.latency_samples,
            "failure_kinds": dict(self.failure_kinds),
            "consecutive_ok": self.consecutive_ok,
            "consecutive_failures": self.consecutive_failures,
            "last_at": self.last_at,
            "last_ok_at": self.last_ok_at,
        }


class _Slot:
    """One ring slot: the counters and latency histogram of bucket ``number``."""

    __slots__ = (
        "bins", "failures", "hi", "hist", "kinds", "lo", "number", "over_budget", "sealed",
        "total", "watcher_failures",
    )

    def __init__(self, relative_error: float) -> None:
        self.number: int | None = None  # the bucket held; None when never used
        self.lo = 0.0  # the bucket's time bounds [lo, hi)
        self.hi = 0.0
        self.total = 0
        self.failures = 0
        self.watcher_failures = 0
        self.over_budget = 0
        self.kinds: dict[FailureKind, int] = {}
        self.hist = LogHistogram(relative_error)
        self.bins = self.hist._bins  # the hot path writes the histogram's dict directly
        self.sealed = False  # True when the bins are included in Window._agg

    def reset(self, number: int, lo: float, hi: float) -> None:
        self.number = number
        self.lo = lo
        self.hi = hi
        self.total = self.failures = self.watcher_failures = self.over_budget = 0
        self.kinds.clear()
        self.bins.clear()
        self.sealed = False


class Window:
    """The rolling window of one app: see the module docstring for buckets and error bounds.

    ``add`` and ``record`` are O(1); ``snapshot`` is O(slots + bins). Only the newest bucket
    (the one being written) is outside a running aggregate of all the other buckets' latency
    bins, so a full-span quantile is a dict copy plus the few buckets that fall out of the span.
    """

    def __init__(
        self,
        app: str,
        *,
        bucket_s: float = 5.0,
        span_s: float = 900.0,
        relative_error: float = 0.01,
    ) -> None:
        if not bucket_s > 0:
            raise ValueError(f"bucket_s must be > 0, got {bucket_s!r}")
        if not (span_s >= bucket_s and math.isfinite(span_s)):
            raise ValueError(f"span_s must be >= bucket_s ({bucket_s!r}), got {span_s!r}")
        self.app = app
        self.bucket_s = float(bucket_s)
        self.span_s = float(span_s)
        self.relative_error = float(relative_error)
        self._proto = LogHistogram(relative_error)  # validates relative_error; reads quantiles
        self._inv_log_gamma = self._proto._inv_log_gamma
        self.slots = math.ceil(self.span_s / self.bucket_s) + 1
        self._ring = [_Slot(relative_error) for _ in range(self.slots)]
        self._agg: dict[int, int] = {}  # latency bins of every sealed slot, summed
        self._newest: int | None = None  # the newest bucket number seen
        # the newest bucket's slot and bounds, for the fast path; empty bounds until first use
        self._cur = self._ring[0]
        self._cur_lo = math.inf
        self._cur_hi = -math.inf
        self._consecutive_ok = 0
        self._consecutive_failures = 0
        self._last_at = -math.inf
        self._last_ok_at = -math.inf
        self.dropped_late = 0
        """Observations dropped because they were older than the ring holds."""

    # -- writing -------------------------------------------------------------------------------

    def add(self, obs: Observation) -> None:
        """Record one observation of this window's app (ValueError for another app).

        An observation older than the ring holds is dropped and counted in ``dropped_late``;
        it changes no counter, run or time.
        """
        if obs.app != self.app:
            raise ValueError(f"observation for app {obs.app!r} given to the window of {self.app!r}")
        self.record(
            obs.at,
            ok=obs.ok,
            latency_ms=obs.latency_ms,
            failure=obs.failure,
            over_budget=obs.over_budget,
        )

    def add_many(self, observations: Iterable[Observation]) -> None:
        """``add`` each observation in order."""
        add = self.add
        for obs in observations:
            add(obs)

    def record(
        self,
        at: float,
        *,
        ok: bool,
        latency_ms: float | None = None,
        failure: FailureKind | None = None,
        over_budget: bool = False,
    ) -> None:
        """Record one result at epoch time ``at`` without building an ``Observation``.

        A watcher-side ``failure`` makes the sample watcher-side whatever ``ok`` says; otherwise
        ``ok`` decides between a good sample and a service-side failure (a failure kind given
        with ``ok=True`` is ignored).
        """
        # Hot path: keep to locals and a handful of attribute reads.
        if self._cur_lo <= at < self._cur_hi:
            s = self._cur
            agg = None
        else:
            s, agg = self._slot_for(at)
            if s is None:
                return
        if failure is not None and failure in _WATCHER_SIDE:
            s.watcher_failures += 1
            kinds = s.kinds
            kinds[failure] = kinds.get(failure, 0) + 1
            self._consecutive_ok = 0
        elif ok:
            s.total += 1
            if over_budget:
                s.over_budget += 1
                self._consecutive_ok = 0
            else:
                self._consecutive_ok += 1
            self._consecutive_failures = 0
            if at > self._last_ok_at:
                self._last_ok_at = at
        else:
            s.total += 1
            s.failures += 1
            if failure is not None:
                kinds = s.kinds
                kinds[failure] = kinds.get(failure, 0) + 1
            self._consecutive_ok = 0
            self._consecutive_failures += 1
        if at > self._last_at:
            self._last_at = at
        if latency_ms is not None:
            if latency_ms > MIN_MS:
                k = math.ceil(
                    math.log(latency_ms if latency_ms < MAX_MS else MAX_MS) * self._inv_log_gamma
                )
            else:
                k = _MIN_KEY
            bins = s.bins
            try:
                bins[k] += 1
            except KeyError:
                bins[k] = 1
            if agg is not None:
                agg[k] = agg.get(k, 0) + 1

    def _bucket_of(self, at: float) -> int:
        """The bucket ``b`` with ``b * bucket_s <= at < (b + 1) * bucket_s`` (in float)."""
        bs = self.bucket_s
        b = int(at // bs)
        if at < b * bs:
            b -= 1
        elif at >= (b + 1) * bs:
            b += 1
        return b

    def _slot_for(self, at: float) -> tuple[_Slot | None, dict[int, int] | None]:
        """The slot for a sample outside the newest bucket (the slow path of ``record``).

        Returns the slot and, when the slot's bins are in the running aggregate, the aggregate
        (so the caller adds the latency there too); ``(None, None)`` when the sample is late.
        """
        b = self._bucket_of(at)
        newest = self._newest
        ring = self._ring
        bs = self.bucket_s
        if newest is None or b > newest:  # a new newest bucket: it becomes the hot slot
            if newest is not None:
                cur = self._cur
                if not cur.sealed and cur.number == newest:
                    _add_bins(self._agg, cur.bins)
                    cur.sealed = True
            s = ring[b % self.slots]
            self._release(s)
            s.reset(b, b * bs, (b + 1) * bs)
            self._newest = b
            self._cur = s
            self._cur_lo = s.lo
            self._cur_hi = s.hi
            return s, None
        if b == newest:  # only reachable on a float edge; the bounds say it is the hot slot
            return self._cur, None
        if b <= newest - self.slots:
            self.dropped_late += 1
            return None, None
        s = ring[b % self.slots]
        if s.number != b:  # never used, or holds an older bucket: start it afresh
            self._release(s)
            s.reset(b, b * bs, (b + 1) * bs)
            s.sealed = True  # empty, so trivially in the aggregate
        return s, self._agg

    def _release(self, s: _Slot) -> None:
        """Take a slot's bins out of the running aggregate before the slot is reused."""
        if s.sealed:
            _sub_bins(self._agg, s.bins)
            s.sealed = False

    # -- reading -------------------------------------------------------------------------------

    @property
    def bins_in_use(self) -> int:
        """Histogram bins held by all slots (the memory the window's latencies take)."""
        return sum(len(s.bins) for s in self._ring)

    @property
    def max_bins_per_slot(self) -> int:
        """The most histogram bins one slot can use."""
        return self._proto.max_bins

    def snapshot(self, now: float, over_s: float | None = None) -> Snapshot:
        """The figures of the buckets overlapping ``(now - over_s, now]`` (default: the span).

        ``over_s`` must be in ``(0, span_s]``; the snapshot's ``over_s`` is the one used.
        ``now`` is meant to be at or after the newest observation (the daemon's present): for an
        earlier ``now``, buckets the ring has already reused are missing from the figures.
        """
        span = self.span_s if over_s is None else float(over_s)
        if not 0.0 < span <= self.span_s:
            raise ValueError(f"over_s must be in (0, span_s={self.span_s}], got {over_s!r}")
        n = self.slots
        b_hi = self._bucket_of(now)
        b_lo = max(self._bucket_of(now - span), b_hi - n + 1)
        ring = self._ring
        included: list[_Slot] = []
        if b_hi >= b_lo:
            for b in range(b_lo, b_hi + 1):
                s = ring[b % n]
                if s.number == b:
                    included.append(s)

        total = failures = watcher = over_budget = 0
        kinds: dict[str, int] = {}
        for s in included:
            total += s.total
            failures += s.failures
            watcher += s.watcher_failures
            over_budget += s.over_budget
            for k, c in s.kinds.items():
                name = str(k)  # the kind's value (FailureKind is a StrEnum)
                kinds[name] = kinds.get(name, 0) + c

        bins = self._merged_bins(included)
        p50, p95, p99 = _quantiles(bins, (0.5, 0.95, 0.99), self._proto)
        return Snapshot(
            app=self.app,
            at=now,
            over_s=span,
            total=total,
            failures=failures,
            watcher_failures=watcher,
            over_budget=over_budget,
            error_ratio=failures / total if total else None,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            latency_samples=sum(bins.values()),
            failure_kinds=tuple(sorted(kinds.items())),
            consecutive_ok=self._consecutive_ok,
            consecutive_failures=self._consecutive_failures,
            last_at=None if self._last_at == -math.inf else self._last_at,
            last_ok_at=None if self._last_ok_at == -math.inf else self._last_ok_at,
        )

    def _merged_bins(self, included: list[_Slot]) -> dict[int, int]:
        """The latency bins of ``included``, by whichever costs fewer dict updates.

        Either add the included slots up, or start from the aggregate of all sealed slots,
        take out the sealed ones not included and add the unsealed ones included.
        """
        direct = sum(len(s.bins) for s in included)
        chosen = {id(s) for s in included}
        out_sealed = [s for s in self._ring if s.sealed and id(s) not in chosen and s.bins]
        in_unsealed = [s for s in included if not s.sealed]
        via_agg = (
            len(self._agg) // 8
            + sum(len(s.bins) for s in out_sealed)
            + sum(len(s.bins) for s in in_unsealed)
        )
        if direct <= via_agg:
            merged: dict[int, int] = {}
            for s in included:
                _add_bins(merged, s.bins)
            return merged
        merged = self._agg.copy()
        for s in out_sealed:
            _sub_bins(merged, s.bins)
        for s in in_unsealed:
            _add_bins(merged, s.bins)
        return merged
