"""Fly response parsing: the fixtures, both shapes of the odd fields, hostile bodies."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from typing import Any

import pytest

from hotdash_watch.fly.errors import (
    FlyConflict,
    FlyMalformed,
    FlyNotFound,
    FlyRateLimited,
    FlyRejected,
    FlyUnauthorized,
    FlyUnavailable,
    LeaseHeld,
    error_for_status,
    parse_error_body,
)
from hotdash_watch.fly.models import (
    PayloadError,
    parse_events,
    parse_lease,
    parse_log_page,
    parse_machine,
    parse_machines,
    parse_prometheus,
    parse_releases,
    parse_time,
)
from tests.support.fixtures import load

STARTED, STOPPED, OOM = "6e82d47a1c9058", "d891e35f02b746", "2873b6e4f09d15"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def machines() -> dict[str, Any]:
    return {m.id: m for m in parse_machines(load("machines-list.json"))}


class TestMachineList:
    def test_three_machines_of_the_app(self, machines):
        """The list fixture gives three app machines with their ids, regions and images."""
        assert list(machines) == [STARTED, STOPPED, OOM]
        assert all(m.is_app_machine for m in machines.values())
        m = machines[STARTED]
        assert (m.name, m.state, m.region) == ("patient-glade-3174", "started", "sjc")
        assert m.instance_id == "01KKXFA4KRCN2EBW437DZKA1XF"
        assert m.image == "registry.fly.io/hotdash-api:deployment-01KKXF6Z1RY1PRH07HXDZ9F7PV"
        assert (m.memory_mb, m.cpus, m.cpu_kind) == (512, 1, "shared")
        assert (m.process_group, m.release_version, m.host_status) == ("app", "58", "ok")
        assert (m.autostop, m.autostart, m.is_standby) == (True, True, False)
        assert m.restart_policy == "on-failure"
        assert not m.incomplete

    def test_started_machine_passes_its_checks(self, machines):
        """Machine ① is started and both of its checks pass."""
        m = machines[STARTED]
        assert m.state == "started"
        assert [c.name for c in m.checks] == ["servicecheck-00-http-8080", "db"]
        assert m.checks_passing is True
        assert m.checks[0].updated_at == pytest.approx(ts("2026-03-17T08:42:05.318"))
        assert m.latest_exit is None
        assert not m.autostopped

    def test_stopped_machine_is_autostopped(self, machines):
        """Machine ② is stopped and its newest exit was a requested stop: autostopped."""
        m = machines[STOPPED]
        assert m.state == "stopped"
        assert m.autostopped is True
        assert m.checks_passing is None  # no checks reported
        assert m.latest_exit is not None and m.latest_exit.exit is not None
        assert m.latest_exit.exit.requested_stop and m.latest_exit.exit.exit_code == 0

    def test_oom_machine_latest_exit(self, machines):
        """Machine ③'s newest exit is an OOM kill (137) while flyd restarts it, restart 1."""
        m = machines[OOM]
        assert m.state == "started"
        assert m.checks_passing is False
        latest = m.latest_exit
        assert latest is not None and latest is m.events[0]
        assert latest.exit is not None
        assert latest.exit.oom_killed and latest.exit.exit_code == 137
        assert latest.exit.restarting and not latest.exit.requested_stop
        assert latest.restart_count == 1
        assert latest.exit.exited_at == pytest.approx(ts("2026-03-17T14:26:08.615"))
        assert not m.autostopped

    def test_events_newest_first_in_seconds(self, machines):
        """Embedded events are newest first and their millisecond timestamps become seconds."""
        events = machines[OOM].events
        stamps = [e.timestamp for e in events]
        assert stamps == sorted(stamps, reverse=True)
        assert stamps[0] == 1773757569.0
        assert [e.type for e in events] == ["exit", "start", "exit", "start", "update"]

    def test_config_is_read_only_and_copyable(self, machines):
        """``config`` cannot be changed in place; ``config_copy()`` is a separate mutable dict."""
        m = machines[STARTED]
        with pytest.raises(TypeError):
            m.config["image"] = "x"  # type: ignore[index]
        with pytest.raises(FrozenInstanceError):
            m.state = "stopped"  # type: ignore[misc]
        copy = m.config_copy()
        copy["guest"]["memory_mb"] = 1024
        assert m.config["guest"]["memory_mb"] == 512
        assert "config" not in repr(m)


