"""Redaction of log output: whatever a log call passes (keys, nested headers, messages,
exception tracebacks, standard-library records), no secret reaches the rendered line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from hotdash_watch import log_output as logs
from hotdash_watch.clock import ManualClock
from hotdash_watch.daemon import Daemon
from hotdash_watch.log_output import REDACTED, SecretScrubber, secret_values
from tests.support.factories import settings

SECRET = "s3cr3t-value-81f2a0c4"


@pytest.fixture
def rendered() -> Iterator[io.StringIO]:
    """Configure the real log set-up (JSON renderer) into a buffer; restore afterwards."""
    out = io.StringIO()
    old = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("json", "info", stream=out)
    try:
        yield out
    finally:
        structlog.configure(**old)
        root.handlers[:] = handlers
        root.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


class TestKeys:
    @pytest.mark.parametrize("key", [
        "authorization", "Authorization", "token", "api_token", "hooks_token", "next_token",
        "secret", "hmac_secret", "password", "db_passwd", "api_key", "X-Api-Key", "apikey",
        "cookie", "Set-Cookie", "credentials",
    ])
    def test_credential_named_keys_are_blanked(self, key: str):
        """A key named like a credential has its value replaced, whatever the value's type."""
        scrub = SecretScrubber()
        for value in ("plain", 12345, ["a", "b"], {"nested": "x"}):
            assert scrub(None, "info", {"event": "e", key: value})[key] == REDACTED

    @pytest.mark.parametrize("key", ["author", "key", "page_key", "app", "reason", "dedup_key"])
    def test_ordinary_keys_are_kept(self, key: str):
        """Keys that merely resemble credentials (author, key) keep their values."""
        assert SecretScrubber()(None, "info", {"event": "e", key: "dana"})[key] == "dana"

    def test_nested_headers(self):
        """A headers mapping at any depth loses Authorization, Cookie and API-key values and
        keeps the rest; a flag about a token (a bool) or an unset one (None) is kept."""
        event = {"event": "request_sent",
                 "request": {"headers": {"Authorization": "Bearer abc", "Cookie": "sid=1",
                                         "X-Api-Key": "k", "Accept": "application/json"}},
                 "attempts": [{"headers": {"authorization": "Basic dXNlcg=="}}],
                 "has_token": True, "token": None}
        out = SecretScrubber()(None, "info", event)
        assert out["request"]["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED,
                                             "X-Api-Key": REDACTED,
                                             "Accept": "application/json"}
        assert out["attempts"] == [{"headers": {"authorization": REDACTED}}]
        assert out["has_token"] is True and out["token"] is None


class TestText:
    @pytest.mark.parametrize(("text", "expected"), [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.payload", "sent Bearer [REDACTED]"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED]"),
        ("GET /v1/logs?token=abc123&app=svc", "GET /v1/logs?token=[REDACTED]&app=svc"),
        ("{'api_token': 'xyz', 'n': 1}", "{'api_token': '[REDACTED]', 'n': 1}"),
        ('{"password": "hunter22"}', '{"password": "[REDACTED]"}'),
        ("postgresql://watch:pw0rd@db:5432/w", "postgresql://watch:[REDACTED]@db:5432/w"),
        ("missing or wrong bearer token", "missing or wrong bearer token"),
        ("author dana acknowledged", "author dana acknowledged"),
        ("token=[REDACTED]", "token=[REDACTED]"),
    ])
    def test_patterns(self, text: str, expected: str):
        """Bearer tokens, credential-like key=value pairs and URL passwords are removed from
        any string; ordinary prose and already-redacted text are left as they are."""
        assert SecretScrubber().scrub_text(text) == expected

    def test_registered_values_go_whole(self):
        """A registered secret is removed wherever it appears, the longest first, so a secret
        containing another is not half-replaced; values under 4 characters are not taken."""
        scrub = SecretScrubber()
        scrub.register(["abcd", "abcd-efgh-ijkl", "xy", None])
        assert scrub.scrub_text("u=abcd-efgh-ijkl v=abcd xy") == "u=[REDACTED] v=[REDACTED] xy"

    def test_objects_are_rendered_then_scrubbed(self):
        """Values of other types (a URL object, an exception) are scrubbed in the text the
        renderer would have printed, and a SecretStr never shows its value."""
        scrub = SecretScrubber()
        scrub.register([SECRET])
        out = scrub(None, "info", {"event": "e", "error": ValueError(f"bad {SECRET}"),
                                   "s": SecretStr(SECRET), "raw": SECRET.encode()})
        assert SECRET not in repr(out)
        assert out["s"] == REDACTED and out["error"] == "ValueError('bad [REDACTED]')"


