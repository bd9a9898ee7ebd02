"""The watcher's health record per release image: what a rollback may go back to."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdash_watch.release_health import (
    MAX_GAP_S,
    ImageHealth,
    from_json,
    known_healthy,
    observe,
    to_json,
)

A, B = "registry.fly.io/svc:v6", "registry.fly.io/svc:v7"
T0 = 1_000.0


def run(*steps: tuple[float, bool], image: str = A, version: int | None = 6) -> ImageHealth:
    """``image`` first seen at T0, then observed after each (seconds later, healthy?)."""
    record = observe({}, image, version, True, T0)
    now = T0
    for dt, ok in steps:
        now += dt
        record = observe(record, image, version, ok, now)
    return record[image]


class TestObserve:
    def test_first_sighting_starts_the_record(self):
        """An image seen for the first time has no healthy time yet."""
        assert observe({}, A, 6, True, T0) == {A: ImageHealth(A, 6, 0.0, T0, T0)}

    @pytest.mark.parametrize(
        ("steps", "healthy_s"),
        [
            pytest.param([(15, True)] * 4, 60.0, id="healthy-throughout"),
            pytest.param([(15, True), (15, False), (15, False)], 15.0, id="then-unhealthy"),
            pytest.param([(15, False)] * 4, 0.0, id="never-healthy"),
            pytest.param([(MAX_GAP_S, True)], MAX_GAP_S, id="gap-at-the-limit-counts"),
            pytest.param([(MAX_GAP_S + 0.1, True)], 0.0, id="longer-gap-does-not"),
            pytest.param([(15, True), (300, True), (15, True)], 30.0, id="a-gap-in-between"),
            pytest.param([(0, True), (-5, True)], 0.0, id="no-time-or-backwards"),
        ],
    )
    def test_accumulates_only_continuous_healthy_time(self, steps: list[tuple[float, bool]],
                                                      healthy_s: float):
        """Healthy time grows by the time since the last observation when the app is healthy
        and that gap is at most ``MAX_GAP_S``; unhealthy passes and long gaps add nothing."""
        assert run(*steps).healthy_s == healthy_s

    def test_last_and_first_seen(self):
        """Every observation moves ``last_at``; ``first_seen`` stays the first sighting."""
        h = run((15, True), (15, False))
        assert (h.first_seen, h.last_at) == (T0, T0 + 30)

    @pytest.mark.parametrize("image", [None, ""])
    def test_no_common_image_counts_nothing(self, image: str | None):
        """When the machines run different images (mid-deploy) nothing is recorded."""
        before = {A: ImageHealth(A, 6, 42.0, T0, T0)}
        assert observe(before, image, 7, True, T0 + 10) == before

    def test_pure(self):
        """``observe`` returns a new record and leaves the one it was given alone."""
        before = {A: ImageHealth(A, 6, 0.0, T0, T0)}
        after = observe(before, A, 6, True, T0 + 10)
        assert before == {A: ImageHealth(A, 6, 0.0, T0, T0)}
        assert after[A].healthy_s == 10.0

    def test_other_images_are_untouched(self):
        """Observing one image leaves the others' records as they were, and switching back to
        an image after a long time adds no healthy time for the time away."""
        r = observe({}, A, 6, True, T0)
        r = observe(r, A, 6, True, T0 + 15)
        r = observe(r, B, 7, True, T0 + 30)
        r = observe(r, B, 7, True, T0 + 45)
        assert r[A] == ImageHealth(A, 6, 15.0, T0 + 15, T0)
        r = observe(r, A, 6, True, T0 + 300)
        assert r[A].healthy_s == 15.0
        assert r[B] == ImageHealth(B, 7, 15.0, T0 + 45, T0 + 30)

    @pytest.mark.parametrize(("later", "kept"), [(None, 6), (8, 8)])
    def test_version(self, later: int | None, kept: int):
        """A later observation without a version keeps the known one; with one it updates
        it."""
        r = observe(observe({}, A, 6, True, T0), A, later, True, T0 + 10)
        assert r[A].version == kept


class TestKnownHealthy:
    RECORD = {
        "a": ImageHealth("a", 5, 600.0, T0, T0 - 900),
        "b": ImageHealth("b", 6, 60.0, T0, T0 - 500),
        "c": ImageHealth("c", 7, 59.9, T0, T0 - 100),
        "d": ImageHealth("d", None, 900.0, T0, T0 - 50),
        "e": ImageHealth("e", 6, 120.0, T0, T0 - 400),
    }

    @pytest.mark.parametrize(
        ("after_s", "images"),
        [
            (60.0, ["e", "b", "a", "d"]),  # 7 has too little time; newest version first
            (59.9, ["c", "e", "b", "a", "d"]),
            (600.0, ["a", "d"]),
            (1000.0, []),
        ],
    )
    def test_threshold_and_order(self, after_s: float, images: list[str]):
        """Only images healthy for at least ``after_s`` are known healthy, newest version
        first, the later first sighting first within a version, unknown versions last."""
        assert [h.image for h in known_healthy(self.RECORD, after_s)] == images

    def test_empty(self):
        """An empty record knows no healthy release."""
        assert known_healthy({}, 60.0) == []


images = st.text("abcdefgh:/.", min_size=1, max_size=12)
records = st.dictionaries(images, st.tuples(
    st.none() | st.integers(0, 500), st.integers(0, 10**7).map(lambda x: x / 10),
    st.floats(0, 2e9), st.floats(0, 2e9))).map(
    lambda d: {k: ImageHealth(k, *v) for k, v in d.items()})


class TestJson:
    @given(record=records)
    def test_round_trip(self, record: dict[str, ImageHealth]):
        """A record survives ``to_json``, JSON text and ``from_json`` unchanged."""
        assert from_json(json.loads(json.dumps(to_json(record)))) == record

    def test_healthy_time_rounded_to_a_tenth(self):
        """The stored healthy time keeps one decimal."""
        data = to_json({A: ImageHealth(A, 6, 12.3456, T0, T0)})
        assert data == {A: {"version": 6, "healthy_s": 12.3, "last_at": T0, "first_seen": T0}}

    @pytest.mark.parametrize(
        "entry",
        [
            pytest.param(None, id="null"),
            pytest.param([1, 2, 3], id="a-list"),
            pytest.param("healthy", id="a-string"),
            pytest.param({"version": 6, "last_at": T0, "first_seen": T0}, id="no-healthy_s"),
            pytest.param({"version": 6, "healthy_s": None, "last_at": T0, "first_seen": T0},
                         id="null-healthy_s"),
            pytest.param({"version": 6, "healthy_s": "long", "last_at": T0, "first_seen": T0},
                         id="text-healthy_s"),
            pytest.param({"version": "six", "healthy_s": 1, "last_at": T0, "first_seen": T0},
                         id="text-version"),
            pytest.param({"version": [6], "healthy_s": 1, "last_at": T0, "first_seen": T0},
                         id="list-version"),
            pytest.param({"version": 6, "healthy_s": 1, "first_seen": T0}, id="no-last_at"),
            pytest.param({"version": 6, "healthy_s": 1, "last_at": T0}, id="no-first_seen"),
        ],
    )
    def test_malformed_entries_are_dropped(self, entry: Any):
        """An entry that does not parse is dropped and the others are kept."""
        good = {"version": 6, "healthy_s": 61.0, "last_at": T0, "first_seen": T0 - 61}
        assert from_json({"bad": entry, A: good}) == {A: ImageHealth(A, 6, 61.0, T0, T0 - 61)}

    @pytest.mark.parametrize(
        ("entry", "parsed"),
        [
            ({"healthy_s": 1, "last_at": 2, "first_seen": 3}, ImageHealth(A, None, 1.0, 2.0, 3.0)),
            ({"version": None, "healthy_s": "1.5", "last_at": "2", "first_seen": 3},
             ImageHealth(A, None, 1.5, 2.0, 3.0)),
            ({"version": "7", "healthy_s": 1, "last_at": 2, "first_seen": 3, "extra": True},
             ImageHealth(A, 7, 1.0, 2.0, 3.0)),
        ],
    )
    def test_lenient_where_the_meaning_is_clear(self, entry: dict[str, Any],
                                                parsed: ImageHealth):
        """A missing or null version is unknown, numbers written as text are read, and extra
        keys are ignored."""
        assert from_json({A: entry}) == {A: parsed}

    @pytest.mark.parametrize("data", [None, [], "record", 42])
    def test_not_a_mapping_is_an_empty_record(self, data: Any):
        """Stored data that is not an object gives an empty record."""
        assert from_json(data) == {}
