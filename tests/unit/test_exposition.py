"""The Prometheus text exposition format: parsing, counter rates, histogram quantiles."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdash_watch.fly.exposition import (
    CounterRates,
    ExpositionError,
    bucket_counts,
    histogram_quantile,
    metric_types,
    parse_exposition,
    series_key,
)
from hotdash_watch.fly.models import Sample

MSDOS = (
    'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",'
    'error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9'
)
EXPOSITION = """\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
""" + MSDOS + """

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} NaN
"""


def sample(value: float, **labels: str) -> Sample:
    return Sample(MappingProxyType(labels), value, 0.0)


class TestParseExposition:
    def test_reference_example(self):
        """The example from the Prometheus docs parses into samples keyed by metric name."""
        parsed = parse_exposition(EXPOSITION, at=100.0)
        reqs = parsed["http_requests_total"]
        assert [(dict(s.labels), s.value, s.timestamp) for s in reqs] == [
            ({"method": "post", "code": "200"}, 1027.0, 1395066363.0),
            ({"method": "post", "code": "400"}, 3.0, 1395066363.0),
        ]
        (plain,) = parsed["metric_without_timestamp_and_labels"]
        assert (dict(plain.labels), plain.value, plain.timestamp) == ({}, 12.47, 100.0)
        (weird,) = parsed["something_weird"]
        assert weird.value == math.inf and weird.timestamp == pytest.approx(-3982.045)
        assert len(parsed["http_request_duration_seconds_bucket"]) == 6
        assert math.isnan(parsed["rpc_duration_seconds"][0].value)

    def test_label_escapes(self):
        """Backslashes, quotes and newlines in label values are unescaped."""
        (s,) = parse_exposition(EXPOSITION)["msdos_file_access_time_seconds"]
        assert s.labels["path"] == "C:\\DIR\\FILE.TXT"
        assert s.labels["error"] == 'Cannot find file:\n"FILE.TXT"'

    def test_tricky_label_values(self):
        """Braces, commas, hashes and spaces inside quoted values do not end the labels."""
        text = 'm{a="x}, y",b="# not a comment" , } -1.5e-3\n'
        (s,) = parse_exposition(text)["m"]
        assert dict(s.labels) == {"a": "x}, y", "b": "# not a comment"}
        assert s.value == -0.0015

    def test_types_and_help(self):
        """# TYPE lines give each family's type; other comments are ignored."""
        assert metric_types(EXPOSITION) == {
            "http_requests_total": "counter",
            "http_request_duration_seconds": "histogram",
            "rpc_duration_seconds": "summary",
        }

    def test_crlf_and_blank_lines(self):
        """Windows line ends and blank lines are accepted."""
        parsed = parse_exposition("a 1\r\n\r\n b{x=\"1\"} 2\r\n")
        assert parsed["a"][0].value == 1 and parsed["b"][0].value == 2

    def test_exemplar_is_ignored(self):
        """An OpenMetrics exemplar after the value is ignored."""
        (s,) = parse_exposition('c_total 5 # {trace_id="abc"} 1.0\n')["c_total"]
        assert s.value == 5

    @pytest.mark.parametrize(
        ("text", "lineno"),
        [("ok 1\nbad{a=\"1\" 2\n", 2), ("m{a=\"1\",a=\"2\"} 1", 1), ("m{a=1} 1", 1),
         ("m", 1), ("m one", 1), ("m 1 2 3", 1), ("1m 2", 1), ('m{a="unterminated} 1', 1),
         ("m-x 1", 1)],
    )
    def test_malformed_lines(self, text, lineno):
        """A malformed line raises ExpositionError with its line number."""
        with pytest.raises(ExpositionError) as info:
            parse_exposition(text)
        assert info.value.lineno == lineno

    @given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                           st.text(max_size=20), max_size=4))
    def test_escaped_labels_round_trip(self, labels):
        """Any label values, escaped as the format says, parse back to themselves."""
        def esc(v: str) -> str:
            return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

        body = ",".join(f'{k}="{esc(v)}"' for k, v in labels.items())
        (s,) = parse_exposition(f"m{{{body}}} 1\n")["m"]
        assert dict(s.labels) == labels


