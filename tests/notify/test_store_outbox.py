"""The store's outbox and silences, run unchanged against SQLite and PostgreSQL (``store``)."""

from __future__ import annotations

from typing import Any

import pytest

from hotdash_watch.records.store import PageState, Store, StoreError

T0 = 1_700_000_000.125


def row(key: str = "INC-1:opened:1", channel: str = "slack", *, at: float = T0,
        due: float | None = None, state: str = "pending", **changes: Any) -> dict[str, Any]:
    """An outbox row for ``key`` on ``channel`` queued at ``at``."""
    incident_id = key.split(":")[0]
    base: dict[str, Any] = {
        "key": key, "channel": channel, "incident_id": incident_id, "event": "opened",
        "severity": "SEV-1", "state": state, "next_attempt_at": at if due is None else due,
        "created_at": at,
        "page": {"key": key, "subject": "[SEV-1] Agent SDK Production Outage",
                 "fields": {"STATUS": "Investigating"}, "evidence": {"error_ratio": 0.62},
                 "note": None, "text": "café ✓"},
    }
    base.update(changes)
    return base


class TestEnqueue:
    async def test_rows_come_back_as_written(self, store: Store):
        """A queued row is read back with its page JSON, state and times unchanged."""
        [new_id] = await store.enqueue_pages([row()])
        [got] = await store.list_pages()
        assert got.id == new_id
        assert (got.key, got.channel, got.incident_id, got.state) == (
            "INC-1:opened:1", "slack", "INC-1", PageState.PENDING)
        assert got.page == row()["page"]
        assert (got.attempts, got.next_attempt_at, got.created_at) == (0, T0, T0)
        assert got.sent_at is None and got.last_error is None

    async def test_same_key_and_channel_is_queued_once(self, store: Store):
        """Queueing a (key, channel) again adds nothing, whatever state the first row is in;
        the same key on another channel is a row of its own."""
        first = await store.enqueue_pages([row(), row(channel="pd")])
        assert len(first) == 2
        assert await store.enqueue_pages([row()]) == []
        await store.mark_page(first[0], "sent", 1, T0, sent_at=T0 + 1)
        assert await store.enqueue_pages([row(), row(channel="pd"), row(channel="hook")]) != []
        assert sorted(r.channel for r in await store.list_pages()) == ["hook", "pd", "slack"]

    async def test_invalid_rows_are_refused(self, store: Store):
        """A non-finite number in the page, a missing field or an unknown state is refused
        with StoreError and nothing is stored."""
        bad_page = row(page={"evidence": {"x": float("nan")}})
        missing = {k: v for k, v in row().items() if k != "channel"}
        for bad in (bad_page, missing):
            with pytest.raises(StoreError):
                await store.enqueue_pages([row("INC-2:opened:1"), bad])
        with pytest.raises(ValueError, match="bogus"):
            await store.enqueue_pages([row(state="bogus")])
        assert await store.list_pages() == []

    async def test_rows_survive_a_reopen(self, store: Store, store_url: str):
        """Queued rows are durable: a store opened again on the same URL finds them."""
        await store.enqueue_pages([row()])
        await store.close()
        again = await Store.open(store_url)
        try:
            assert [r.key for r in await again.due_pages(T0)] == ["INC-1:opened:1"]
        finally:
            await again.close()


class TestDue:
    async def test_due_rows_oldest_first(self, store: Store):
        """Due pending rows come oldest first (created_at, then id); future and non-pending
        rows do not come at all."""
        await store.enqueue_pages([
            row("A:opened:1", at=T0 + 2), row("B:opened:1", at=T0),
            row("C:opened:1", at=T0 + 2, channel="pd"), row("D:opened:1", at=T0 + 50),
            row("E:opened:1", at=T0, state="silenced", channel="pd"),
        ])
        due = await store.due_pages(T0 + 10)
        assert [r.key for r in due] == ["B:opened:1", "A:opened:1", "C:opened:1"]
        assert [r.key for r in await store.due_pages(T0 + 10, limit=1)] == ["B:opened:1"]
        assert await store.due_pages(T0 + 10, limit=0) == []

    async def test_a_row_waits_behind_an_older_row_of_its_channel(self, store: Store):
        """While a channel's oldest pending row waits for its retry, the rows behind it wait
        too (order per channel); other channels are not held up."""
        await store.enqueue_pages([
            row("A:opened:1", at=T0, due=T0 + 60),  # retrying
            row("B:opened:1", at=T0 + 1), row("C:opened:1", at=T0 + 1, channel="pd"),
        ])
        assert [r.key for r in await store.due_pages(T0 + 5)] == ["C:opened:1"]
        assert [r.key for r in await store.due_pages(T0 + 60)] == ["A:opened:1", "B:opened:1",
                                                                   "C:opened:1"]

    async def test_stats(self, store: Store):
        """Depth and the oldest pending age count pending rows only; the next due time is
        the earliest retry of a channel's oldest row."""
        empty = await store.outbox_stats(T0)
        assert (empty.depth, empty.oldest_age_s, empty.next_attempt_at) == (0, 0.0, None)
        ids = await store.enqueue_pages([
            row("A:opened:1", at=T0, due=T0 + 60), row("B:opened:1", at=T0 + 1),
            row("C:opened:1", at=T0 + 2, channel="pd", due=T0 + 30),
            row("D:opened:1", at=T0 - 100, channel="x", state="silenced"),
        ])
        stats = await store.outbox_stats(T0 + 10)
        assert (stats.depth, stats.oldest_age_s, stats.next_attempt_at) == (3, 10.0, T0 + 30)
        await store.mark_page(ids[2], "sent", 1, T0 + 30, sent_at=T0 + 31)
        assert (await store.outbox_stats(T0 + 10)).next_attempt_at == T0 + 60


