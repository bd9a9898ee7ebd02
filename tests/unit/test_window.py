"""The per-app rolling window: log histograms, buckets, ratios, runs and bounds."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotdash_watch.probes.base import FailureKind, Observation
from hotdash_watch.window import MAX_MS, MIN_MS, LogHistogram, Snapshot, Window

A = 0.01  # the default relative error
FK = FailureKind

positive = st.floats(min_value=0.05, max_value=1e6, allow_nan=False, allow_infinity=False)
values = st.lists(positive, min_size=1, max_size=300)
quantile = st.one_of(st.sampled_from([0.5, 0.95, 0.99]), st.floats(min_value=0.0, max_value=1.0))


def exact_quantile(xs: list[float], q: float) -> float:
    """The documented rank definition: the smallest v with >= ceil(q*n) samples <= v (min 1)."""
    ordered = sorted(xs)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def hist_of(xs: list[float], relative_error: float = A) -> LogHistogram:
    h = LogHistogram(relative_error)
    for x in xs:
        h.add(x)
    return h


def obs(at: float, ok: bool = True, latency_ms: float | None = 100.0, **kw) -> Observation:
    return Observation(app="svc", probe="health", at=at, ok=ok, latency_ms=latency_ms, **kw)


class TestLogHistogram:
    @settings(max_examples=200, deadline=None)
    @given(xs=values, q=quantile, a=st.sampled_from([0.01, 0.02, 0.05]))
    def test_quantile_within_relative_error(self, xs: list[float], q: float, a: float):
        """Every quantile estimate is within relative_error of the exact rank quantile."""
        est = hist_of(xs, a).quantile(q)
        true = exact_quantile(xs, q)
        assert est is not None
        assert abs(est - true) <= a * true * (1 + 1e-9)

    @settings(max_examples=200, deadline=None)
    @given(xs=values, ys=values, q=quantile)
    def test_merge_is_exact(self, xs: list[float], ys: list[float], q: float):
        """Merged histograms have the counts and quantiles of one built from the concatenation."""
        h1, h2 = hist_of(xs), hist_of(ys)
        h1.merge(h2)
        both = hist_of(xs + ys)
        assert h1.count == both.count == len(xs) + len(ys)
        assert h1._bins == both._bins
        assert h1.quantile(q) == both.quantile(q)
        assert h2.count == len(ys)  # the argument is left alone

    def test_empty_histogram_has_no_quantile(self):
        """An empty histogram has count 0 and no quantile."""
        h = LogHistogram()
        assert h.count == 0
        assert h.quantile(0.5) is None
        assert h.quantiles((0.5, 0.99)) == (None, None)

    def test_rank_definition_at_the_ends(self):
        """q=0 estimates the minimum, q=1 the maximum, and ranks round up."""
        xs = [10.0, 20.0, 30.0, 40.0]
        h = hist_of(xs)
        for q, true in [(0.0, 10.0), (0.25, 10.0), (0.26, 20.0), (0.5, 20.0), (1.0, 40.0)]:
            est = h.quantile(q)
            assert est is not None
            assert abs(est - true) <= A * true

    def test_quantiles_match_single_quantile_calls(self):
        """quantiles() answers, in the order asked, what quantile() answers one by one."""
        h = hist_of([float(i) for i in range(1, 1001)])
        qs = (0.99, 0.5, 0.95, 0.0)
        assert h.quantiles(qs) == tuple(h.quantile(q) for q in qs)

    def test_values_are_clamped(self):
        """Values at or below MIN_MS read back as MIN_MS, values above MAX_MS as about MAX_MS."""
        h = hist_of([0.0, -5.0, MIN_MS, MIN_MS / 2])
        assert h.quantile(1.0) == MIN_MS
        big = hist_of([MAX_MS * 10, math.inf])
        est = big.quantile(0.5)
        assert est is not None
        assert abs(est - MAX_MS) <= A * MAX_MS

    def test_storage_is_sparse(self):
        """A histogram stores one entry per distinct bin, not one per value."""
        h = hist_of([100.0] * 10_000 + [200.0] * 5)
        assert h.count == 10_005
        assert h.bin_count == 2
        assert h.max_bins < 2_000

    def test_max_bins_bounds_any_input(self):
        """However values spread, a histogram never uses more than max_bins bins."""
        h = LogHistogram()
        for i in range(40_000):
            h.add(10 ** (-4 + i * 13 / 40_000))  # 1e-4 .. 1e9 ms, past both clamps
        assert h.max_bins - 2 <= h.bin_count <= h.max_bins

    def test_bad_arguments_are_refused(self):
        """A relative error outside (0, 1), a q outside [0, 1] or a mixed merge is an error."""
        for a in (0.0, 1.0, -0.1):
            with pytest.raises(ValueError, match="relative_error"):
                LogHistogram(a)
        h = hist_of([1.0])
        for q in (-0.01, 1.01):
            with pytest.raises(ValueError, match="quantile"):
                h.quantile(q)
        with pytest.raises(ValueError, match="relative_error"):
            h.merge(LogHistogram(0.02))


class TestWindow:
    # -- construction and input --------------------------------------------------------------

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"bucket_s": 0.0}, "bucket_s must be > 0, got 0.0"),
            ({"bucket_s": -1.0}, "bucket_s must be > 0, got -1.0"),
            ({"bucket_s": 10.0, "span_s": 5.0}, "span_s must be >= bucket_s .*got 5.0"),
        ],
    )
    def test_invalid_geometry_is_refused(self, kwargs: dict, message: str):
        """A non-positive bucket or a span shorter than a bucket raises, naming the argument."""
        with pytest.raises(ValueError, match=message):
            Window("svc", **kwargs)

    def test_ring_size(self):
        """The ring holds ceil(span/bucket) buckets plus one, so a whole span always fits."""
        assert Window("svc", bucket_s=5.0, span_s=900.0).slots == 181
        assert Window("svc", bucket_s=7.0, span_s=30.0).slots == 6

    def test_other_app_is_refused(self):
        """An observation of another app raises ValueError and changes nothing."""
        w = Window("svc")
        with pytest.raises(ValueError, match="'other'"):
            w.add(Observation(app="other", probe="health", at=1.0, ok=True))
        assert w.snapshot(2.0).total == 0

    def test_add_and_record_agree(self):
        """add(obs) records exactly what record() records from the same fields."""
        rows = [
            (1.0, True, 50.0, None, False),
            (2.0, True, 900.0, None, True),
            (3.0, False, None, FK.TIMEOUT, False),
            (4.0, False, 12.0, FK.HTTP_5XX, False),
            (5.0, False, None, FK.DNS, False),
        ]
        w1, w2 = Window("svc"), Window("svc")
        for at, ok, lat, fail, slow in rows:
            w1.add(obs(at, ok, lat, failure=fail, over_budget=slow))
            w2.record(at, ok=ok, latency_ms=lat, failure=fail, over_budget=slow)
        assert w1.snapshot(10.0) == w2.snapshot(10.0)
        w3 = Window("svc")
        w3.add_many(obs(at, ok, lat, failure=fail, over_budget=slow)
                    for at, ok, lat, fail, slow in rows)
        assert w3.snapshot(10.0) == w1.snapshot(10.0)

    def test_empty_window(self):
        """An empty window has zero counts and None for every ratio, quantile and time."""
        s = Window("svc").snapshot(1_000.0)
        assert s == Snapshot(
            app="svc", at=1_000.0, over_s=900.0, total=0, failures=0, watcher_failures=0,
            over_budget=0, error_ratio=None, p50_ms=None, p95_ms=None, p99_ms=None,
            latency_samples=0, failure_kinds=(), consecutive_ok=0, consecutive_failures=0,
            last_at=None, last_ok_at=None,
        )

    # -- counts and ratios -------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("rows", "total", "failures", "watcher", "slow", "ratio"),
        [
            ([("ok", 97), ("5xx", 3)], 100, 3, 0, 0, 0.03),
            ([("ok", 1), ("5xx", 2)], 3, 2, 0, 0, 2 / 3),
            ([("ok", 90), ("dns", 10)], 90, 0, 10, 0, 0.0),
            ([("ok", 8), ("5xx", 2), ("no_route", 5), ("watcher", 5)], 10, 2, 10, 0, 0.2),
            ([("ok", 6), ("slow", 4)], 10, 0, 0, 4, 0.0),
            ([("slow", 5), ("timeout", 5)], 10, 5, 0, 5, 0.5),
            ([("dns", 7)], 0, 0, 7, 0, None),
            ([("fail", 4)], 4, 4, 0, 0, 1.0),
        ],
    )
    def test_error_ratio_table(self, rows, total, failures, watcher, slow, ratio):
        """Exact counts give the exact ratio; watcher-side failures and slowness are no failures."""
        kinds = {
            "ok": {"ok": True},
            "slow": {"ok": True, "over_budget": True},
            "5xx": {"ok": False, "failure": FK.HTTP_5XX},
            "timeout": {"ok": False, "failure": FK.TIMEOUT, "latency_ms": None},
            "fail": {"ok": False},  # a failure without a kind is still service-side
            "dns": {"ok": False, "failure": FK.DNS, "latency_ms": None},
            "no_route": {"ok": False, "failure": FK.NO_ROUTE, "latency_ms": None},
            "watcher": {"ok": False, "failure": FK.WATCHER, "latency_ms": None},
        }
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        t = 100.0
        for kind, n in rows:
            for _ in range(n):
                w.add(obs(t, **kinds[kind]))
                t += 0.1
        s = w.snapshot(t)
        assert (s.total, s.failures, s.watcher_failures, s.over_budget) == (
            total, failures, watcher, slow)
        assert s.error_ratio == ratio

    def test_failure_kinds_sorted_and_nonzero(self):
        """failure_kinds counts each kind seen (service- or watcher-side), sorted by kind."""
        w = Window("svc")
        for at, kind in [(1, FK.TIMEOUT), (2, FK.DNS), (3, FK.TIMEOUT), (4, FK.BODY)]:
            w.add(obs(float(at), ok=False, failure=kind))
        w.add(obs(5.0, ok=False))  # no kind: counted as a failure, not in failure_kinds
        s = w.snapshot(6.0)
        assert s.failure_kinds == (("body", 1), ("dns", 1), ("timeout", 2))
        assert all(type(k) is str for k, _ in s.failure_kinds)
        assert s.failures == 4

    def test_quantiles_over_buckets(self):
        """Snapshot quantiles cover every latency in the span, within the relative error."""
        rng = random.Random(7)
        w = Window("svc", bucket_s=5.0, span_s=300.0)
        lats = []
        for i in range(3_000):
            lat = rng.lognormvariate(math.log(100), 0.7)
            lats.append(lat)
            w.record(i * 0.1, ok=True, latency_ms=lat)
        w.record(150.0, ok=False, failure=FK.TIMEOUT)  # no latency: not a latency sample
        s = w.snapshot(300.0)
        assert s.latency_samples == 3_000
        for q, est in [(0.5, s.p50_ms), (0.95, s.p95_ms), (0.99, s.p99_ms)]:
            true = exact_quantile(lats, q)
            assert est is not None
            assert abs(est - true) <= A * true * (1 + 1e-9)

    # -- expiry and the ring -----------------------------------------------------------------

    def test_over_s_selects_overlapping_buckets(self):
        """A snapshot over over_s counts the buckets overlapping (now - over_s, now], no older."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        w.add(obs(64.9, ok=False, failure=FK.HTTP_5XX))  # bucket [60, 65): before now - over_s
        w.add(obs(70.0))  # bucket [70, 75), the oldest one overlapping (70, 100]
        w.add(obs(85.0))
        w.add(obs(100.0))  # now itself
        s = w.snapshot(100.0, over_s=30.0)
        assert (s.total, s.failures, s.over_s) == (3, 0, 30.0)
        assert w.snapshot(100.0, over_s=40.0).failures == 1
        assert w.snapshot(100.0, over_s=0.5).total == 1
        assert w.snapshot(100.0).total == 4

    def test_samples_older_than_span_expire(self):
        """As time moves on, samples older than the span leave the snapshot, newer ones stay."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        for t in range(0, 60):
            w.add(obs(float(t), ok=t % 2 == 0, failure=None if t % 2 == 0 else FK.HTTP_5XX))
        assert w.snapshot(59.0).total == 60
        assert w.snapshot(89.0).total == 35  # buckets from [25, 30) on overlap (29, 89]
        assert w.snapshot(125.0).total == 0
        assert w.snapshot(125.0).error_ratio is None

    @pytest.mark.parametrize("laps", [1, 2, 7])
    def test_reused_slot_does_not_leak(self, laps: int):
        """A slot reused after the ring wraps around holds only its new bucket's counts."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        for i in range(10):
            w.add(obs(1.0 + i * 0.1, ok=False, failure=FK.CONNECT, latency_ms=5_000.0))
        for later in (laps * 60.0, laps * w.slots * 5.0):  # multiples of the span and the ring
            w.add(obs(1.0 + later, latency_ms=10.0))
            s = w.snapshot(2.0 + later, over_s=1.0)  # just the new sample's bucket
            assert (s.total, s.failures, s.latency_samples) == (1, 0, 1)
            assert s.failure_kinds == ()
            assert s.p99_ms is not None and s.p99_ms < 11.0
        full = w.snapshot(2.0 + later)  # both new samples are in the span, no old failure is
        assert (full.total, full.failures, full.latency_samples) == (2, 0, 2)

    def test_long_silence_empties_the_span(self):
        """After a silence longer than the span the snapshot is empty but the runs persist."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        for t in range(5):
            w.add(obs(float(t)))
        s = w.snapshot(10_000.0)
        assert (s.total, s.latency_samples, s.p95_ms) == (0, 0, None)
        assert s.consecutive_ok == 5
        assert s.last_at == 4.0

    def test_late_observations_are_dropped(self):
        """An observation older than the ring holds is dropped and counted; a merely
        out-of-order one within the span is kept."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        w.add(obs(1_000.0))
        w.add(obs(940.0, ok=False, failure=FK.HTTP_5XX))  # 60 s before: still held
        w.add(obs(934.9, ok=False, failure=FK.HTTP_5XX))  # older than the ring holds
        assert w.dropped_late == 1
        s = w.snapshot(1_000.0)
        assert (s.total, s.failures) == (2, 1)
        assert s.consecutive_failures == 1  # a dropped observation changes no run
        assert s.last_at == 1_000.0

    def test_over_s_outside_span_is_refused(self):
        """over_s must be positive and at most the span."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        for bad in (0.0, -1.0, 60.5):
            with pytest.raises(ValueError, match="over_s"):
                w.snapshot(100.0, over_s=bad)

    @settings(max_examples=200, deadline=None)
    @given(
        rows=st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=800),  # time in quarter seconds
                st.booleans(),
                st.one_of(st.none(), positive),
                st.sampled_from([None, FK.HTTP_5XX, FK.DNS]),
            ),
            max_size=120,
        ),
        extra=st.integers(min_value=0, max_value=80),
        over_s=st.sampled_from([1.0, 5.0, 12.5, 30.0, 60.0]),
    )
    def test_snapshot_matches_a_model(self, rows, extra: int, over_s: float):
        """Any arrival order gives the counts and histogram of the surviving samples in range."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        kept: list[tuple[float, bool, float | None, FailureKind | None]] = []
        newest: int | None = None
        for quarter, ok, lat, fail in rows:
            at = quarter / 4
            w.record(at, ok=ok, latency_ms=lat, failure=fail)
            b = math.floor(at / 5.0)
            if newest is not None and b <= newest - w.slots:
                continue
            newest = b if newest is None else max(newest, b)
            kept.append((at, ok, lat, fail))
        now = (max((q for q, *_ in rows), default=0) + extra) / 4
        lo = math.floor((now - over_s) / 5.0)
        inside = [r for r in kept if lo <= math.floor(r[0] / 5.0) <= math.floor(now / 5.0)]
        service = [r for r in inside if r[3] is not FK.DNS]
        s = w.snapshot(now, over_s)
        assert s.total == len(service)
        assert s.failures == sum(1 for r in service if not r[1])
        assert s.watcher_failures == len(inside) - len(service)
        assert w.dropped_late == len(rows) - len(kept)
        h = hist_of([r[2] for r in inside if r[2] is not None])
        assert s.latency_samples == h.count
        assert (s.p50_ms, s.p95_ms, s.p99_ms) == h.quantiles((0.5, 0.95, 0.99))

    # -- runs --------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("sequence", "good", "bad"),
        [
            ("ooo", 3, 0),
            ("ooxoo", 2, 0),
            ("oox", 0, 1),
            ("xxx", 0, 3),
            ("xxo", 1, 0),
            ("ooso", 1, 0),  # a slow check resets the good run...
            ("xxs", 0, 0),  # ...and, being ok, ends the failure run
            ("oood", 0, 0),  # a watcher-side failure resets the good run...
            ("xxdx", 0, 3),  # ...but neither ends nor extends the failure run
            ("xdxd", 0, 2),
            ("", 0, 0),
        ],
    )
    def test_consecutive_runs(self, sequence: str, good: int, bad: int):
        """Runs follow arrival order: o ok, s ok but over budget, x service failure, d DNS."""
        w = Window("svc")
        spec = {
            "o": {"ok": True},
            "s": {"ok": True, "over_budget": True},
            "x": {"ok": False, "failure": FK.HTTP_5XX},
            "d": {"ok": False, "failure": FK.DNS, "latency_ms": None},
        }
        for i, c in enumerate(sequence):
            w.add(obs(10.0 + i, **spec[c]))
        s = w.snapshot(100.0)
        assert (s.consecutive_ok, s.consecutive_failures) == (good, bad)

    def test_runs_outlive_the_span(self):
        """The good run counts checks in arrival order even when they are older than over_s."""
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        for t in range(0, 200, 10):
            w.add(obs(float(t)))
        s = w.snapshot(190.0, over_s=30.0)
        assert s.consecutive_ok == 20
        assert s.total == 4

    def test_last_times(self):
        """last_at is the newest observation, last_ok_at the newest ok one, whatever the order."""
        w = Window("svc")
        w.add(obs(10.0))
        w.add(obs(30.0, ok=False, failure=FK.TIMEOUT))
        w.add(obs(20.0))  # out of order
        s = w.snapshot(30.0)
        assert (s.last_at, s.last_ok_at) == (30.0, 20.0)

    # -- bounds ------------------------------------------------------------------------------

    def test_memory_is_bounded_by_bins_not_samples(self):
        """100k samples across the span take at most slots x bins-of-the-range entries."""
        rng = random.Random(3)
        w = Window("svc", bucket_s=5.0, span_s=900.0)
        lo_ms, hi_ms = 50.0, 500.0
        for i in range(100_000):
            w.record(i * 0.009, ok=True, latency_ms=rng.uniform(lo_ms, hi_ms))
        probe = LogHistogram()
        bins_for_range = probe.key(hi_ms) - probe.key(lo_ms) + 1
        bound = w.slots * bins_for_range
        assert bound < 100_000  # keeping raw samples could not meet the bound
        assert w.bins_in_use <= bound
        assert w.snapshot(900.0).latency_samples == 100_000
        assert w.bins_in_use <= w.slots * w.max_bins_per_slot

    def test_full_span_quantile_agrees_with_narrow_ones(self):
        """The full-span merge (via the running aggregate) equals the bucket-by-bucket merge."""
        rng = random.Random(11)
        w = Window("svc", bucket_s=5.0, span_s=60.0)
        lats: list[tuple[float, float]] = []
        for i in range(4_000):
            at, lat = i * 0.05, rng.lognormvariate(math.log(80), 1.0)
            lats.append((at, lat))
            w.record(at, ok=True, latency_ms=lat)
        now = 199.97
        for over_s in (60.0, 55.0, 30.0, 5.0):
            lo = math.floor((now - over_s) / 5.0)
            h = hist_of([lat for at, lat in lats if math.floor(at / 5.0) >= lo])
            s = w.snapshot(now, over_s)
            assert s.latency_samples == h.count
            assert (s.p50_ms, s.p95_ms, s.p99_ms) == h.quantiles((0.5, 0.95, 0.99))

    def test_to_evidence_is_rounded_and_plain(self):
        """to_evidence gives plain numbers: ratios to 4 decimals, milliseconds to 1."""
        w = Window("svc")
        for i in range(4):
            w.add(obs(float(i), latency_ms=123.456))
        w.add(obs(4.0, ok=False, failure=FK.HTTP_5XX, latency_ms=None))
        ev = w.snapshot(4.0).to_evidence()
        assert ev["error_ratio"] == 0.2
        assert ev["total"] == 5
        assert ev["failure_kinds"] == {"http_5xx": 1}
        assert json.loads(json.dumps(ev)) == ev
        assert ev["p95_ms"] == round(ev["p95_ms"], 1)
        assert abs(ev["p95_ms"] - 123.456) <= A * 123.456 + 0.05
        w.add(obs(5.0, ok=False, failure=FK.HTTP_5XX))
        w.add(obs(6.0, ok=False, failure=FK.HTTP_5XX))
        assert w.snapshot(7.0).to_evidence()["error_ratio"] == 0.4286  # 3/7
