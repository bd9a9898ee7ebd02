"""The store's contract, run unchanged against SQLite and PostgreSQL (see ``conftest.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from hotdash_watch.model.findings import Finding, Reason
from hotdash_watch.model.incident import Event, Incident, State, TimelineEntry
from hotdash_watch.model.severity import Severity
from hotdash_watch.records.store import Store, StoreError
from hotdash_watch.records.tables import timeline
from tests.support import services

T0 = 1_700_000_000.125  # epoch seconds with a fraction, to catch lossy time columns

NESTED_EVIDENCE: dict[str, Any] = {
    "error_ratio": 0.1234,
    "p95_ms": 812.3,
    "third": 1 / 3,
    "tiny": -1e-300,
    "huge": 1.7976931348623157e308,
    "big_int": 2**53 + 1,
    "flags": [True, False, None],
    "failure_kinds": {"http_5xx": 12, "timeout": 3},
    "machines": {"total": 2, "down": [{"id": "m1", "since": T0 - 0.5, "tags": []}]},
    "empty": {},
    "text": "café ✓ \"quoted\" \\ back",
}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


OPENING = Finding(Reason.ERROR_RATE_MAJOR, Severity.SEV2, "error ratio 12.3% over 5%",
                  {"error_ratio": 0.123})


def make_incident(
    incident_id: str = "INC-20231114-221320",
    app: str = "svc",
    state: State = State.INVESTIGATING,
    severity: Severity = Severity.SEV3,
    opened_at: float = T0,
    **changes: Any,
) -> Incident:
    """An incident with plausible values; ``changes`` override any field."""
    base = Incident(
        id=incident_id, app=app, state=state, severity=severity, max_severity=severity,
        opened_at=opened_at, updated_at=opened_at, severity_since=opened_at,
        findings=(OPENING,), evidence={"error_ratio": 0.123},
    )
    if state is State.RESOLVED:
        base = dataclasses.replace(base, resolved_at=opened_at + 600.0)
    return dataclasses.replace(base, **changes)


def make_entry(at: float, event: Event = Event.NOTE, state: State = State.INVESTIGATING,
               severity: Severity = Severity.SEV3, **changes: Any) -> TimelineEntry:
    """A timeline entry at ``at``."""
    return dataclasses.replace(
        TimelineEntry(at=at, event=event, state=state, severity=severity), **changes
    )


async def stored_seqs(url: str, incident_id: str) -> list[int]:
    """The seq numbers of the incident's timeline rows, in insertion order, read directly."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(timeline.c.seq).where(timeline.c.incident_id == incident_id)
                .order_by(timeline.c.id)
            )
            return [seq for (seq,) in rows]
    finally:
        await engine.dispose()


def bare(url: str) -> str:
    """``url`` without its async driver: ``sqlite:///...`` or ``postgres://...``."""
    return (url.replace("sqlite+aiosqlite://", "sqlite://", 1)
            .replace("postgresql+asyncpg://", "postgres://", 1))


