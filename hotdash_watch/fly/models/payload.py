"""What every parser of Fly's answers shares: ``PayloadError``, times, the wire-model base.

* ``PayloadError`` - a body of the wrong shape (a ``ValueError``; the client reports it as
  ``FlyMalformed``). Its message names the fields and the reasons, never the values.
* ``parse_time`` - epoch seconds from any of the time formats Fly sends; ``opt_time`` and
  ``required_time`` wrap it for optional and mandatory fields.
* ``WireModel`` and ``validate`` - private pydantic models that ignore unknown fields, and the
  one way a body is read through them.
* ``plain`` - a JSON-ready copy of a mapping (used to send a machine's config back).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "PayloadError",
    "Time",
    "WireModel",
    "opt_time",
    "parse_time",
    "plain",
    "required_time",
    "validate",
]

# An epoch number above this is in milliseconds (1e11 seconds is the year 5138).
_MS_THRESHOLD = 1e11


class PayloadError(ValueError):
    """A response body does not have the shape expected. The message names the fields only."""


# --- times ----------------------------------------------------------------------------------------


def parse_time(value: str | float | int) -> float:
    """Epoch seconds from RFC 3339 text, or from epoch seconds/milliseconds (number or digits).

    A number above 1e11 is read as milliseconds, anything smaller as seconds. A naive
    timestamp is taken as UTC. Fractions finer than microseconds are dropped.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isnan(number):
            return _parse_rfc3339(text)
    if not math.isfinite(number):
        raise ValueError("time is not a finite number")
    return number / 1000.0 if abs(number) > _MS_THRESHOLD else number


def _parse_rfc3339(text: str) -> float:
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        # Python keeps at most 6 fraction digits; Fly sends 9 in logs.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}" if frac else head + tail
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def opt_time(value: str | float | None) -> float | None:
    """``parse_time`` for optional fields: missing or empty is None."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise PayloadError(f"invalid time {str(value)[:40]!r}") from exc


def required_time(value: str | float, what: str) -> float:
    """``opt_time`` for fields that must be there: missing or empty is a ``PayloadError``."""
    parsed = opt_time(value)
    if parsed is None:
        raise PayloadError(f"missing {what}")
    return parsed


# --- copies ---------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` with every mapping made a dict and every sequence a list (JSON-ready copy)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return copy.copy(value)


# --- wire models ----------------------------------------------------------------------------------

#: A time as Fly sends it: RFC 3339 text or an epoch number.
Time = str | float


class WireModel(BaseModel):
    """The base of the private models that read response bodies: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


_M = TypeVar("_M", bound=BaseModel)


def validate(model: type[_M], data: Any, what: str) -> _M:
    """``data`` read as ``model``; a body of another shape raises ``PayloadError``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(f"unexpected {what} JSON: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """The failing fields and reasons, without the input values (they could be anything)."""
    parts = []
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return "; ".join(parts)
