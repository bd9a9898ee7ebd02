"""Checks on values before they are written: what goes into a JSON column must come back
equal from both backends, and optional times are stored as floats or NULL."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hotdash_watch.records.store.engine import StoreError

__all__ = ["check_json", "opt_float"]


def check_json(value: Any, where: str) -> None:
    """Refuse what would not come back equal from both backends (NaN, non-str keys, objects)."""
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise StoreError(f"{where}: {value} is outside the 64-bit integers JSON columns keep")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StoreError(f"{where}: {value!r} cannot be stored as JSON (only finite numbers)")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise StoreError(f"{where}: key {k!r} is not a string")
            check_json(v, f"{where}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_json(v, f"{where}[{i}]")
        return
    raise StoreError(f"{where}: {type(value).__name__} value cannot be stored as JSON")


def opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)