class TestMachineShapes:
    def base(self, **overrides: Any) -> dict[str, Any]:
        raw = load("machines-list.json")[0]
        raw.update(overrides)
        return raw

    def test_release_and_console_machines_are_not_app_machines(self):
        """Release-command and console machines, and destroyed ones, are not the app's own."""
        for group in ("fly_app_release_command", "fly_app_console"):
            raw = self.base()
            raw["config"]["metadata"]["fly_process_group"] = group
            assert not parse_machine(raw).is_app_machine
        for state in ("destroyed", "destroying"):
            assert not parse_machine(self.base(state=state)).is_app_machine

    @pytest.mark.parametrize(
        ("wire", "parsed"),
        [(False, False), (True, True), ("off", False), ("stop", True), ("suspend", "suspend"),
         ("someday", "someday"), (None, None)],
    )
    def test_autostop_normalised(self, wire, parsed):
        """autostop accepts bools and strings: off/stop become bools, others stay strings."""
        raw = self.base()
        raw["config"]["services"][0]["autostop"] = wire
        assert parse_machine(raw).autostop == parsed

    def test_incomplete_config_from_unreachable_host(self):
        """Without config, the incomplete config fills the fields and the machine is marked."""
        raw = self.base(host_status="unreachable")
        raw["incomplete_config"] = raw.pop("config")
        m = parse_machine(raw)
        assert m.incomplete and m.host_status == "unreachable"
        assert m.memory_mb == 512 and m.process_group == "app"

    def test_image_rebuilt_from_image_ref(self):
        """Without config.image the image is rebuilt from image_ref."""
        raw = self.base()
        del raw["config"]["image"]
        assert parse_machine(raw).image == (
            "registry.fly.io/hotdash-api:deployment-01KKXF6Z1RY1PRH07HXDZ9F7PV"
        )

    def test_standby_and_compat_checks(self):
        """A machine with standbys is a standby; bg_deployments_compat checks are dropped."""
        raw = self.base()
        raw["config"]["standbys"] = ["148e21ea7e0389"]
        raw["checks"].append({"name": "bg_deployments_compat_http", "status": "critical"})
        m = parse_machine(raw)
        assert m.is_standby
        assert m.checks_passing is True

    def test_unknown_values_are_data(self):
        """Unknown states, event types and sources are kept as strings, not errors."""
        raw = self.base(state="hibernating", brand_new_field={"x": 1})
        raw["events"].insert(0, {"type": "teleport", "status": "beamed", "source": "proxy",
                                 "timestamp": 1773740000000, "request": {"anything": [1, 2]}})
        m = parse_machine(raw)
        assert m.state == "hibernating"
        assert (m.events[0].type, m.events[0].source, m.events[0].exit) == (
            "teleport", "proxy", None)

    def test_monitor_event_exit_is_read(self):
        """Exit details under request.MonitorEvent.exit_event are read too."""
        event = {"type": "exit", "status": "stopped", "source": "flyd", "timestamp": 1762777877000,
                 "request": {"MonitorEvent": {"exit_event": {"exit_code": 1, "oom_killed": False,
                                                             "exited_at": 1762777876904}},
                             "restart_count": 3}}
        (parsed,) = parse_events([event])
        assert parsed.exit is not None
        assert parsed.exit.exit_code == 1 and parsed.restart_count == 3
        assert parsed.exit.exited_at == pytest.approx(1762777876.904)

    @pytest.mark.parametrize(
        "body",
        [{"name": "no id"}, {"id": 5, "state": "started"}, [1, 2],
         {"id": "x", "events": [{"type": "exit"}]},
         {"id": "x", "config": {"guest": {"cpus": "many"}}}],
    )
    def test_wrong_shapes_raise_payload_error(self, body):
        """A body of the wrong shape raises PayloadError naming fields, never the values."""
        with pytest.raises(PayloadError) as info:
            parse_machine(body)
        assert "many" not in str(info.value)

    def test_list_must_be_an_array(self):
        """A machine list that is not an array is malformed."""
        with pytest.raises(PayloadError):
            parse_machines({"machines": []})


class TestEvents:
    def test_events_fixture(self):
        """The events fixture parses newest first, with ids, seconds and exit details."""
        events = parse_events(load("machine-events.json"))
        assert [e.id for e in events][:2] == ["01KKY315Z8ARPPMHPKNMSGWGHD",
                                              "01KKY2KX5GHKKXYW1XKB4QHVP7"]
        assert [e.timestamp for e in events] == sorted((e.timestamp for e in events),
                                                       reverse=True)
        assert events[0].timestamp == 1773757569.0
        assert events[0].exit is not None and events[0].exit.oom_killed
        assert events[0].restart_count == 1 and events[2].restart_count == 0
        assert events[-1].type == "launch" and events[-1].source == "user"

    def test_events_sorted_even_when_sent_oldest_first(self):
        """Events sent oldest first still come out newest first."""
        events = parse_events(list(reversed(load("machine-events.json"))))
        assert events[0].id == "01KKY315Z8ARPPMHPKNMSGWGHD"


