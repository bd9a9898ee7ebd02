"""Instant queries against Fly's managed Prometheus (``PrometheusApi``).

The answer is the Prometheus query API's JSON, read into ``Sample`` values; an answer with
``"status": "error"`` becomes a ``FlyError`` like an error status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hotdash_watch.fly.core import FlyCore
from hotdash_watch.fly.errors import FlyRejected, FlyUnavailable, parse_error_body
from hotdash_watch.fly.models import Sample, parse_prometheus

__all__ = ["PrometheusApi"]


class PrometheusApi(FlyCore):
    """Fly's managed Prometheus (``prometheus_url``, one organisation) of one Fly client."""

    async def query(self, promql: str) -> list[Sample]:
        """An instant PromQL (MetricsQL) query against Fly's managed Prometheus."""
        if self._prometheus is None:
            raise ValueError("no prometheus_url configured")
        if not promql.strip():
            raise ValueError("empty PromQL query")
        ctx = {"call": "query", "app": None, "machine": None}

        def parse(data: Any) -> list[Sample]:
            if isinstance(data, Mapping) and data.get("status") == "error":
                text, code = parse_error_body(json.dumps(data))
                unavailable = code in ("timeout", "unavailable", "internal")
                kind = FlyUnavailable if unavailable else FlyRejected
                raise kind(self._scrub(text), code=code, **ctx)
            return parse_prometheus(data)

        return await self._call(
            "GET",
            self._prometheus / "api" / "v1" / "query",
            call="query",
            params={"query": promql},
            parse=parse,
        )