class TestStore:
    async def test_round_trip_keeps_every_field(self, store: Store) -> None:
        """An incident with every field set comes back equal, with enums, tuples and dicts."""
        entries = (
            make_entry(T0, Event.OPENED, findings=(OPENING,),
                       detail={"snapshot": NESTED_EVIDENCE}),
            make_entry(T0 + 30.5, Event.ESCALATED, severity=Severity.SEV1,
                       findings=(Finding(Reason.LATENCY_MAJOR, Severity.SEV2,
                                         "p95 2.1 s over 1 s", {"p95_ms": 2100.0}),),
                       notes=("3 of 4 machines down",), action_id=7),
            make_entry(T0 + 90.25, Event.MONITORING, state=State.MONITORING,
                       severity=Severity.SEV1, detail={"passed": ["stabilized"], "n": None}),
        )
        inc = make_incident(
            state=State.MONITORING, severity=Severity.SEV2, max_severity=Severity.SEV1,
            updated_at=T0 + 90.25, severity_since=T0 + 60.75, monitoring_since=T0 + 90.25,
            findings=(Finding(Reason.LATENCY_MAJOR, Severity.SEV2, "p95 2.1 s over 1 s"),
                      OPENING),
            evidence=NESTED_EVIDENCE,
        )
        await store.save_incident(inc, entries)

        got = await store.get_incident(inc.id)

        assert got == dataclasses.replace(inc, timeline=entries)
        assert got is not None
        assert got.state is State.MONITORING and got.max_severity is Severity.SEV1
        assert got.resolved_at is None
        assert isinstance(got.reasons, tuple) and isinstance(got.timeline, tuple)
        assert all(isinstance(e.event, Event) and isinstance(e.reasons, tuple)
                   for e in got.timeline)
        assert got.evidence["huge"] == 1.7976931348623157e308
        assert got.evidence["third"] == 1 / 3

    async def test_round_trip_of_resolved_incident_without_entries(self, store: Store) -> None:
        """A resolved incident with both optional times and no timeline comes back equal."""
        inc = make_incident(state=State.RESOLVED, monitoring_since=T0 + 300.0, findings=(),
                            evidence={})

        await store.save_incident(inc)

        assert await store.get_incident(inc.id) == inc
        assert await store.get_incident("INC-unknown") is None

    async def test_timeline_appends_in_order_across_saves(
        self, store: Store, store_url: str
    ) -> None:
        """Entries appended by several saves keep their order and get consecutive seq numbers."""
        e1, e2, e3, e4 = (make_entry(T0 + n, notes=(f"line {n}",)) for n in range(4))
        inc = make_incident()
        await store.save_incident(inc, [e1])
        # Callers pass the incident with the timeline they know: only new_entries are appended.
        inc = dataclasses.replace(inc, updated_at=T0 + 2, timeline=(e1,))
        await store.save_incident(inc, [e2, e3])
        await store.save_incident(dataclasses.replace(inc, updated_at=T0 + 2.5))
        await store.save_incident(dataclasses.replace(inc, updated_at=T0 + 3), (e4,))

        got = await store.get_incident(inc.id)

        assert got is not None
        assert got.timeline == (e1, e2, e3, e4)
        assert got.updated_at == T0 + 3
        assert await stored_seqs(store_url, inc.id) == [1, 2, 3, 4]

    async def test_concurrent_saves_never_share_a_seq(self, store: Store, store_url: str) -> None:
        """Saves racing on one incident each append their entries with distinct seq numbers."""
        inc = make_incident()
        await store.save_incident(inc)

        await asyncio.gather(*(
            store.save_incident(inc, [make_entry(T0 + n, notes=(f"save {n}", "a")),
                                      make_entry(T0 + n, notes=(f"save {n}", "b"))])
            for n in range(5)
        ))

        got = await store.get_incident(inc.id)
        assert got is not None and len(got.timeline) == 10
        assert sorted(await stored_seqs(store_url, inc.id)) == list(range(1, 11))
        for first, second in zip(got.timeline[::2], got.timeline[1::2], strict=True):
            assert first.reasons[0] == second.reasons[0]  # one save's entries stay together

    async def test_open_queries_return_only_open_incidents(self, store: Store) -> None:
        """open_incidents and open_incident_for skip resolved incidents and carry timelines."""
        opened = make_entry(T0, Event.OPENED)
        await store.save_incident(make_incident("INC-a", app="a"), [opened])
        await store.save_incident(make_incident("INC-b", app="b", state=State.RESOLVED), [opened])
        await store.save_incident(
            make_incident("INC-c", app="c", state=State.MONITORING, opened_at=T0 + 1), [opened]
        )

        found = await store.open_incidents()

        assert [i.id for i in found] == ["INC-c", "INC-a"]  # newest first
        assert all(i.timeline == (opened,) for i in found)
        a = await store.open_incident_for("a")
        assert a is not None and a.id == "INC-a" and a.timeline == (opened,)
        assert await store.open_incident_for("b") is None
        assert await store.open_incident_for("nobody") is None

    async def test_resolved_incident_is_no_longer_open(self, store: Store) -> None:
        """Saving an incident as resolved takes it out of the open queries but keeps it."""
        inc = make_incident()
        await store.save_incident(inc, [make_entry(T0, Event.OPENED)])
        resolved = dataclasses.replace(inc, state=State.RESOLVED, resolved_at=T0 + 900.0,
                                       updated_at=T0 + 900.0)

        await store.save_incident(resolved, [make_entry(T0 + 900.0, Event.RESOLVED,
                                                        state=State.RESOLVED)])

        assert await store.open_incidents() == []
        assert await store.open_incident_for("svc") is None
        got = await store.get_incident(inc.id)
        assert got is not None and got.state is State.RESOLVED and len(got.timeline) == 2

    async def test_second_open_incident_for_an_app_is_refused(self, store: Store) -> None:
        """A second open incident for an app raises StoreError naming the app and the first."""
        first = make_incident("INC-first", app="billing")
        await store.save_incident(first, [make_entry(T0, Event.OPENED)])
        second = make_incident("INC-second", app="billing", opened_at=T0 + 5)

        with pytest.raises(StoreError) as raised:
            await store.save_incident(second, [make_entry(T0 + 5, Event.OPENED)])

        assert "billing" in str(raised.value) and "INC-first" in str(raised.value)
        assert not await store.incident_id_taken("INC-second")
        assert await store.get_incident("INC-first") == dataclasses.replace(
            first, timeline=(make_entry(T0, Event.OPENED),)
        )

    async def test_new_incident_after_resolution_is_accepted(self, store: Store) -> None:
        """Once an app's incident is resolved, a new open incident for it can be saved."""
        first = make_incident("INC-first", app="billing")
        await store.save_incident(first)
        await store.save_incident(dataclasses.replace(first, state=State.RESOLVED,
                                                      resolved_at=T0 + 60))
        second = make_incident("INC-second", app="billing", opened_at=T0 + 120)

        await store.save_incident(second, [make_entry(T0 + 120, Event.OPENED)])

        found = await store.open_incident_for("billing")
        assert found is not None and found.id == "INC-second"
        assert [i.id for i in await store.list_incidents(app="billing")] == [
            "INC-second", "INC-first"]

    async def test_unstorable_values_are_refused_before_writing(self, store: Store) -> None:
        """Values that would not round-trip (NaN, non-string keys, objects) raise StoreError."""
        inc = make_incident()
        await store.save_incident(inc)
        bad: list[dict[str, Any]] = [{"r": float("nan")}, {"r": float("inf")}, {1: "x"},
                                     {"r": object()}]
        for detail in bad:
            with pytest.raises(StoreError):
                await store.save_incident(dataclasses.replace(inc, state=State.MITIGATING),
                                          [make_entry(T0, detail=detail)])
            with pytest.raises(StoreError):
                await store.save_incident(dataclasses.replace(inc, evidence=detail))
            with pytest.raises(StoreError):
                await store.put_state("k", detail, at=T0)

        assert await store.get_incident(inc.id) == inc
        assert await store.get_state("k") is None

    async def test_list_incidents_orders_filters_and_limits(self, store: Store) -> None:
        """list_incidents is newest first, filters by app and state, honours limit, no timeline."""
        specs = [("INC-1", "a", State.RESOLVED, T0), ("INC-2", "b", State.RESOLVED, T0 + 10),
                 ("INC-3", "a", State.RESOLVED, T0 + 20), ("INC-4", "b", State.MITIGATING, T0 + 30),
                 ("INC-5", "a", State.INVESTIGATING, T0 + 40)]
        for iid, app, state, opened_at in specs:
            await store.save_incident(make_incident(iid, app=app, state=state,
                                                    opened_at=opened_at),
                                      [make_entry(opened_at, Event.OPENED)])

        everything = await store.list_incidents()

        assert [i.id for i in everything] == ["INC-5", "INC-4", "INC-3", "INC-2", "INC-1"]
        assert all(i.timeline == () for i in everything)
        assert [i.id for i in await store.list_incidents(app="a")] == ["INC-5", "INC-3", "INC-1"]
        assert [i.id for i in await store.list_incidents(state="resolved")] == [
            "INC-3", "INC-2", "INC-1"]
        assert [i.id for i in await store.list_incidents(app="b", state=State.MITIGATING)] == [
            "INC-4"]
        assert [i.id for i in await store.list_incidents(limit=2)] == ["INC-5", "INC-4"]
        assert await store.list_incidents(app="nobody") == []
        assert await store.list_incidents(limit=0) == []

    async def test_data_survives_reopening_the_store(self, store: Store, store_url: str) -> None:
        """After close, a new Store on the same URL finds the incidents, timelines and state."""
        inc = make_incident(evidence=NESTED_EVIDENCE)
        entries = (make_entry(T0, Event.OPENED), make_entry(T0 + 1, notes=("paged",)))
        await store.save_incident(inc, entries)
        await store.put_state("heartbeat", {"at": T0, "pass": 7}, at=T0)
        await store.close()

        async with await Store.open(store_url) as reopened:
            assert await reopened.get_incident(inc.id) == dataclasses.replace(inc,
                                                                              timeline=entries)
            assert [i.id for i in await reopened.open_incidents()] == [inc.id]
            assert await reopened.get_state("heartbeat") == {"at": T0, "pass": 7}
            resumed = make_entry(T0 + 2, Event.RESUMED)
            await reopened.save_incident(inc, [resumed])
            got = await reopened.get_incident(inc.id)
            assert got is not None and got.timeline == (*entries, resumed)
        assert await stored_seqs(store_url, inc.id) == [1, 2, 3]

    async def test_bare_url_opens_the_same_database(self, store: Store, store_url: str) -> None:
        """The driverless URL forms (sqlite://, postgres://) reach the same database."""
        inc = make_incident()
        await store.save_incident(inc)

        async with await Store.open(bare(store_url)) as other:
            assert await other.get_incident(inc.id) == inc
            assert other.backend == store.backend

    async def test_incident_id_taken(self, store: Store) -> None:
        """incident_id_taken is true for any saved incident, open or resolved, only."""
        assert not await store.incident_id_taken("INC-a")
        await store.save_incident(make_incident("INC-a", app="a"))
        await store.save_incident(make_incident("INC-b", app="b", state=State.RESOLVED))

        assert await store.incident_id_taken("INC-a")
        assert await store.incident_id_taken("INC-b")
        assert not await store.incident_id_taken("INC-c")

    async def test_state_get_and_put_overwrite(self, store: Store) -> None:
        """put_state stores a JSON value under a key, replacing the old one; missing is None."""
        assert await store.get_state("budget:svc") is None
        await store.put_state("budget:svc", {"restarts": [T0, T0 + 1.5], "left": 2}, at=T0)
        await store.put_state("other", "untouched", at=T0)

        assert await store.get_state("budget:svc") == {"restarts": [T0, T0 + 1.5], "left": 2}
        await store.put_state("budget:svc", [1, 2.5, None, True], at=T0 + 2)
        assert await store.get_state("budget:svc") == [1, 2.5, None, True]
        await store.put_state("budget:svc", 0.1 + 0.2, at=T0 + 3)
        assert await store.get_state("budget:svc") == 0.1 + 0.2
        assert await store.get_state("other") == "untouched"

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=JSON_VALUES)
    async def test_any_json_value_round_trips(self, store: Store, value: Any) -> None:
        """Any nested dict/list of str, int, finite float, bool and None comes back equal."""
        await store.put_state("value", value, at=T0)
        assert await store.get_state("value") == value
        inc = make_incident(evidence={"v": value})
        await store.save_incident(inc, [make_entry(T0, detail={"v": value})])
        got = await store.get_incident(inc.id)
        assert got is not None
        assert got.evidence == {"v": value} and got.timeline[-1].detail == {"v": value}

    async def test_ping_answers_until_closed(self, store: Store) -> None:
        """ping is true on an open store and false once it is closed; close is idempotent."""
        assert await store.ping()
        await store.close()
        await store.close()

        assert not await store.ping()
        with pytest.raises(StoreError, match="closed"):
            await store.get_incident("INC-a")

    async def test_unreachable_postgres_fails_fast_without_password(self) -> None:
        """Opening an unreachable PostgreSQL raises StoreError quickly, the password hidden."""
        url = "postgresql+asyncpg://watch:hunter2@127.0.0.1:1/test"
        started = time.monotonic()

        with pytest.raises(StoreError) as raised:
            await Store.open(url)

        assert time.monotonic() - started < 10
        message = str(raised.value)
        assert "hunter2" not in message
        assert "watch:***@127.0.0.1:1/test" in message
        assert "refused" in message.lower()

    @pytest.mark.parametrize("url", ["mysql://root:hunter2@db/watch", "redis://cache:6379"])
    async def test_unknown_scheme_is_refused(self, url: str) -> None:
        """A URL of an unsupported database raises StoreError naming its scheme."""
        with pytest.raises(StoreError) as raised:
            await Store.open(url)

        scheme = url.partition("://")[0]
        assert repr(scheme) in str(raised.value)
        assert "hunter2" not in str(raised.value)

    async def test_sqlite_in_memory_keeps_its_schema(self) -> None:
        """An in-memory SQLite store keeps its tables and rows across operations."""
        async with await Store.open("sqlite:///:memory:") as memory:
            await memory.save_incident(make_incident())
            await memory.put_state("k", 1, at=T0)
            assert await memory.get_incident("INC-20231114-221320") == make_incident()
            assert await memory.get_state("k") == 1

    async def test_sqlite_unusable_path_is_refused(self, tmp_path: Path) -> None:
        """A SQLite path below a regular file raises StoreError naming the path and the cause."""
        (tmp_path / "file").write_text("not a directory")
        url = f"sqlite+aiosqlite:///{tmp_path / 'file' / 'watch.db'}"

        with pytest.raises(StoreError) as raised:
            await Store.open(url)

        assert str(tmp_path / "file") in str(raised.value)


