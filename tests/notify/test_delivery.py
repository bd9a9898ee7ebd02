"""The delivery decision as a table: (row, answer, channel, now) -> (reason, state, attempts,
next attempt, copy, recorded error), and properties that hold for any input: the next attempt
is never in the past and a page is never lost."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdash_watch.model.page import OutboxRow, PageState
from hotdash_watch.notify.delivery import (
    JITTER,
    Answer,
    Attempt,
    Breakage,
    Channel,
    Health,
    Reason,
    Rules,
    Transition,
    backoff_delay,
    backoff_s,
    decide,
    failed_over,
    paging_note,
)

T0 = 1_772_366_400.0
NOW = T0 + 30
RULES = Rules(initial_s=5.0, max_s=300.0, failover_after_s=120.0)


def row(attempts: int = 0, due: float = NOW, created: float = T0, **changes: Any) -> OutboxRow:
    """A pending row of the slack channel, queued at ``created``, due at ``due``."""
    base = OutboxRow(id=7, key="INC-1:opened:1", channel="slack", incident_id="INC-1",
                     event="opened", severity="SEV-1", page={"key": "INC-1:opened:1"},
                     state=PageState.PENDING, attempts=attempts, next_attempt_at=due,
                     created_at=created, sent_at=None, last_error=None)
    return dataclasses.replace(base, **changes)


OK = Attempt(Answer.DELIVERED)
DOWN = Attempt(Answer.RETRYABLE, "HTTP 503")
NO = Attempt(Answer.REJECTED, "HTTP 400")
WELL = Channel()
WELL_PD = Channel(fallback="pd")
FAILING = Channel(failing_since=NOW - 119, failing_detail="HTTP 503", fallback="pd")
FAILED_OVER = Channel(failing_since=NOW - 120, failing_detail="HTTP 503", fallback="pd")
ALL_DOWN = Channel(failing_since=NOW - 300, failing_detail="HTTP 503")
GONE = Channel(configured=False, fallback="pd")
GONE_ALONE = Channel(configured=False)

P, S, F, H = PageState.PENDING, PageState.SENT, PageState.FAILED, PageState.HANDED_OVER
R = Reason

# name, row, attempt, channel, jitter -> reason, state, attempts, next_attempt_at, hand_to, error
TABLE = [
    ("delivered", row(), OK, WELL, 1.0,
     R.DELIVERED, S, 1, NOW, None, None),
    ("delivered on the probe of a failed-over channel", row(4), OK, FAILED_OVER, 1.0,
     R.DELIVERED, S, 5, NOW, None, None),
    ("first retry after initial_s", row(), DOWN, WELL, 1.0,
     R.RETRY, P, 1, NOW + 5, None, "HTTP 503"),
    ("third retry doubles twice, with jitter", row(2), DOWN, WELL, 1.2,
     R.RETRY, P, 3, NOW + 24, None, "HTTP 503"),
    ("jitter never takes it below initial_s", row(), DOWN, WELL, 0.8,
     R.RETRY, P, 1, NOW + 5, None, "HTTP 503"),
    ("backoff stops at max_s", row(20), DOWN, WELL, 1.2,
     R.RETRY, P, 21, NOW + 300, None, "HTTP 503"),
    ("Retry-After longer than the backoff", row(),
     Attempt(Answer.RETRYABLE, "HTTP 429", retry_after=60.0), WELL, 1.0,
     R.RETRY_AFTER, P, 1, NOW + 60, None, "HTTP 429"),
    ("Retry-After capped at max_s", row(),
     Attempt(Answer.RETRYABLE, "HTTP 429", retry_after=1e6), WELL, 1.0,
     R.RETRY_AFTER, P, 1, NOW + 300, None, "HTTP 429"),
    ("Retry-After shorter than the backoff", row(3),
     Attempt(Answer.RETRYABLE, "HTTP 503", retry_after=2.0), WELL, 1.0,
     R.RETRY, P, 4, NOW + 40, None, "HTTP 503"),
    ("Retry-After that is no number", row(),
     Attempt(Answer.RETRYABLE, "HTTP 503", retry_after=math.nan), WELL, 1.0,
     R.RETRY, P, 1, NOW + 5, None, "HTTP 503"),
    ("retry on a failing channel stays on it", row(1), DOWN, FAILED_OVER, 1.0,
     R.RETRY, P, 2, NOW + 10, None, "HTTP 503"),
    ("rejected, a copy on the fallback", row(), NO, WELL_PD, 1.0,
     R.REJECTED, F, 1, NOW, "pd", "HTTP 400; handed over to pd"),
    ("rejected, nowhere else to go", row(), NO, WELL, 1.0,
     R.UNDELIVERABLE, F, 1, NOW, None, "HTTP 400"),
    ("unreadable page is not counted as sent", row(2),
     Attempt(Answer.UNREADABLE, "unreadable page (KeyError)"), WELL_PD, 1.0,
     R.UNREADABLE, F, 2, NOW, None, "unreadable page (KeyError)"),
    ("not sent, channel well", row(1, due=NOW - 3), None, WELL_PD, 1.0,
     R.WAITING, P, 1, NOW - 3, None, None),
    ("not sent, failing a second short of failover", row(1), None, FAILING, 1.0,
     R.WAITING, P, 1, NOW, None, None),
    ("not sent, failed over", row(3, due=NOW + 40), None, FAILED_OVER, 1.0,
     R.FAILED_OVER, H, 3, NOW + 40, "pd",
     "channel slack failing for 2 min: HTTP 503; handed over to pd"),
    ("not sent, failed over with every channel down", row(3, due=NOW + 40), None, ALL_DOWN, 1.0,
     R.NO_FALLBACK, P, 3, NOW + 40, None, None),
    ("channel removed from the config", row(channel="gone"), None, GONE, 1.0,
     R.UNCONFIGURED, H, 0, NOW, "pd", "channel gone is not configured; handed over to pd"),
    ("channel removed, no other working channel", row(channel="gone"), None, GONE_ALONE, 1.0,
     R.PARKED, P, 0, NOW + 300, None,
     "channel gone is not configured; no other working channel"),
    ("channel removed, row not due yet", row(channel="gone", due=NOW + 9), None, GONE_ALONE,
     1.0, R.WAITING, P, 0, NOW + 9, None, None),
]


@pytest.mark.parametrize(
    ("page", "attempt", "channel", "jitter", "reason", "state", "attempts", "next_at",
     "hand_to", "error"),
    [pytest.param(*case[1:], id=case[0]) for case in TABLE],
)
def test_transition_table(page, attempt, channel, jitter, reason, state, attempts, next_at,
                          hand_to, error):
    step = decide(page, attempt, channel, NOW, RULES, jitter=jitter)
    assert (step.reason, step.state, step.attempts, step.next_attempt_at, step.hand_to,
            step.error) == (reason, state, attempts, next_at, hand_to, error)
    assert step.sent_at == (NOW if state is PageState.SENT else None)


def test_the_rows_a_decision_leaves_alone_are_exactly_those_it_does_not_write():
    writes = {c[0]: decide(c[1], c[2], c[3], NOW, RULES, jitter=c[4]).reason.writes
              for c in TABLE}
    assert {name for name, w in writes.items() if not w} == {
        "not sent, channel well", "not sent, failing a second short of failover",
        "not sent, failed over with every channel down", "channel removed, row not due yet"}


def test_failed_over_from_failover_after_s_on():
    assert not failed_over(None, NOW, 120)
    assert not failed_over(NOW - 119.9, NOW, 120)
    assert failed_over(NOW - 120, NOW, 120)
    assert failed_over(NOW + 5, NOW, 0.0)  # a clock stepping back counts as 0 s failing


def test_backoff_delay_draws_one_jitter_from_the_generator():
    """The delivery loop's rng advances by one draw per retry, as the simulations expect."""
    for attempt in (1, 2, 7):
        drawn = random.Random(3).uniform(*JITTER)
        assert backoff_delay(attempt, 5, 300, random.Random(3)) == backoff_s(attempt, 5, 300,
                                                                             drawn)


