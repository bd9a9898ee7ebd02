"""After a watcher restart: an unfinished machine action is confirmed or failed from the
machine's state (never sent again), and an interrupted rollback is carried on."""

from __future__ import annotations

from typing import Any

import pytest

from hotdash_watch.actions import resume
from hotdash_watch.fly import FlyError, Machine
from hotdash_watch.fly.errors import FlyNotFound, FlyUnavailable
from hotdash_watch.fly.models import CheckStatus
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import Why

APP = "svc"


def machine(state: str, checks: tuple[str, ...] = (), memory_mb: int | None = 512) -> Machine:
    """Machine m1 as the Machines API reads it after the restart."""
    return Machine(id="m1", name="m1", state=state, region="ams", instance_id="i-1",
                   image="registry.fly.io/svc:v6", memory_mb=memory_mb, cpus=1,
                   cpu_kind="shared", process_group="app", release_version=None,
                   host_status="ok",
                   checks=tuple(CheckStatus("svc", s, "", None) for s in checks), events=(),
                   autostop=None, autostart=None, is_standby=False, restart_policy=None,
                   config={})


def unfinished(kind: ActionKind, **detail: Any) -> ActionRecord:
    """An action a previous run left ``started``."""
    target = APP if kind is ActionKind.ROLLBACK else "m1"
    return ActionRecord(id=7, app=APP, incident_id="inc-1", kind=kind, target=target,
                        reason="errors_after_release" if kind is ActionKind.ROLLBACK
                        else "machine_down", text=f"{kind.value} {target}",
                        outcome=Outcome.STARTED, at=1_000.0, detail=dict(detail))


OK, FAILED = Outcome.OK, Outcome.FAILED


class TestConfirm:
    @pytest.mark.parametrize(("kind", "m", "outcome"), [
        (ActionKind.START, machine("started", ("passing",)), OK),
        (ActionKind.START, machine("started"), OK),
        (ActionKind.START, machine("started", ("passing", "critical")), FAILED),
        (ActionKind.START, machine("stopped"), FAILED),
        (ActionKind.START, machine("starting"), FAILED),
        (ActionKind.RESTART, machine("started", ("passing",)), OK),
        (ActionKind.RESTART, machine("started", ("critical",)), FAILED),
        (ActionKind.RESTART, machine("stopped"), FAILED),
        (ActionKind.SCALE_OUT, machine("started", ("passing",)), OK),
        (ActionKind.STOP, machine("stopped"), OK),
        (ActionKind.STOP, machine("suspended"), OK),
        (ActionKind.STOP, machine("started", ("passing",)), FAILED),
    ], ids=["start-passing", "start-no-checks", "start-failing", "start-stopped",
            "start-in-flux", "restart-passing", "restart-failing", "restart-stopped",
            "scale-out-passing", "stop-stopped", "stop-suspended", "stop-still-started"])
    def test_machine_action_from_the_machine_state(self, kind: ActionKind, m: Machine,
                                                   outcome: Outcome):
        """A start or restart took when the machine is started without a failing check; a
        stop when it is stopped or suspended."""
        got, text = resume.confirm(unfinished(kind), m)
        assert got is outcome
        assert f"m1 is {m.state}; not repeated" in text

    @pytest.mark.parametrize(("m", "outcome"), [
        (machine("started", memory_mb=1024), OK),
        (machine("started", memory_mb=2048), OK),
        (machine("started", memory_mb=512), FAILED),
        (machine("started", memory_mb=None), FAILED),
        (machine("stopped", memory_mb=1024), FAILED),
    ], ids=["raised", "more-than-asked", "not-raised", "memory-unknown", "raised-not-started"])
    def test_memory_raise_from_memory_and_state(self, m: Machine, outcome: Outcome):
        """A memory raise took when the machine is started with at least the memory asked
        for."""
        got, _ = resume.confirm(unfinished(ActionKind.RAISE_MEMORY, memory_mb=1024), m)
        assert got is outcome

    def test_texts(self):
        """Confirmed says so; not confirmed says the policy decides again; neither repeats."""
        rec = unfinished(ActionKind.START)
        assert resume.confirm(rec, machine("started")) == (
            OK, "confirmed after the watcher restarted: m1 is started; not repeated")
        assert resume.confirm(rec, machine("stopped")) == (
            FAILED, "not confirmed after the watcher restarted: m1 is stopped; not repeated "
                    "(the policy decides again)")


class FakeClient:
    """Answers ``get_machine`` with one machine or one error, and counts the calls."""

    def __init__(self, answer: Machine | FlyError) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    async def get_machine(self, app: str, machine_id: str) -> Machine:
        self.calls.append((app, machine_id))
        if isinstance(self.answer, FlyError):
            raise self.answer
        return self.answer


class TestCheck:
    async def test_reads_the_machine_once(self):
        """The machine of the action is read once; the result keeps the stored detail."""
        client = FakeClient(machine("started", ("passing",)))
        rec = unfinished(ActionKind.START, key="start:m1", calls=[{"call": "start"}])
        result = await resume.check(rec, client)  # type: ignore[arg-type]
        assert client.calls == [(APP, "m1")]
        assert result.outcome is OK and result.detail == rec.detail
        assert result.detail is not rec.detail

    @pytest.mark.parametrize("error", [
        FlyUnavailable("502 from the API", call="get_machine", app=APP, machine="m1"),
        FlyNotFound("machine not found", call="get_machine", app=APP, machine="m1"),
    ], ids=["unavailable", "not-found"])
    async def test_a_fly_error_is_not_confirmed(self, error: FlyError):
        """When Fly cannot say, the action is failed, naming the error, and not repeated."""
        result = await resume.check(unfinished(ActionKind.RESTART),
                                    FakeClient(error))  # type: ignore[arg-type]
        assert result.outcome is FAILED
        assert result.text == (f"not confirmed after the watcher restarted "
                               f"({type(error).__name__}); not repeated")

    @pytest.mark.parametrize(("kind", "client"), [
        (ActionKind.START, None),
        (ActionKind.ROLLBACK, FakeClient(machine("started"))),
    ], ids=["no-client", "rollback"])
    async def test_nothing_to_read(self, kind: ActionKind, client: FakeClient | None):
        """Without a Fly client, or for a rollback not carried on, nothing is read and the
        action is failed."""
        result = await resume.check(unfinished(kind), client)  # type: ignore[arg-type]
        assert (result.outcome, result.text) == (
            FAILED, "not confirmed: the watcher restarted during it")
        assert client is None or client.calls == []


class TestRollbackStep:
    def test_carries_on_from_the_stored_target(self):
        """The rollback's step goes to the stored image and version, from the stored
        version, for the stored reason and with the stored sentence."""
        rec = unfinished(ActionKind.ROLLBACK, image="registry.fly.io/svc:v6", version=6,
                         from_version=7, done=["m1"])
        step = resume.rollback_step(rec)
        assert (step.kind, step.target, step.why, step.text) == (
            ActionKind.ROLLBACK, APP, Why.ERRORS_AFTER_RELEASE, "rollback svc")
        assert step.params == {"image": "registry.fly.io/svc:v6", "version": 6,
                               "from_version": 7}
