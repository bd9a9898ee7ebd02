"""The incident chart: well-formed SVG with both series, thresholds, marks, gaps and no data."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotdash_watch.records.chart import svg_chart

NS = {"svg": "http://www.w3.org/2000/svg"}
START = 1_772_366_105.0


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def series(root: ET.Element, name: str) -> ET.Element:
    found = root.find(f".//svg:g[@data-series='{name}']", NS)
    assert found is not None, name
    return found


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def ramp(n: int = 60) -> list[tuple[float, float | None, float | None]]:
    return [(START + 10 * i, i / 100, 100.0 + 40 * i) for i in range(n)]


class TestSvgChart:
    """svg_chart draws error rate and p95 over time as one self-contained SVG element."""

    def test_well_formed_with_both_series_and_title(self) -> None:
        """The SVG parses, has a title, and draws each series as a path."""
        root = parse(svg_chart(ramp(), start=START, end=START + 600, title="Chart of X"))
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        title = root.find("svg:title", NS)
        assert title is not None and title.text == "Chart of X"
        assert len(series(root, "error_rate_pct").findall("svg:path", NS)) == 1
        assert len(series(root, "p95_ms").findall("svg:path", NS)) == 1

    def test_no_blank_line_inside(self) -> None:
        """A blank line would end the HTML block in markdown, so there is none."""
        svg = svg_chart(ramp(), start=START, end=START + 600, marks=[(START + 60, "opened")])
        assert "\n\n" not in svg and svg.startswith("<svg") and svg.endswith("</svg>")

    def test_axes_legend_and_thresholds(self) -> None:
        """Axis names, the legend and the runbook thresholds inside the axes are labelled."""
        points = [(START, 0.6, 2500.0), (START + 60, 0.7, 2600.0)]
        labels = texts(parse(svg_chart(points, start=START, end=START + 120)))
        for label in ("error rate (%)", "p95 latency (ms)", "runbook thresholds",
                      "5 %", "10 %", "50 %", "1000 ms", "2000 ms"):
            assert label in labels
        assert "minutes since 11:55:05 UTC" in labels

    def test_thresholds_outside_the_axis_are_left_out(self) -> None:
        """With low values the axes stay small: 50 % and 2000 ms are not drawn."""
        labels = texts(parse(svg_chart([(START, 0.01, 100.0)], start=START, end=START + 60)))
        assert "5 %" in labels and "1000 ms" in labels
        assert "50 %" not in labels and "2000 ms" not in labels

    def test_gaps_break_the_line(self) -> None:
        """None values split a series into separate paths; a lone point becomes a dot."""
        points = ramp(10)
        points[3] = (points[3][0], None, None)
        points[5] = (points[5][0], None, points[5][2])
        points[7] = (points[7][0], None, None)
        root = parse(svg_chart(points, start=START, end=START + 100))
        errors = series(root, "error_rate_pct")
        assert len(errors.findall("svg:path", NS)) == 2  # 0-2 and 8-9
        assert len(errors.findall("svg:circle", NS)) == 2  # 4 and 6, each alone
        p95 = series(root, "p95_ms")
        assert len(p95.findall("svg:path", NS)) == 3  # 0-2, 4-6, 8-9

    def test_empty_input(self) -> None:
        """No samples still gives axes and says so."""
        root = parse(svg_chart([], start=START, end=START + 300))
        assert "no samples recorded" in texts(root)
        assert not list(series(root, "error_rate_pct"))

    def test_marks_are_labelled_lines(self) -> None:
        """Each mark in range is a labelled vertical line; marks at one spot share a label."""
        root = parse(svg_chart(ramp(), start=START, end=START + 600, marks=[
            (START + 60, "opened SEV-2"), (START + 200, "mitigation"),
            (START + 200, "restart"), (START + 590, "resolved"), (START - 50, "before")]))
        marks = root.find(".//svg:g[@class='marks']", NS)
        assert marks is not None
        labels = [t.text for t in marks.findall("svg:text", NS)]
        assert labels == ["opened SEV-2", "mitigation / restart", "resolved"]
        assert len(marks.findall("svg:line", NS)) == 3

    def test_labels_are_escaped(self) -> None:
        """Text with markup characters stays text."""
        root = parse(svg_chart([], start=START, end=START + 60, marks=[(START + 1, "<a&b>")],
                               title="x < y & z"))
        assert "<a&b>" in texts(root)

    def test_degenerate_range(self) -> None:
        """An end not after the start still draws a chart."""
        parse(svg_chart([(START, 0.5, 10.0)], start=START, end=START))

    @pytest.mark.parametrize("width", [320, 720, 1200])
    def test_size(self, width: int) -> None:
        """The requested size is the SVG's size."""
        root = parse(svg_chart(ramp(), start=START, end=START + 600, width=width, height=200))
        assert root.get("width") == str(width) and root.get("height") == "200"

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(
        st.floats(START - 100, START + 4000),
        st.none() | st.floats(0, 1) | st.just(math.nan),
        st.none() | st.floats(0, 1e6) | st.just(math.inf)), max_size=40))
    def test_any_points_give_well_formed_svg(
        self, points: list[tuple[float, float | None, float | None]]
    ) -> None:
        """Whatever the points (out of range, NaN, inf, huge), the SVG parses."""
        parse(svg_chart(points, start=START, end=START + 3600,
                        marks=[(p[0], "m") for p in points[:5]]))
