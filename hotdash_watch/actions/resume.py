"""What became of an action the watcher did not see end (it restarted during it).

A machine action is never sent again blindly: the machine is read once and ``confirm`` says,
from its state alone, whether the action took (a start or restart: started with passing or
no checks; a stop: stopped or suspended; a memory raise: started with at least the memory
asked for). ``unconfirmed`` is the answer when the machine cannot be read. A rollback is
carried on from its recorded progress instead (``rollback_step``) while its incident is open.
"""

from __future__ import annotations

from hotdash_watch.actions.base import ActionResult
from hotdash_watch.fly import FlyClient, FlyError, Machine
from hotdash_watch.mitigation.step_records import stored_why
from hotdash_watch.model.action import ActionKind, ActionRecord, Outcome
from hotdash_watch.policy import Step

__all__ = ["check", "confirm", "rollback_step", "unconfirmed"]


def confirm(rec: ActionRecord, machine: Machine) -> tuple[Outcome, str]:
    """The outcome of ``rec`` as ``machine``'s state shows it, and the sentence saying so."""
    if rec.kind is ActionKind.STOP:
        ok = machine.state in ("stopped", "suspended")
    elif rec.kind is ActionKind.RAISE_MEMORY:
        ok = (machine.memory_mb or 0) >= int(rec.detail.get("memory_mb") or 0) and \
            machine.state == "started"
    else:
        ok = machine.state == "started" and machine.checks_passing is not False
    if ok:
        return Outcome.OK, (f"confirmed after the watcher restarted: {rec.target} is "
                            f"{machine.state}; not repeated")
    return Outcome.FAILED, (f"not confirmed after the watcher restarted: {rec.target} is "
                            f"{machine.state}; not repeated (the policy decides again)")


def unconfirmed(error: FlyError | None = None) -> tuple[Outcome, str]:
    """Failed, not confirmed: the machine could not be read (``error``), or there is nothing
    to read (no Fly client, or a rollback that may not be carried on)."""
    if error is None:
        return Outcome.FAILED, "not confirmed: the watcher restarted during it"
    return Outcome.FAILED, (f"not confirmed after the watcher restarted ({type(error).__name__}"
                            "); not repeated")


async def check(rec: ActionRecord, client: FlyClient | None) -> ActionResult:
    """Read the machine ``rec`` acted on and say what became of the action."""
    if client is None or rec.kind is ActionKind.ROLLBACK:
        outcome, text = unconfirmed()
    else:
        try:
            machine = await client.get_machine(rec.app, rec.target)
        except FlyError as e:
            outcome, text = unconfirmed(e)
        else:
            outcome, text = confirm(rec, machine)
    return ActionResult(outcome, text, dict(rec.detail))


def rollback_step(rec: ActionRecord) -> Step:
    """The step of an interrupted rollback, to carry it on from the progress in its detail."""
    return Step(rec.kind, rec.target, stored_why(rec), rec.text,
                {"image": rec.detail.get("image"), "version": rec.detail.get("version"),
                 "from_version": rec.detail.get("from_version")})
