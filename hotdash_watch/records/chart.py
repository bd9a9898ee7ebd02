"""A small inline SVG chart of an incident: error rate and p95 latency over time. Pure.

``svg_chart(points, start=, end=, marks=)`` draws, over minutes since ``start``:

* the error rate in % (left axis, red) and the p95 latency in ms (right axis, blue); a ``None``
  value breaks its line, and a point with no neighbour is drawn as a dot;
* the runbook's thresholds as dashed lines: 5 %, 10 % and 50 % (error rate), 1000 ms and
  2000 ms (p95), each one only when it falls inside its axis;
* a labelled vertical line for each mark (opened, mitigation, monitoring, resolved ...);
* ticks and labels on the three axes, a legend, and a ``<title>`` for screen readers.

``points`` are ``(epoch seconds, error ratio 0..1, p95 ms)``, as the store's samples hold them.
The result is one ``<svg>`` element with no blank line, so it can sit inside markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

__all__ = ["ERROR_THRESHOLDS_PCT", "P95_THRESHOLDS_MS", "svg_chart"]

ERROR_THRESHOLDS_PCT = (5.0, 10.0, 50.0)
P95_THRESHOLDS_MS = (1000.0, 2000.0)

ERROR_COLOR = "#c62828"
P95_COLOR = "#1565c0"
MARK_COLOR = "#555555"
GRID_COLOR = "#e6e6e6"
AXIS_COLOR = "#333333"

_MARGIN_LEFT = 50
_MARGIN_RIGHT = 62
_MARGIN_TOP = 58
_MARK_ROWS = 3
_CHAR_W = 6.0  # average width of a 10 px sans-serif character
_MARGIN_BOTTOM = 36
_X_STEPS_MIN = (0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 360, 720, 1440, 2880)


def _nice_step(span: float, ticks: int) -> float:
    raw = span / max(1, ticks)
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _axis(top: float, ticks: int = 5, cap: float | None = None) -> tuple[float, float]:
    """(axis maximum, tick step): round numbers, at least ``top``."""
    step = _nice_step(top, ticks)
    high = math.ceil(top / step - 1e-9) * step
    if cap is not None and high > cap:
        high = cap
        step = _nice_step(cap, ticks)
    return high, step


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}".rstrip("0").rstrip(".")


def _f(v: float) -> str:
    return f"{v:.1f}"


def _segments(xy: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    out: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in xy:
        if y is None or not math.isfinite(y):
            if current:
                out.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        out.append(current)
    return out


def _series(
    xy: Sequence[tuple[float, float | None]], color: str, name: str
) -> list[str]:
    parts: list[str] = []
    for seg in _segments(xy):
        if len(seg) == 1:
            x, y = seg[0]
            parts.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="2.5" fill="{color}"/>')
            continue
        d = "M" + " L".join(f"{_f(x)},{_f(y)}" for x, y in seg)
        parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2" '
                     'stroke-linejoin="round"/>')
    return [f'<g class="series" data-series={quoteattr(name)}>', *parts, "</g>"]


def svg_chart(
    points: Sequence[tuple[float, float | None, float | None]],
    *,
    start: float,
    end: float,
    marks: Sequence[tuple[float, str]] = (),
    width: int = 720,
    height: int = 240,
    title: str = "Error rate and p95 latency",
) -> str:
    """The chart as one ``<svg>`` element (see the module docstring)."""
    if not end > start:
        end = start + 60.0
    left, right = _MARGIN_LEFT, width - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP, height - _MARGIN_BOTTOM
    plot_w, plot_h = max(1, right - left), max(1, bottom - top)
    span = end - start

    inside = sorted((p for p in points if start <= p[0] <= end), key=lambda p: p[0])
    errors = [None if r is None or not math.isfinite(r) else r * 100.0 for _, r, _ in inside]
    p95s = [None if p is None or not math.isfinite(p) else p for _, _, p in inside]
    err_max = max((e for e in errors if e is not None), default=0.0)
    p95_max = max((p for p in p95s if p is not None), default=0.0)
    err_top, err_step = _axis(max(err_max * 1.15, 6.0), cap=100.0)
    p95_top, p95_step = _axis(max(p95_max * 1.15, 1200.0))

    def x_of(ts: float) -> float:
        return left + (ts - start) / span * plot_w

    def y_err(pct: float) -> float:
        return bottom - min(pct, err_top) / err_top * plot_h

    def y_p95(ms: float) -> float:
        return bottom - min(ms, p95_top) / p95_top * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]

    # Grid and left axis (error rate).
    out.append('<g class="axis-error">')
    v = 0.0
    while v <= err_top + 1e-9:
        y = y_err(v)
        out.append(f'<line x1="{left}" y1="{_f(y)}" x2="{right}" y2="{_f(y)}" '
                   f'stroke="{GRID_COLOR}"/>')
        out.append(f'<text x="{left - 4}" y="{_f(y + 3)}" text-anchor="end" '
                   f'fill="{ERROR_COLOR}">{_num(v)}</text>')
        v += err_step
    out.append(f'<text x="12" y="{_f((top + bottom) / 2)}" text-anchor="middle" '
               f'fill="{ERROR_COLOR}" transform="rotate(-90 12 {_f((top + bottom) / 2)})">'
               "error rate (%)</text>")
    out.append("</g>")

    # Right axis (p95).
    out.append('<g class="axis-p95">')
    v = 0.0
    while v <= p95_top + 1e-9:
        y = y_p95(v)
        out.append(f'<line x1="{right}" y1="{_f(y)}" x2="{right + 4}" y2="{_f(y)}" '
                   f'stroke="{AXIS_COLOR}"/>')
        out.append(f'<text x="{right + 6}" y="{_f(y + 3)}" fill="{P95_COLOR}">{_num(v)}</text>')
        v += p95_step
    rx = width - 10
    out.append(f'<text x="{rx}" y="{_f((top + bottom) / 2)}" text-anchor="middle" '
               f'fill="{P95_COLOR}" transform="rotate(90 {rx} {_f((top + bottom) / 2)})">'
               "p95 latency (ms)</text>")
    out.append("</g>")

    # Bottom axis (minutes since start).
    span_min = span / 60.0
    step_min = next((s for s in _X_STEPS_MIN if span_min / s <= 8), _X_STEPS_MIN[-1])
    out.append('<g class="axis-time">')
    m = 0.0
    while m <= span_min + 1e-9:
        x = x_of(start + m * 60.0)
        out.append(f'<line x1="{_f(x)}" y1="{bottom}" x2="{_f(x)}" y2="{bottom + 4}" '
                   f'stroke="{AXIS_COLOR}"/>')
        out.append(f'<text x="{_f(x)}" y="{bottom + 14}" text-anchor="middle">{_num(m)}</text>')
        m += step_min
    since = datetime.fromtimestamp(start, UTC).strftime("%H:%M:%S UTC")
    out.append(f'<text x="{_f((left + right) / 2)}" y="{height - 6}" text-anchor="middle">'
               f"minutes since {since}</text>")
    out.append("</g>")

    # Thresholds.
    out.append('<g class="thresholds" stroke-dasharray="5,4">')
    for pct in ERROR_THRESHOLDS_PCT:
        if pct <= err_top:
            y = y_err(pct)
            out.append(f'<line x1="{left}" y1="{_f(y)}" x2="{right}" y2="{_f(y)}" '
                       f'stroke="{ERROR_COLOR}" stroke-opacity="0.45"/>')
            out.append(f'<text x="{left + 3}" y="{_f(y - 2)}" fill="{ERROR_COLOR}" '
                       f'fill-opacity="0.8" stroke="none">{_num(pct)} %</text>')
    for ms in P95_THRESHOLDS_MS:
        if ms <= p95_top:
            y = y_p95(ms)
            out.append(f'<line x1="{left}" y1="{_f(y)}" x2="{right}" y2="{_f(y)}" '
                       f'stroke="{P95_COLOR}" stroke-opacity="0.45"/>')
            out.append(f'<text x="{right - 3}" y="{_f(y - 2)}" text-anchor="end" '
                       f'fill="{P95_COLOR}" fill-opacity="0.8" stroke="none">{_num(ms)} ms</text>')
    out.append("</g>")

    # Marks: a vertical line each (marks at the same spot share one), labels on up to three rows.
    out.append('<g class="marks">')
    merged: list[tuple[float, list[str]]] = []
    for at, label in sorted(marks, key=lambda m: m[0]):
        if not start <= at <= end:
            continue
        x = x_of(at)
        if merged and x - merged[-1][0] < 3:
            if label not in merged[-1][1]:
                merged[-1][1].append(label)
        else:
            merged.append((x, [label]))
    texts: list[str] = []
    row_end = [-math.inf] * _MARK_ROWS  # where the last label of each row ends (x)
    for x, labels in merged:
        label = " / ".join(labels)
        text_w = _CHAR_W * len(label) + 6
        anchor = "end" if x + text_w > right + 8 else "start"
        begin = x - text_w if anchor == "end" else x
        free = [r for r in range(_MARK_ROWS) if begin >= row_end[r]]
        row = free[0] if free else min(range(_MARK_ROWS), key=lambda r: row_end[r])
        row_end[row] = begin + text_w
        tx = x - 3 if anchor == "end" else x + 3
        ty = top - 4 - 12 * row
        out.append(f'<line x1="{_f(x)}" y1="{_f(ty + 2)}" x2="{_f(x)}" y2="{bottom}" '
                   f'stroke="{MARK_COLOR}" stroke-width="1"/>')
        texts.append(f'<text x="{_f(tx)}" y="{_f(ty)}" text-anchor="{anchor}" '
                     f'fill="{MARK_COLOR}" stroke="#ffffff" stroke-width="3" '
                     f'paint-order="stroke">{escape(label)}</text>')
    out += texts  # after every line, so that no line crosses a label
    out.append("</g>")

    # The frame and the two series.
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               f'stroke="{AXIS_COLOR}"/>')
    xs = [x_of(t) for t, _, _ in inside]
    out += _series([(x, None if e is None else y_err(e)) for x, e in zip(xs, errors, strict=True)],
                   ERROR_COLOR, "error_rate_pct")
    out += _series([(x, None if p is None else y_p95(p)) for x, p in zip(xs, p95s, strict=True)],
                   P95_COLOR, "p95_ms")
    if not inside:
        out.append(f'<text x="{_f((left + right) / 2)}" y="{_f((top + bottom) / 2)}" '
                   'text-anchor="middle" fill="#888888">no samples recorded</text>')

    # Legend.
    ly = 12
    out.append('<g class="legend">')
    out.append(f'<line x1="{left}" y1="{ly}" x2="{left + 18}" y2="{ly}" stroke="{ERROR_COLOR}" '
               'stroke-width="2"/>')
    out.append(f'<text x="{left + 22}" y="{ly + 3}">error rate (%)</text>')
    out.append(f'<line x1="{left + 110}" y1="{ly}" x2="{left + 128}" y2="{ly}" '
               f'stroke="{P95_COLOR}" stroke-width="2"/>')
    out.append(f'<text x="{left + 132}" y="{ly + 3}">p95 latency (ms)</text>')
    out.append(f'<line x1="{left + 235}" y1="{ly}" x2="{left + 253}" y2="{ly}" '
               f'stroke="{AXIS_COLOR}" stroke-dasharray="5,4"/>')
    out.append(f'<text x="{left + 257}" y="{ly + 3}">runbook thresholds</text>')
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
