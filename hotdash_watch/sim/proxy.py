"""Fly's proxy: request routing, what a machine answers, the edge counters, background traffic
and autostart/autostop.

* The proxy sends each request to the next started machine (round robin) whose service check is
  not critical (or that is still in its grace period); with none it autostarts a stopped machine
  (the request waits, up to 10 s) or answers 503 at the edge. A machine whose process is down
  answers 502 (``connection refused``). Autostop follows Fly's docs: every 300 s, when the app has
  spare capacity and more started machines than ``min_machines_running``, the proxy stops one (the
  one that served the fewest requests in that period).
* Background traffic: ``traffic_rps`` requests per scenario second, served in one-second batches
  through the same code as proxied requests; both count in the edge metrics.

What the active faults do to a request, the proxy asks of them (``ProxyEffects``): a request
passes each ``Stage`` in order, and an answer at a later stage overrides an earlier one.
"""

from __future__ import annotations

import bisect
import enum
import math
import random
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from hotdash_watch.sim.flyd import CHECK_SCHEDULE, SERVICE_CHECK, Flyd
from hotdash_watch.sim.logs import Logs
from hotdash_watch.sim.model import LATENCY_BUCKETS, SimApp, SimMachine, Timeline

__all__ = ["PROXY_WAIT_S", "Answer", "Proxy", "ProxyEffects", "Stage"]

TICK_S = 1.0
AUTOSTOP_PERIOD_S = 300.0
PROXY_WAIT_S = 10.0
LOG_SAMPLE_OK = 0.1
BASE_MEDIAN_S = 0.035
BASE_SIGMA = 0.45
SLOW_SIGMA = 0.35
Z95 = 1.6448536269514722
BACKGROUND_PATHS = ("/api/chat", "/api/query", "/api/tools/search", "/api/sessions")


class Stage(enum.Enum):
    """Where along a request a fault may answer in the app's place, in the order passed."""

    BACKEND = 1  # the services the app calls (database, model API)
    HANDLER = 2  # the app's request handler (the image's own failures come after this)
    HEALTH = 3  # the health endpoint's own answer


class Answer(NamedTuple):
    """What the app answers instead of 200 ok, and the error line it logs."""

    status: int
    body: str
    line: str


class ProxyEffects(Protocol):
    """What the proxy asks of the active faults."""

    def slow_p95_ms(self, m: SimMachine) -> list[float]:
        """The p95 latencies (ms) the faults impose on ``m``'s requests; empty: none."""
        ...

    def answer(self, stage: Stage, m: SimMachine, path: str,
               rng: random.Random) -> Answer | None:
        """The faults' answer to a request for ``path`` on ``m`` at ``stage`` (draws from
        ``rng``, the traffic's randomness); ``None``: they let it through."""
        ...

    def holds_autostop(self, app: str) -> bool:
        """Whether the faults keep the proxy from autostopping ``app``'s machines."""
        ...


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