class TestCounterRates:
    def test_increase_and_rate(self):
        """The increase between two scrapes and its per-second rate are reported per series."""
        rates = CounterRates()
        assert rates.update({"req_total": [sample(100, code="200"), sample(5, code="500")]},
                            at=0.0) == {}
        deltas = rates.update({"req_total": [sample(160, code="200"), sample(8, code="500")]},
                              at=15.0)
        ok = deltas[series_key("req_total", {"code": "200"})]
        assert (ok.increase, ok.rate, ok.interval_s) == (60.0, 4.0, 15.0)
        assert deltas[series_key("req_total", {"code": "500"})].increase == 3.0

    def test_reset_counts_new_value(self):
        """A decrease is a counter reset: the increase is the new value, never negative."""
        rates = CounterRates()
        rates.update({"c": [sample(500)]}, at=0.0)
        delta = rates.update({"c": [sample(20)]}, at=10.0)[series_key("c", {})]
        assert delta.increase == 20.0 and delta.rate == 2.0

    def test_new_series_and_time_going_back(self):
        """A series seen for the first time has no delta; a scrape not later gives none."""
        rates = CounterRates()
        rates.update({"c": [sample(1, a="x")]}, at=10.0)
        assert rates.update({"c": [sample(5, a="x"), sample(1, a="y")]}, at=20.0).keys() == {
            series_key("c", {"a": "x"})}
        assert rates.update({"c": [sample(9, a="x")]}, at=20.0) == {}
        assert rates.update({"c": [sample(10, a="x")]}, at=30.0)[
            series_key("c", {"a": "x"})].increase == 1.0

    @given(st.lists(st.tuples(st.floats(0.001, 1e3),
                              st.one_of(st.floats(0, 1e12), st.just(math.nan),
                                        st.just(math.inf), st.just(-1.0))),
                    min_size=1, max_size=30))
    def test_rates_never_negative(self, steps):
        """Across any sequence of values with resets and junk, increases and rates are >= 0."""
        rates = CounterRates()
        at = 0.0
        for gap, value in steps:
            at += gap
            for delta in rates.update({"c": [sample(value)]}, at).values():
                assert delta.increase >= 0 and delta.rate >= 0
                assert math.isfinite(delta.rate)


class TestHistogramQuantile:
    BUCKETS = [(0.05, 24054.0), (0.1, 33444.0), (0.2, 100392.0), (0.5, 129389.0), (1.0, 133988.0),
               (math.inf, 144320.0)]

    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            # rank 72160 lies in (0.1, 0.2]: 0.1 + 0.1 * (72160 - 33444) / (100392 - 33444)
            (0.5, 0.1 + 0.1 * (72160 - 33444) / (100392 - 33444)),
            # rank 137104 lies in the +Inf bucket: the highest finite bound
            (0.95, 1.0),
            # rank 14432 lies in the first bucket, which starts at 0
            (0.1, 0.05 * 14432 / 24054),
            (0.0, 0.0),
            (1.0, 1.0),
        ],
    )
    def test_hand_computed(self, q, expected):
        """Quantiles interpolate linearly inside the bucket holding the rank, like Prometheus."""
        assert histogram_quantile(q, self.BUCKETS) == pytest.approx(expected)

    def test_simple_even_buckets(self):
        """Ten observations spread evenly over 0-1 and 1-2 put the median at 1."""
        assert histogram_quantile(0.5, [(1.0, 5.0), (2.0, 10.0), (math.inf, 10.0)]) == 1.0
        assert histogram_quantile(0.75, [(1.0, 5.0), (2.0, 10.0), (math.inf, 10.0)]) == 1.5

    def test_order_and_monotonicity_repaired(self):
        """Unsorted buckets are sorted and a dip in cumulative counts is raised."""
        buckets = [(math.inf, 10.0), (2.0, 9.0), (1.0, 10.0)]
        assert histogram_quantile(0.5, buckets) == 0.5

    @pytest.mark.parametrize(
        "buckets",
        [[], [(math.inf, 3.0)], [(1.0, 2.0), (2.0, 3.0)], [(1.0, 0.0), (math.inf, 0.0)]],
        ids=["empty", "only-inf", "no-inf", "no-observations"],
    )
    def test_no_answer(self, buckets):
        """Without a +Inf bucket, with one bucket, or with no observations there is no answer."""
        assert histogram_quantile(0.5, buckets) is None

    def test_out_of_range_q(self):
        """q below 0 or above 1 gives -Inf / +Inf, as in Prometheus."""
        assert histogram_quantile(-0.1, self.BUCKETS) == -math.inf
        assert histogram_quantile(1.1, self.BUCKETS) == math.inf
        assert histogram_quantile(math.nan, self.BUCKETS) is None

    def test_negative_lowest_bound(self):
        """A rank in a lowest bucket whose bound is <= 0 gives that bound."""
        assert histogram_quantile(0.1, [(-1.0, 5.0), (1.0, 10.0), (math.inf, 10.0)]) == -1.0

    def test_bucket_counts_from_scrape(self):
        """bucket_counts sums _bucket samples per le, ready for histogram_quantile."""
        parsed = parse_exposition(EXPOSITION)
        buckets = bucket_counts(parsed["http_request_duration_seconds_bucket"])
        assert buckets == self.BUCKETS

    @given(st.lists(st.floats(0, 1e6), min_size=1, max_size=8),
           st.floats(0, 1))
    def test_quantile_within_bounds(self, counts, q):
        """Any quantile of any histogram lies between 0 and the highest finite bound."""
        buckets = [(float(i + 1), c) for i, c in enumerate(counts)] + [(math.inf, max(counts))]
        result = histogram_quantile(q, buckets)
        if result is not None:
            assert 0.0 <= result <= float(len(counts))