class TestTimes:
    @pytest.mark.parametrize(
        ("wire", "expected"),
        [("2025-11-10T12:31:16.904Z", 1762777876.904),
         (1762777876904, 1762777876.904),
         ("1762777876904", 1762777876.904),
         ("2025-11-10T12:31:05.220417123Z", 1762777865.220417),
         ("2025-11-10T13:31:16+01:00", 1762777876.0),
         (1762777876, 1762777876.0)],
    )
    def test_time_shapes(self, wire, expected):
        """RFC 3339 (with nanoseconds or an offset) and epoch ms or seconds give epoch seconds."""
        assert parse_time(wire) == pytest.approx(expected)

    def test_exited_at_both_shapes(self):
        """exited_at as RFC 3339 text and as epoch milliseconds parse to the same instant."""
        events = []
        for exited_at in ("2025-11-10T12:31:16.904Z", 1762777876904):
            events += parse_events([{"type": "exit", "timestamp": 1762777877000,
                                     "request": {"exit_event": {"exited_at": exited_at}}}])
        assert events[0].exit == events[1].exit
        assert events[0].exit is not None
        assert events[0].exit.exited_at == pytest.approx(1762777876.904)

    def test_garbage_time_is_an_error(self):
        """A time that is neither text nor number of the known shapes is rejected."""
        with pytest.raises(ValueError):
            parse_time("yesterday")


class TestLease:
    DATA = {"nonce": "7b2c1e", "expires_at": 1762778000, "owner": "ops@hotdash.example",
            "description": "hotdash-watch", "version": "01J3DJ8FSSZ5AWSH8VHTPRE95B"}

    @pytest.mark.parametrize("wrap", [True, False], ids=["wrapped", "bare"])
    def test_both_shapes(self, wrap):
        """A lease parses from the {status, data} wrapper and from the bare object alike."""
        body = {"status": "success", "data": self.DATA} if wrap else self.DATA
        lease = parse_lease(body)
        assert lease.nonce == "7b2c1e"
        assert lease.expires_at == 1762778000.0
        assert lease.owner == "ops@hotdash.example"
        assert lease.version == "01J3DJ8FSSZ5AWSH8VHTPRE95B"

    def test_lease_without_nonce_is_malformed(self):
        """A lease answer without a nonce is useless and rejected."""
        with pytest.raises(PayloadError):
            parse_lease({"status": "success", "data": {"owner": "x"}})


class TestReleases:
    def test_sorted_and_previous_stable(self):
        """Releases come newest first; v57 is the newest stable, complete release before v58."""
        releases = parse_releases(load("graphql-releases.json"))
        assert [r.version for r in releases] == [58, 57, 56]
        current, *older = releases
        previous = next(r for r in older if r.stable and r.status == "complete")
        assert previous.version == 57
        assert previous.image_ref == (
            "registry.fly.io/hotdash-api:deployment-01KKHMDW1R5B26FRTHH0N7RKZ9")
        assert previous.created_at == ts("2026-03-12T18:22:40")
        assert current.user == "deploy-bot@hotdash.example" and releases[2].status == "failed"

    def test_unsorted_nodes_are_sorted(self):
        """Nodes in any order come out by version, descending."""
        body = load("graphql-releases.json")
        body["data"]["app"]["releases"]["nodes"].reverse()
        assert [r.version for r in parse_releases(body)] == [58, 57, 56]


class TestLogs:
    def test_log_page(self):
        """The logs fixture gives its lines in order, in seconds, and the next token."""
        page = parse_log_page(load("logs-page.json"))
        assert page.next_token == "1773757580193847000"
        assert len(page.lines) == 7
        first, last = page.lines[0], page.lines[-1]
        assert first.id == "01KKY30VM7AH907VC1N25FG507"
        assert first.timestamp == pytest.approx(ts("2026-03-17T14:25:58.407215"))
        assert (first.level, first.instance, first.region, first.provider) == (
            "info", OOM, "sea", "app")
        assert last.level == "error" and last.instance == STARTED
        assert page.lines[5].provider == "proxy"
        assert "Out of memory" in page.lines[2].message

    def test_empty_page(self):
        """An empty page has no lines and keeps whatever token it carries."""
        page = parse_log_page({"data": [], "meta": {"next_token": 1762777879000000000}})
        assert page.lines == () and page.next_token == "1762777879000000000"