class TestServiceRule:
    def test_missing_service_skips_locally(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without CI=true an unreachable PostgreSQL skips with a one-line reason."""
        monkeypatch.delenv("CI", raising=False)

        with pytest.raises(pytest.skip.Exception) as raised:
            services.require_postgres_url("postgresql+asyncpg://postgres@127.0.0.1:1/test")

        assert str(raised.value.msg).startswith("PostgreSQL not reachable at 127.0.0.1:1: ")
        assert "\n" not in str(raised.value.msg)

    def test_missing_service_fails_in_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With CI=true an unreachable PostgreSQL fails the test instead of skipping it."""
        monkeypatch.setenv("CI", "true")

        with pytest.raises(pytest.fail.Exception) as raised:
            services.require_postgres_url("postgresql+asyncpg://postgres@127.0.0.1:1/test")

        assert "PostgreSQL not reachable at 127.0.0.1:1" in str(raised.value.msg)


class TestSamples:
    async def test_round_trip_and_window(self, store: Store) -> None:
        """Samples come back in time order within the asked window; NaN is stored as None."""
        await store.add_samples([("svc", 10.0, 0.5, 120.0, "SEV-1"),
                                 ("svc", 5.0, None, float("nan"), None),
                                 ("other", 7.0, 0.1, 1.0, None)])
        assert await store.samples("svc", 0, 100) == [(5.0, None, None, None),
                                                     (10.0, 0.5, 120.0, "SEV-1")]
        assert await store.samples("svc", 6, 100) == [(10.0, 0.5, 120.0, "SEV-1")]
        await store.prune_samples(before=8.0)
        assert await store.samples("svc", 0, 100) == [(10.0, 0.5, 120.0, "SEV-1")]
