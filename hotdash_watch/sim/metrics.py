"""Fly's Prometheus series for the simulated apps: the edge's responses and response times
(what the proxy counted) and each instance's up and OOM gauges (what flyd shows)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from hotdash_watch.sim.model import LATENCY_BUCKETS, SimApp

__all__ = ["metrics_text"]


def metrics_text(apps: Iterable[SimApp]) -> str:
    """Fly's edge and instance series in the Prometheus text exposition format."""
    apps = list(apps)
    out = [
        "# HELP fly_edge_http_responses_count HTTP responses sent at Fly's edge, by status.",
        "# TYPE fly_edge_http_responses_count counter",
    ]
    for app in apps:
        counts = Counter({"200": 0, "500": 0, "502": 0, "503": 0})
        counts.update(app.responses)
        for status in sorted(counts):
            out.append(f'fly_edge_http_responses_count{{app="{app.name}",'
                       f'status="{status}"}} {counts[status]}')
    out += ["# HELP fly_edge_http_response_time_seconds Response time at Fly's edge.",
            "# TYPE fly_edge_http_response_time_seconds histogram"]
    for app in apps:
        cumulative = 0
        for le, n in zip((*LATENCY_BUCKETS, math.inf), app.buckets, strict=True):
            cumulative += n
            label = "+Inf" if le == math.inf else f"{le:g}"
            out.append(f'fly_edge_http_response_time_seconds_bucket{{app="{app.name}",'
                       f'le="{label}"}} {cumulative}')
        out.append(f'fly_edge_http_response_time_seconds_sum{{app="{app.name}"}} '
                   f"{app.latency_sum:.6f}")
        out.append(f'fly_edge_http_response_time_seconds_count{{app="{app.name}"}} '
                   f"{app.latency_count}")
    out += ["# HELP fly_instance_up Whether the instance is running (1) or not (0).",
            "# TYPE fly_instance_up gauge"]
    for app in apps:
        for m in app.machines:
            up = int(m.state == "started" and m.app_up)
            out.append(f'fly_instance_up{{app="{app.name}",instance="{m.id}"}} {up}')
    out += ["# HELP fly_instance_exit_oom Whether the instance's last exit was an OOM kill.",
            "# TYPE fly_instance_exit_oom gauge"]
    for app in apps:
        for m in app.machines:
            out.append(f'fly_instance_exit_oom{{app="{app.name}",instance="{m.id}"}} '
                       f"{int(m.last_exit_oom)}")
    return "\n".join(out) + "\n"
