"""Log set-up: secrets never reach the output."""

from __future__ import annotations

import io
import json

import structlog

from hotdash_watch import log_output as logs


class TestSecretScrubber:
    def test_registered_secret_is_redacted_everywhere(self):
        """A registered secret is replaced in messages, nested values and token-like keys."""
        out = io.StringIO()
        old = structlog.get_config()
        logs.scrubber.register(["tok-4f9a8b7c"])
        try:
            logs.configure("json", "info", stream=out)
            log = structlog.get_logger("t")
            log.info("calling", url="https://api.example/v1?token=tok-4f9a8b7c",
                     nested={"headers": ["Bearer tok-4f9a8b7c"]})
            log.info("auth", authorization="Bearer anything")
        finally:
            structlog.configure(**old)
        text = out.getvalue()
        assert "tok-4f9a8b7c" not in text
        first, second = (json.loads(line) for line in text.splitlines())
        assert first["url"].endswith("token=[REDACTED]")
        assert first["nested"] == {"headers": ["Bearer [REDACTED]"]}
        assert second["authorization"] == "[REDACTED]"

    def test_json_when_not_a_terminal(self):
        """Output to a pipe is one JSON object per line with event, level and timestamp."""
        out = io.StringIO()
        old = structlog.get_config()
        try:
            logs.configure("auto", "info", stream=out)
            structlog.get_logger("t").warning("probe_failed", app="svc")
        finally:
            structlog.configure(**old)
        line = json.loads(out.getvalue())
        assert line["event"] == "probe_failed" and line["level"] == "warning"
        assert line["app"] == "svc" and "timestamp" in line