class TestPrometheus:
    def test_vector_values_are_floats(self):
        """Vector values (strings on the wire) become floats with the sample time and labels."""
        samples = parse_prometheus(load("prometheus-query-vector.json"))
        by_status = {s.labels["status"]: s.value for s in samples}
        assert by_status["502"] == pytest.approx(6.716666666666667)
        assert len(by_status) == 6
        assert all(s.timestamp == 1773757590.481 for s in samples)

    def test_special_values(self):
        """NaN, +Inf and -Inf values parse as floats."""
        body = {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"k": "a"}, "value": [1.5, "NaN"]},
            {"metric": {"k": "b"}, "value": [1.5, "+Inf"]},
            {"metric": {"k": "c"}, "value": [1.5, "-Inf"]}]}}
        a, b, c = (s.value for s in parse_prometheus(body))
        assert math.isnan(a) and b == math.inf and c == -math.inf

    def test_scalar_and_matrix(self):
        """A scalar is one unlabelled sample; a matrix gives every point of every series."""
        scalar = {"status": "success", "data": {"resultType": "scalar", "result": [2.0, "7"]}}
        assert [(dict(s.labels), s.value) for s in parse_prometheus(scalar)] == [({}, 7.0)]
        matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"i": "1"}, "values": [[1, "1"], [2, "3"]]}]}}
        assert [s.value for s in parse_prometheus(matrix)] == [1.0, 3.0]

    def test_not_a_number_is_malformed(self):
        """A value that is not a number is a payload error."""
        body = {"status": "success", "data": {"resultType": "vector",
                                              "result": [{"metric": {}, "value": [1, "lots"]}]}}
        with pytest.raises(PayloadError):
            parse_prometheus(body)


class TestErrorBodies:
    @pytest.mark.parametrize(
        ("body", "text", "code"),
        [(b'{"error": "machine not found", "status": "unknown"}', "machine not found", "unknown"),
         (b'{"message": "bad thing"}', "bad thing", None),
         (b'{"status": "error", "message": "lease gone", "code": "not_found"}', "lease gone",
          "not_found"),
         (b'{"error": "x", "message": "preferred"}', "preferred", None),
         (b"<html>\n502 Bad Gateway\n</html>", "<html> 502 Bad Gateway </html>", None),
         (b"", "(empty body)", None)],
    )
    def test_three_shapes_and_text(self, body, text, code):
        """All three Fly error shapes parse, ``message`` wins, non-JSON is quoted on one line."""
        assert parse_error_body(body) == (text, code)

    def test_long_text_is_shortened(self):
        """An error text is cut to a bounded length."""
        text, _ = parse_error_body(json.dumps({"error": "x" * 5000}).encode())
        assert len(text) <= 300 and text.endswith("...")

    @pytest.mark.parametrize(
        ("status", "text", "kind"),
        [(429, "slow down", FlyRateLimited), (408, "timeout", FlyUnavailable),
         (500, "boom", FlyUnavailable), (503, "busy", FlyUnavailable),
         (400, "bad", FlyRejected), (422, "name taken", FlyRejected),
         (401, "who", FlyUnauthorized), (403, "no", FlyUnauthorized),
         (404, "gone", FlyNotFound),
         (409, "aborted: machine ID 148e21ea7e0389 lease currently held by "
               "9af60c27@tokens.fly.io, expires at 2026-05-14T10:41:08Z", LeaseHeld),
         (409, "current_version mismatch", FlyConflict),
         (412, "unable to start machine from current state", FlyConflict),
         (302, "moved", FlyMalformed)],
    )
    def test_status_mapping(self, status, text, kind):
        """Each status maps to its error class; only FlyUnavailable kinds are retryable."""
        exc = error_for_status(status, text, call="restart", app="hotdash-api",
                               machine=STARTED, request_id="req-1")
        assert type(exc) is kind
        assert exc.retryable is issubclass(kind, FlyUnavailable)
        assert exc.status == status and exc.request_id == "req-1"

    def test_message_names_call_machine_and_app(self):
        """The message says which call on which machine of which app failed, and why."""
        exc = error_for_status(503, "no capacity", call="restart", app="hotdash-api",
                               machine=STARTED)
        assert str(exc) == (
            "restart of machine 6e82d47a1c9058 in app hotdash-api failed: HTTP 503: no capacity")

    def test_lease_holder_parsed(self):
        """LeaseHeld carries the owner and the expiry parsed from the error text."""
        exc = error_for_status(409, "aborted: machine ID 2879325b42d318 lease currently held by "
                               "9af60c27-ee17@tokens.fly.io, expires at 2026-05-14T10:41:08Z",
                               call="update", app="a", machine="2879325b42d318")
        assert isinstance(exc, LeaseHeld)
        assert exc.owner == "9af60c27-ee17@tokens.fly.io"
        assert exc.expires_at == ts("2026-05-14T10:41:08")

    def test_any_409_on_lease_acquire_is_lease_held(self):
        """On a lease acquisition a 409 means a lease is held, whatever its text."""
        exc = error_for_status(409, "conflict", call="acquire_lease", lease_call=True)
        assert isinstance(exc, LeaseHeld) and exc.owner is None
