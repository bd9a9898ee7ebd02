"""What the classifier found, as values that stay typed from the assessment to the report.

A ``Finding`` is one reason for a severity: a ``Reason`` (also a metric label), the sentence a
person reads, and the numbers behind it. Incidents and their timeline entries keep findings as
they are, so the journal and the report derive causes from ``reason``, never from the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hotdash_watch.model.severity import Severity

__all__ = ["Finding", "Reason", "Signal"]


class Reason(StrEnum):
    """Why a severity was given; the same words label metrics and explain pages."""

    ALL_MACHINES_DOWN = "all_machines_down"
    ERROR_RATE_CRITICAL = "error_rate_critical"
    OPERATOR_SIGNAL = "operator_signal"
    PARTIAL_OUTAGE = "partial_outage"
    ERROR_RATE_MAJOR = "error_rate_major"
    LATENCY_MAJOR = "latency_major"
    OOM_KILLS_MULTIPLE = "oom_kills_multiple"
    ERROR_RATE_MINOR = "error_rate_minor"
    LATENCY_MINOR = "latency_minor"
    OOM_KILL_SINGLE = "oom_kill_single"
    AUTOSCALING = "autoscaling_misbehaving"


@dataclass(frozen=True, slots=True)
class Signal:
    """An inbound signal (operator, Alertmanager) that carries its own severity and reason."""

    severity: Severity
    summary: str
    source: str = "operator"


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason for a severity, with the sentence a person reads and the numbers behind it."""

    reason: Reason
    severity: Severity
    text: str
    numbers: Mapping[str, float] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason.value, "severity": self.severity.value,
                               "text": self.text}
        if self.numbers:
            out["numbers"] = dict(self.numbers)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of ``as_dict``; raises ``ValueError`` naming an unknown reason or
        severity (a record written by a newer version)."""
        numbers = data.get("numbers") or {}
        return cls(Reason(str(data["reason"])), Severity(str(data["severity"])),
                   str(data.get("text") or ""),
                   {str(k): float(v) for k, v in dict(numbers).items()})