class TestRenderedOutput:
    def test_json_line_has_no_secret(self, rendered: io.StringIO):
        """A rendered JSON line carries no registered secret, no bearer token and no header
        value, wherever the log call put them."""
        logs.scrubber.register([SECRET])
        log = structlog.get_logger("t")
        log.info("calling", url=f"https://api.example/v1?x=1&sig={SECRET}",
                 headers={"Authorization": f"Bearer {SECRET}", "Accept": "*/*"},
                 note=f"retrying with Bearer {SECRET}")
        log.warning(f"event text with {SECRET}")
        text = rendered.getvalue()
        assert SECRET not in text
        first, second = lines(rendered)
        assert first["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}
        assert first["url"].endswith(f"sig={REDACTED}")
        assert second["event"] == f"event text with {REDACTED}"

    def test_exception_traceback_is_scrubbed(self, rendered: io.StringIO):
        """log.exception with a secret and a bearer token in the exception's message renders a
        traceback without either."""
        logs.scrubber.register([SECRET])
        log = structlog.get_logger("t")
        try:
            raise RuntimeError(f"Fly said no to {SECRET} (Authorization: Bearer zzzzzzzzzzzz)")
        except RuntimeError:
            log.exception("fly_call_failed", app="svc")
        (line,) = lines(rendered)
        assert "RuntimeError" in line["exception"] and "Traceback" in line["exception"]
        assert SECRET not in rendered.getvalue() and "zzzzzzzzzzzz" not in rendered.getvalue()

    def test_console_renderer_too(self):
        """The console renderer gets the same redaction (the processor runs before it)."""
        out = io.StringIO()
        old = structlog.get_config()
        root = logging.getLogger()
        handlers = root.handlers[:]
        logs.scrubber.register([SECRET])
        try:
            logs.configure("console", "info", stream=out)
            structlog.get_logger("t").info("calling", token=SECRET, note=f"Bearer {SECRET}")
        finally:
            structlog.configure(**old)
            root.handlers[:] = handlers
        assert "calling" in out.getvalue() and SECRET not in out.getvalue()

    def test_standard_library_records_are_scrubbed(self, rendered: io.StringIO):
        """A library logging through the standard library (aiohttp, APScheduler) cannot leak a
        secret either, in its message or its traceback."""
        logs.scrubber.register([SECRET])
        lib = logging.getLogger("aiohttp.server")
        try:
            raise ConnectionError(f"peer sent {SECRET}")
        except ConnectionError:
            lib.error("Error handling request, headers %s",
                      {"Authorization": "Bearer qqqqqqqqqqqq"}, exc_info=True)
        text = rendered.getvalue()
        assert "Error handling request" in text and "ConnectionError" in text
        assert SECRET not in text and "qqqqqqqqqqqq" not in text


class TestRegistration:
    def test_secret_values_walks_every_section(self):
        """Every SecretStr of the settings is found: server tokens, the Fly token and each
        channel's URL, routing key and HMAC key."""
        s = settings(server={"api_token": "api-aaaa", "hooks_token": "hook-bbbb",
                             "metrics_token": "met-cccc"},
                     fly={"api_token": "fly-dddd"},
                     notify={"channels": [
                         {"name": "a", "kind": "webhook", "url": "https://h.example/eeee",
                          "hmac_secret": "hmac-ffff"},
                         {"name": "b", "kind": "pagerduty", "routing_key": "rk-gggg"}]})
        assert set(secret_values(s)) == {"api-aaaa", "hook-bbbb", "met-cccc", "fly-dddd",
                                         "https://h.example/eeee", "hmac-ffff", "rk-gggg"}

    async def test_server_tokens_are_registered_at_start(self, rendered: io.StringIO):
        """Once the daemon runs, its hooks and metrics tokens are scrubbed from any line, even
        one that names them under an innocent key."""
        hooks, metrics = "hooks-tok-0d9c8b7a", "metrics-tok-1e2f3a4b"
        s = settings(server={"host": "127.0.0.1", "port": 0, "hooks_token": hooks,
                             "metrics_token": metrics})
        async with Daemon(s, ManualClock(), CollectorRegistry(), schedule=False):
            structlog.get_logger("t").info("note", text=f"{hooks} and {metrics}")
        assert hooks not in rendered.getvalue() and metrics not in rendered.getvalue()