# -- properties ----------------------------------------------------------------------------

finite_times = st.floats(min_value=T0 - 1e6, max_value=T0 + 1e6)
answers = st.one_of(
    st.none(),
    st.builds(Attempt, st.sampled_from(list(Answer)), st.sampled_from(["HTTP 503", "timeout"]),
              st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
)


@st.composite
def situations(draw: Any) -> tuple[OutboxRow, Attempt | None, Channel, float, Rules, float]:
    now = draw(finite_times)
    initial = draw(st.floats(min_value=0.1, max_value=120))
    rules = Rules(initial_s=initial, max_s=draw(st.floats(min_value=initial, max_value=7200)),
                  failover_after_s=draw(st.floats(min_value=0, max_value=3600)))
    page = row(attempts=draw(st.integers(0, 200)), due=draw(finite_times),
               created=draw(finite_times),
               channel=draw(st.sampled_from(["slack", "pd", "gone"])))
    since = draw(st.one_of(st.none(), st.floats(min_value=now - 1e5, max_value=now)))
    channel = Channel(configured=draw(st.booleans()), failing_since=since,
                      failing_detail="HTTP 503" if since is not None else "",
                      fallback=draw(st.sampled_from([None, "hook"])))
    return page, draw(answers), channel, now, rules, draw(st.floats(*JITTER))


@given(situations())
def test_the_next_attempt_is_never_in_the_past(case):
    page, attempt, channel, now, rules, jitter = case
    step = decide(page, attempt, channel, now, rules, jitter=jitter)
    if step.reason in (Reason.RETRY, Reason.RETRY_AFTER):
        assert step.next_attempt_at > now
        delay = step.next_attempt_at - now  # to the float resolution of epoch seconds
        assert rules.initial_s - 1e-6 <= delay <= rules.max_s + 1e-6
    if step.reason is Reason.PARKED:
        assert step.next_attempt_at >= now
    if not step.reason.writes:  # left as it is: due when it was due, never moved earlier
        assert step.next_attempt_at == page.next_attempt_at


@given(situations())
def test_a_page_is_never_lost(case):
    """Every transition ends delivered, closed with its reason written down (and a copy on
    another channel unless there is none), or pending again."""
    page, attempt, channel, now, rules, jitter = case
    step = decide(page, attempt, channel, now, rules, jitter=jitter)
    assert isinstance(step, Transition)
    if step.state is PageState.SENT:
        assert step.reason is Reason.DELIVERED and step.sent_at == now
        assert attempt is not None and attempt.answer is Answer.DELIVERED
    elif step.state in (PageState.FAILED, PageState.HANDED_OVER):
        assert step.error
        if step.hand_to is None:
            assert step.state is PageState.FAILED
            assert step.reason in (Reason.UNDELIVERABLE, Reason.UNREADABLE)
        else:
            assert step.hand_to == channel.fallback
    else:
        assert step.state is PageState.PENDING
        assert step.hand_to is None
        assert step.reason in (Reason.RETRY, Reason.RETRY_AFTER, Reason.PARKED,
                               Reason.WAITING, Reason.NO_FALLBACK)
    sent = attempt is not None and attempt.answer is not Answer.UNREADABLE
    assert step.attempts == page.attempts + (1 if sent else 0)
    assert decide(page, attempt, channel, now, rules, jitter=jitter) == step


@given(st.integers(1, 80), st.integers(1, 80), st.floats(*JITTER))
def test_backoff_never_shrinks_as_attempts_grow(a, b, jitter):
    low, high = sorted((a, b))
    assert backoff_s(low, 5, 300, jitter) <= backoff_s(high, 5, 300, jitter)


# -- channel health ------------------------------------------------------------------------

@pytest.mark.parametrize(("broken", "channel", "fallback"), [
    ((), "slack", "pd"),
    (("pd",), "slack", "hook"),
    (("pd", "hook"), "slack", None),
    ((), "hook", "slack"),  # config order wraps
    (("slack",), "gone", "pd"),  # a channel no longer configured: the first that works
    (("slack", "pd", "hook"), "gone", None),
])
def test_fallback_is_the_next_working_channel_in_config_order(broken, channel, fallback):
    health = Health(["slack", "pd", "hook"])
    for name in broken:
        health.failed(name, NOW, "HTTP 503")
    assert health.fallback(channel) == fallback
    assert health.facts(channel).fallback == fallback
    assert health.facts(channel).configured is (channel != "gone")


def test_a_breakage_lasts_from_the_first_failure_to_the_next_success():
    health = Health(["slack", "pd"])
    assert health.failed("slack", NOW, "HTTP 503")
    assert not health.failed("slack", NOW + 10, "timeout")  # the same breakage goes on
    assert health["slack"].breakage.since == NOW and health["slack"].breakage.detail == "timeout"
    assert health.failed_over("slack", NOW + 120, 120)
    assert health.handed_to(NOW + 120, 120) == {"slack": "pd"}
    assert health.failovers_in(NOW + 20, 120) == [100]
    assert health.status("slack", NOW + 30, 120)["broken_for_s"] == 30
    ended, changed = health.succeeded("slack", NOW + 300, [])
    assert changed and ended is not None and ended.until == NOW + 300
    assert health["slack"].breakage is None
    assert health.untold() == [ended]  # no page has told of it yet
    ended_again, changed = health.succeeded("pd", NOW + 301, health.untold())
    assert ended_again is None and changed and health.untold() == []


def test_health_survives_as_json():
    health = Health(["slack", "pd"])
    health.failed("slack", NOW, "HTTP 503")
    health.failed("pd", NOW + 1, "timeout")
    health.succeeded("pd", NOW + 5, [])
    again = Health(["slack", "pd"])
    again.restore(health.as_json())
    assert again.as_json() == health.as_json()
    assert again["slack"].breakage == health["slack"].breakage
    again.restore(None)  # nothing saved: nothing changes
    assert again.as_json() == health.as_json()


def test_paging_note_tells_of_each_breakage():
    b = Breakage(channel="slack", since=NOW - 300, detail="HTTP 503 " + "x" * 100)
    note = paging_note([b], NOW, sending_on="pd", delayed_s=200, handed_to={"slack": "pd"})
    assert note is not None
    assert note.startswith("paging was broken for 5 min (channel slack failing since ")
    assert "..., still failing, its pages go to pd)" in note
    assert note.endswith("; this page was delayed by 3 min")
    assert paging_note([], NOW, sending_on="pd", delayed_s=0) is None
