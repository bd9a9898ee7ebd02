"""flyd, the machine state machine: lifecycles, the restart policy and the health checks.

* Machines move through Fly's states with fixed delays: start (stopped → starting → started, 2 s),
  stop (→ stopping → stopped, 2 s), restart (started → restarting → started, 3 s, with an exit event
  ``requested_stop=true, restarting=true``), update (→ replacing → started, 5 s, new
  ``instance_id``; a stopped machine stays stopped with ``skip_launch``). Events are the four types
  the Machines API reports (launch, update, start, exit), newest first.
* The ``on-failure`` policy: a machine that exits non-zero on its own is restarted 1 s later
  (exit event ``restarting=true``, ``restart_count`` growing; the machine's ``state`` stays
  ``started`` meanwhile, as the Machines API shows it) up to ``max_retries`` within 5 minutes, then
  left ``stopped`` (``restarting=false``). A start, restart or update resets the count.
* An image whose release fails every request (``fail_rate`` 1.0) crashes 2 s after each boot.
* Health checks run on Fly's schedule (service check every 15 s after a 10 s grace period, the
  ``db`` check every 30 s after 20 s); ``updated_at`` is when a status last changed. Stopped
  machines carry no ``checks`` key (as the Machines API answers).

What the active faults do to a boot or a check, flyd asks of them (``FlydEffects``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol

from hotdash_watch.sim.ids import IdSource, rfc3339
from hotdash_watch.sim.logs import Logs
from hotdash_watch.sim.model import Check, Event, SimApp, SimMachine, Timeline

__all__ = [
    "CHECK_SCHEDULE",
    "CHECK_TIMEOUT_MS",
    "DB_CHECK",
    "HIDDEN_CHECK_STATES",
    "SERVICE_CHECK",
    "START_S",
    "Flyd",
    "FlydEffects",
    "Health",
]

START_S = 2.0
STOP_S = 2.0
RESTART_S = 3.0
REPLACE_S = 5.0
FLYD_RESTART_S = 1.0
CRASH_AFTER_S = 2.0
RESTART_WINDOW_S = 300.0
MAX_EVENTS = 100

SERVICE_CHECK = "servicecheck-00-http-8080"
DB_CHECK = "db"
CHECK_SCHEDULE = {SERVICE_CHECK: (10.0, 15.0), DB_CHECK: (20.0, 30.0)}  # (grace, interval)
CHECK_PATHS = {SERVICE_CHECK: "/health", DB_CHECK: "/health/db"}
CHECK_TIMEOUT_MS = 5000.0
HIDDEN_CHECK_STATES = frozenset({"stopped", "suspended", "created", "destroyed"})


class Health(enum.IntEnum):
    """How a machine's health endpoint answers a check, worst first: when several causes
    apply, the lowest wins (an endpoint that refuses at once never gets to time out)."""

    UNAVAILABLE = 1  # 503 Service Unavailable
    ERROR = 2  # 500 Internal Server Error
    TIMEOUT = 3  # no answer within the check's timeout


_STATUS_LINE = {Health.UNAVAILABLE: "503 Service Unavailable",
                Health.ERROR: "500 Internal Server Error"}


class FlydEffects(Protocol):
    """What flyd asks of the active faults."""

    def booted(self, m: SimMachine, cause: str) -> None:
        """``m``'s process was started again (by ``cause``: api, proxy, deploy, flyd…)."""
        ...

    def listening(self, m: SimMachine) -> None:
        """``m``'s process is up and listening (a fault that kills it schedules that now)."""
        ...

    def health(self, m: SimMachine, check: str) -> Health | None:
        """The worst answer the faults make ``m``'s health endpoint give ``check``; ``None``
        when they leave it passing."""
        ...


def worst(*answers: Health | None) -> Health | None:
    """The answer that wins among ``answers`` (see ``Health``); ``None`` when there is none."""
    return min((a for a in answers if a is not None), default=None)


