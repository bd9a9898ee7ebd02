"""Values of Prometheus series: ``Sample``, and ``parse_prometheus`` for query answers.

A ``Sample`` is one value of one series at one time, whether it came from an instant query
against Fly's managed Prometheus (parsed here) or from a ``/metrics`` text (``fly.exposition``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from hotdash_watch.fly.models.payload import PayloadError, WireModel, validate

__all__ = ["Sample", "parse_prometheus"]


@dataclass(frozen=True)
class Sample:
    """One value of a series: a Prometheus query result or a scraped ``/metrics`` line."""

    labels: Mapping[str, str] = field(hash=False)
    value: float
    timestamp: float


# --- wire models (private; their class names appear in PayloadError messages) -------------------


class _PromSeries(WireModel):
    metric: dict[str, str] = {}
    value: tuple[float, str] | None = None
    values: list[tuple[float, str]] | None = None


class _PromData(WireModel):
    resultType: str
    result: Any


class _PromBody(WireModel):
    status: Literal["success"]
    data: _PromData


# --- parsing --------------------------------------------------------------------------------------


def _float(text: str) -> float:
    """A Prometheus sample value: a decimal, or NaN / +Inf / -Inf."""
    try:
        return float(text)
    except ValueError as exc:
        raise PayloadError(f"sample value {text[:40]!r} is not a number") from exc


def parse_prometheus(data: Any) -> list[Sample]:
    """The samples of a successful Prometheus query answer (vector, scalar or matrix).

    A matrix gives every point of every series, oldest first within a series.
    """
    body = validate(_PromBody, data, "prometheus")
    kind, result = body.data.resultType, body.data.result
    if kind == "scalar":
        point = validate(_PromSeries, {"value": result}, "prometheus scalar").value
        if point is None:
            raise PayloadError("unexpected prometheus JSON: scalar without a value")
        return [Sample(MappingProxyType({}), _float(point[1]), point[0])]
    if kind not in ("vector", "matrix") or not isinstance(result, Sequence):
        raise PayloadError(f"unexpected prometheus result type {kind[:40]!r}")
    samples = []
    for item in result:
        series = validate(_PromSeries, item, "prometheus series")
        labels = MappingProxyType(dict(series.metric))
        points = series.values if kind == "matrix" else [series.value] if series.value else []
        for ts, value in points or ():
            samples.append(Sample(labels, _float(value), ts))
    return samples