class Proxy:
    """Routes requests to machines and counts what the edge answers."""

    def __init__(self, timeline: Timeline, apps: Mapping[str, SimApp], flyd: Flyd, logs: Logs,
                 effects: ProxyEffects, seed: int) -> None:
        self.timeline = timeline
        self.apps = apps
        self.flyd = flyd
        self.logs = logs
        self.effects = effects
        self.rng_traffic = random.Random(f"{seed}:traffic")
        self.rng_proxy = random.Random(f"{seed}:proxy")

    def _routable(self, m: SimMachine) -> bool:
        if m.state != "started" or not m.config.get("services"):
            return False
        grace = CHECK_SCHEDULE[SERVICE_CHECK][0]
        if m.boot_s is not None and self.timeline.now - m.boot_s < grace:
            return True
        check = m.checks.get(SERVICE_CHECK)
        return check is None or check.status != "critical"

    def _booting(self, app: SimApp) -> bool:
        return any(m.state in ("starting", "restarting", "replacing") or m.flyd_pending
                   for m in app.machines)

    def route(self, app: SimApp) -> SimMachine | None:
        """The machine the proxy sends the next request to; autostarts one when none serves."""
        candidates = [m for m in app.machines if self._routable(m)]
        if candidates:
            m = candidates[app.rr % len(candidates)]
            app.rr += 1
            return m
        self._autostart(app)
        return None

    def can_wait(self, app: SimApp) -> bool:
        """Whether a request with no machine should wait (a machine is on its way up)."""
        return self._booting(app)

    def _autostart(self, app: SimApp) -> None:
        if self._booting(app):
            return
        for m in app.machines:
            if m.state in ("stopped", "suspended") and m.service().get("autostart"):
                self.logs.log(app, m, f"Starting machine {m.id} for a request (autostart)",
                              provider="proxy")
                self.flyd.begin_start(m, "proxy")
                return

    def serve(self, app: SimApp, m: SimMachine, path: str, *, log_all: bool,
              method: str = "GET", at: float | None = None) -> tuple[int, float, str]:
        """One request served by ``m``: (status, latency in seconds, body).

        ``at`` is when it arrived (for its log lines), by default the world's now.
        """
        rng = self.rng_traffic
        m.period_requests += 1
        m.last_request_s = self.timeline.now
        if not m.app_up:
            self.logs.log(app, m, "could not make HTTP request to instance: connection refused",
                          level="error", provider="proxy", t=at)
            return 502, 0.002 + 0.003 * rng.random(), "Bad Gateway"
        latency = _lognormal(rng, BASE_MEDIAN_S, BASE_SIGMA)
        slow = self.effects.slow_p95_ms(m)
        if slow:
            p95_s = max(slow) / 1000.0
            latency = _lognormal(rng, p95_s / math.exp(Z95 * SLOW_SIGMA), SLOW_SIGMA)
        answer = self.effects.answer(Stage.BACKEND, m, path, rng)
        answer = self.effects.answer(Stage.HANDLER, m, path, rng) or answer
        fail = app.image_fail_rate(m.image)
        if 0 < fail < 1.0 and rng.random() < fail:
            answer = Answer(500, "Internal Server Error", "ERROR unhandled exception in request "
                            "handler: KeyError: 'tenant_id'")
        answer = self.effects.answer(Stage.HEALTH, m, path, rng) or answer
        status, body, line = answer or (200, "ok", "")
        ms = round(latency * 1000)
        if line:
            self.logs.log(app, m, f"{line} ({method} {path})", level="error", t=at)
        if slow and ms >= 1000 and rng.random() < 0.5:
            self.logs.log(app, m, f"WARN slow request {method} {path} took {ms} ms",
                          level="warn", t=at)
        if log_all or (not line and rng.random() < LOG_SAMPLE_OK):
            self.logs.log(app, m, f"{method} {path} {status} {ms}ms",
                          level="info" if status < 500 else "error", t=at)
        return status, latency, body

    def no_machine(self, app: SimApp, waited: float) -> None:
        """A request no machine could take: the edge answers 503 (and the proxy logs why)."""
        self.record_edge(app, 503, waited + 0.002)
        if self.rng_proxy.random() < 0.2:
            self.logs.log(app, None, "[PR04] could not find a good candidate within 20 attempts "
                          "at load balancing", level="error", provider="proxy")

    def record_edge(self, app: SimApp, status: int, latency: float) -> None:
        """Count one response at Fly's edge (status code and latency histogram)."""
        app.responses[str(status)] += 1
        app.buckets[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
        app.latency_sum += latency
        app.latency_count += 1

    # --------------------------------------------------- background traffic

    def tick(self) -> None:
        """One second of background traffic for every app (and the next tick scheduled)."""
        now = self.timeline.now
        self.timeline.after(TICK_S, self.tick)
        for app in self.apps.values():
            self._drain_pending(app)
            app.carry += app.spec.traffic_rps * TICK_S
            n = int(app.carry)
            app.carry -= n
            for i in range(n):
                path = BACKGROUND_PATHS[self.rng_traffic.randrange(len(BACKGROUND_PATHS))]
                m = self.route(app)
                if m is not None:
                    arrived = now - TICK_S + (i + 1) * TICK_S / n
                    status, latency, _ = self.serve(app, m, path, log_all=False, at=arrived)
                    self.record_edge(app, status, latency)
                elif self._booting(app):
                    app.pending.append(now)
                else:
                    self.no_machine(app, 0.0)

    def _drain_pending(self, app: SimApp) -> None:
        if not app.pending:
            return
        keep: list[float] = []
        for arrived in app.pending:
            waited = self.timeline.now - arrived
            m = self.route(app)
            if m is not None:
                status, latency, _ = self.serve(app, m, BACKGROUND_PATHS[0], log_all=False)
                self.record_edge(app, status, waited + latency)
            elif waited >= PROXY_WAIT_S or not self._booting(app):
                self.no_machine(app, waited)
            else:
                keep.append(arrived)
        app.pending = keep

    # ------------------------------------------------------------ autostop

    def autostop_check(self, app: SimApp) -> None:
        """Fly's periodic autostop of ``app`` (and the next check scheduled)."""
        self.timeline.after(AUTOSTOP_PERIOD_S, self.autostop_check, app)
        started = [m for m in app.machines if m.state == "started"]
        counts = {m.id: m.period_requests for m in app.machines}
        for m in app.machines:
            m.period_requests = 0
        eligible = [m for m in started if m.service().get("autostop")]
        if not eligible or self.effects.holds_autostop(app.name):
            return
        min_running = int(eligible[0].service().get("min_machines_running") or 0)
        if len(started) <= min_running:
            return
        soft = int((eligible[0].service().get("concurrency") or {}).get("soft_limit") or 200)
        mean_latency = app.latency_sum / app.latency_count if app.latency_count else 0.05
        load = sum(counts.values()) * mean_latency / AUTOSTOP_PERIOD_S
        if load > (len(started) - 1) * soft:
            return
        pick = min(eligible, key=lambda m: (counts.get(m.id, 0), -m.index))
        self.logs.log(app, pick, f"App {app.name} has excess capacity, autostopping machine "
                      f"{pick.id}. {len(started) - 1} out of {len(started)} machines left "
                      f"running (region={pick.region}, process group=app)", provider="proxy")
        self.flyd.begin_stop(pick, "autostop")