class TestMark:
    async def test_marks_a_pending_row_once(self, store: Store):
        """An attempt's outcome is recorded on a pending row; a sent row never changes."""
        [pid] = await store.enqueue_pages([row()])
        assert await store.mark_page(pid, "pending", 1, T0 + 5, last_error="HTTP 503")
        [got] = await store.list_pages()
        assert (got.attempts, got.next_attempt_at, got.last_error) == (1, T0 + 5, "HTTP 503")
        assert await store.mark_page(pid, "sent", 2, T0 + 5, sent_at=T0 + 6)
        assert not await store.mark_page(pid, "pending", 3, T0 + 9)
        [got] = await store.list_pages()
        assert (got.state, got.attempts, got.sent_at, got.last_error) == (
            PageState.SENT, 2, T0 + 6, None)
        assert await store.due_pages(T0 + 100) == []

    async def test_hand_over_is_atomic(self, store: Store):
        """Handing over closes the old row and queues the page on the new channel together;
        a channel that has the page already gets no second row; a closed row cannot be
        handed over (and nothing is written)."""
        a, b = await store.enqueue_pages([row(), row("INC-1:status:2")])
        new = await store.hand_over_page(a, row(channel="pd", at=T0), attempts=3,
                                         last_error="failing; handed over to pd")
        assert new is not None
        by_channel = {r.channel: r for r in await store.list_pages()
                      if r.key == "INC-1:opened:1"}
        assert by_channel["slack"].state is PageState.HANDED_OVER
        assert by_channel["slack"].attempts == 3
        assert by_channel["pd"].state is PageState.PENDING
        await store.enqueue_pages([row("INC-1:status:2", channel="pd")])
        assert await store.hand_over_page(b, row("INC-1:status:2", channel="pd"),
                                          state="failed", attempts=1, last_error="HTTP 400"
                                          ) is None
        with pytest.raises(StoreError, match="not pending"):
            await store.hand_over_page(a, row(channel="hook"), attempts=4, last_error=None)
        assert {r.channel for r in await store.list_pages()} == {"slack", "pd"}

    async def test_list_pages_by_incident_newest_first(self, store: Store):
        """Pages are listed newest first, optionally those of one incident, at most limit."""
        await store.enqueue_pages([row("INC-1:opened:1", at=T0), row("INC-2:opened:1", at=T0 + 1),
                                   row("INC-1:resolved:5", at=T0 + 2)])
        assert [r.key for r in await store.list_pages("INC-1")] == ["INC-1:resolved:5",
                                                                    "INC-1:opened:1"]
        assert [r.key for r in await store.list_pages(limit=1)] == ["INC-1:resolved:5"]
        assert [r.key for r in await store.pending_pages("slack", limit=2)] == [
            "INC-1:opened:1", "INC-2:opened:1"]


class TestSilences:
    async def test_active_between_start_and_end(self, store: Store):
        """A silence is active from its start (included) to its end (excluded)."""
        s = await store.add_silence("svc", T0, T0 + 600, author="ana", reason="deploy",
                                    created_at=T0 - 5, suspend_mitigation=True)
        await store.add_silence("*", T0 + 1000, T0 + 2000, author="bo", reason="db upgrade",
                                created_at=T0)
        assert [x.id for x in await store.active_silences(T0)] == [s.id]
        assert await store.active_silences(T0 + 600) == []
        assert await store.active_silences(T0 - 1) == []
        [got] = await store.active_silences(T0 + 599)
        assert got == s and got.suspend_mitigation and got.matches("svc")
        assert not got.matches("other")
        [every] = await store.active_silences(T0 + 1500)
        assert every.matches("anything")
        assert [x.app for x in await store.list_silences()] == ["*", "svc"]

    async def test_end_silence(self, store: Store):
        """Ending a silence moves its end to ``at`` (never later); unknown ids give None."""
        s = await store.add_silence("svc", T0, T0 + 600, author="ana", reason="deploy",
                                    created_at=T0)
        ended = await store.end_silence(s.id, T0 + 60)
        assert ended is not None and ended.ends_at == T0 + 60
        assert await store.active_silences(T0 + 61) == []
        again = await store.end_silence(s.id, T0 + 500)
        assert again is not None and again.ends_at == T0 + 60
        assert await store.end_silence(9999, T0) is None

    @pytest.mark.parametrize(("app", "start", "end"), [
        ("", T0, T0 + 1), ("svc", T0, T0), ("svc", T0, T0 - 1), ("svc", T0, float("inf"))])
    async def test_invalid_silences_are_refused(self, store: Store, app, start, end):
        """A silence needs an app and must end (finitely) after it starts."""
        with pytest.raises(StoreError):
            await store.add_silence(app, start, end, author="a", reason="r", created_at=T0)
        assert await store.list_silences() == []