class Flyd:
    """Moves machines through their states and runs their checks, at scenario times."""

    def __init__(self, timeline: Timeline, apps: Mapping[str, SimApp], ids: IdSource,
                 logs: Logs, effects: FlydEffects) -> None:
        self.timeline = timeline
        self.apps = apps
        self.ids = ids
        self.logs = logs
        self.effects = effects

    # ------------------------------------------------------ machine events

    def event(self, m: SimMachine, typ: str, status: str, source: str,
              request: dict[str, Any] | None = None) -> Event:
        now = self.timeline.now
        e = Event(self.ids.ulid(self.timeline.ts(now)), typ, status, source, now, request)
        m.events.append(e)
        del m.events[:-MAX_EVENTS]
        return e

    def exit_event(self, m: SimMachine, code: int, *, oom: bool, requested: bool,
                   restarting: bool, restart_count: int) -> None:
        self.event(m, "exit", "stopped", "flyd", {
            "exit_event": {
                "exit_code": code, "guest_exit_code": 0, "guest_signal": -1, "signal": -1,
                "oom_killed": oom, "requested_stop": requested, "restarting": restarting,
                "exited_at": rfc3339(self.timeline.ts(self.timeline.now), 3),
            },
            "restart_count": restart_count,
        })
        m.last_exit_requested = requested
        m.last_exit_oom = oom

    def set_state(self, m: SimMachine, state: str) -> None:
        if m.state != state:
            m.state = state
        m.updated_s = self.timeline.now

    def max_retries(self, m: SimMachine) -> int:
        restart = m.config.get("restart") or {}
        try:
            return int(restart.get("max_retries", 10))
        except (TypeError, ValueError):
            return 10

    def _restarts(self, m: SimMachine, code: int) -> bool:
        """Whether the restart policy brings ``m`` back after a non-requested exit."""
        policy = (m.config.get("restart") or {}).get("policy", "on-failure")
        if policy == "no" or (policy == "on-failure" and code == 0):
            return False
        recent = [t for t in m.restart_times if t > self.timeline.now - RESTART_WINDOW_S]
        m.restart_times = recent
        return len(recent) < self.max_retries(m)

    # ------------------------------------------------------- lifecycles

    def begin_start(self, m: SimMachine, cause: str) -> None:
        m.gen += 1
        m.app_up = False
        m.restart_count = 0
        m.restart_times.clear()
        self.set_state(m, "starting")
        self.logs.runner(m, f"Starting machine ({cause})" if cause == "proxy"
                         else "Starting machine")
        self.timeline.after(START_S, self.boot, m, m.gen, cause)

    def begin_stop(self, m: SimMachine, cause: str) -> None:
        m.gen += 1
        self.set_state(m, "stopping")
        self.logs.log(self.apps[m.app], m, " INFO Sending signal SIGINT to main child process "
                      "w/ PID 313")
        self.timeline.after(STOP_S, self._finish_stop, m, m.gen)

    def _finish_stop(self, m: SimMachine, gen: int) -> None:
        if m.gen != gen:
            return
        m.gen += 1
        m.app_up = False
        m.boot_s = None
        self.logs.log(self.apps[m.app], m, " INFO Main child exited normally with code: 0")
        self.logs.log(self.apps[m.app], m, " INFO Starting clean up.")
        self.exit_event(m, 0, oom=False, requested=True, restarting=False,
                        restart_count=m.restart_count)
        self.set_state(m, "stopped")

    def begin_restart(self, m: SimMachine) -> None:
        m.gen += 1
        m.app_up = False
        m.boot_s = None
        self.logs.log(self.apps[m.app], m, " INFO Sending signal SIGINT to main child process "
                      "w/ PID 313")
        self.exit_event(m, 0, oom=False, requested=True, restarting=True,
                        restart_count=m.restart_count)
        m.restart_count = 0
        m.restart_times.clear()
        self.set_state(m, "restarting")
        self.timeline.after(RESTART_S, self.boot, m, m.gen, "api")

    def begin_replace(self, m: SimMachine, launch: bool, cause: str) -> None:
        m.versions.append(m.instance_id)
        m.instance_id = self.ids.ulid(self.timeline.ts(self.timeline.now))
        m.gen += 1
        self.event(m, "update", "replacing", "user")
        m.restart_count = 0
        m.restart_times.clear()
        if launch:
            m.app_up = False
            m.boot_s = None
            self.set_state(m, "replacing")
            self.timeline.after(REPLACE_S, self.boot, m, m.gen, cause)
        else:
            self.set_state(m, m.state)

    def boot(self, m: SimMachine, gen: int, cause: str) -> None:
        """The machine's process starts (after a start, restart, update or flyd's restart)."""
        if m.gen != gen:
            return
        m.gen += 1
        m.flyd_pending = False
        app = self.apps[m.app]
        self.event(m, "start", "started", "flyd")
        self.set_state(m, "started")
        m.boot_s = self.timeline.now
        m.last_exit_requested = False
        self.logs.runner(m, "Machine started in 1.204s")
        fail = app.image_fail_rate(m.image)
        self.effects.booted(m, cause)
        if fail >= 1.0:
            m.app_up = False
            self.logs.log(app, m, "Traceback (most recent call last):", level="error")
            self.logs.log(app, m, "ModuleNotFoundError: No module named "
                          "'hotdash_agents.runtime'", level="error")
            self.timeline.after(CRASH_AFTER_S, self.crash, m, m.gen, 1)
            return
        m.app_up = True
        self.logs.log(app, m, "Listening on 0.0.0.0:8080")
        self.effects.listening(m)

    def crash(self, m: SimMachine, gen: int, code: int, final: bool = False) -> None:
        """The process dies of an error (unless ``m`` was booted or stopped meanwhile)."""
        if m.gen != gen or m.state != "started":
            return
        app = self.apps[m.app]
        if app.image_fail_rate(m.image) < 1.0:
            self.logs.log(app, m, "ERROR fatal: unrecoverable error in worker, exiting",
                          level="error")
        self.logs.log(app, m, f" INFO Main child exited normally with code: {code}")
        self.exit(m, code, oom=False, final=final)

    def exit(self, m: SimMachine, code: int, *, oom: bool, final: bool = False) -> None:
        """The process exits on its own; the restart policy decides what happens next
        (``final``: flyd does not restart it whatever the policy)."""
        m.gen += 1
        m.app_up = False
        m.boot_s = None
        restarting = not final and self._restarts(m, code)
        self.exit_event(m, code, oom=oom, requested=False, restarting=restarting,
                        restart_count=m.restart_count)
        if restarting:
            m.flyd_pending = True
            m.updated_s = self.timeline.now
            self.logs.runner(m, f"machine exited with exit code {code}, restarting")
            self.timeline.after(FLYD_RESTART_S, self._restart, m, m.gen)
        else:
            self.logs.runner(m, f"machine exited with exit code {code}, not restarting")
            self.set_state(m, "stopped")

    def _restart(self, m: SimMachine, gen: int) -> None:
        if m.gen != gen:
            return
        m.restart_count += 1
        m.restart_times.append(self.timeline.now)
        self.boot(m, gen, "flyd")

    # ------------------------------------------------------------- checks

    def passing_output(self, m: SimMachine, name: str) -> str:
        if name == SERVICE_CHECK:
            return "Success"
        return f"HTTP GET http://[{m.private_ip}]:8080{CHECK_PATHS[name]}: 200 OK"

    def check_result(self, m: SimMachine, name: str) -> tuple[str, str]:
        """What check ``name`` of ``m`` finds now: (status, output)."""
        if m.state != "started" or not m.app_up:
            return "critical", f"dial tcp [{m.private_ip}]:8080: connect: connection refused"
        answer = self.effects.health(m, name)
        if name == SERVICE_CHECK and self.apps[m.app].image_fail_rate(m.image) >= 0.5:
            answer = worst(answer, Health.ERROR)
        if answer is None:
            return "passing", self.passing_output(m, name)
        if answer is Health.TIMEOUT:
            return "critical", "context deadline exceeded"
        url = f"HTTP GET http://[{m.private_ip}]:8080{CHECK_PATHS[name]}"
        return "critical", f"{url}: {_STATUS_LINE[answer]}"

    def check_run(self, m: SimMachine, name: str) -> None:
        """Run check ``name`` of ``m`` now and schedule its next run."""
        now = self.timeline.now
        grace, interval = CHECK_SCHEDULE[name]
        self.timeline.after(interval, self.check_run, m, name)
        if m.state in HIDDEN_CHECK_STATES:
            return
        if m.state == "started" and m.boot_s is not None and now - m.boot_s < grace:
            return
        status, output = self.check_result(m, name)
        current = m.checks.get(name)
        if current is None or current.status != status:
            m.checks[name] = Check(status, output, now)
        else:
            current.output = output
