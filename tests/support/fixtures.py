"""The Fly API payloads in tests/fixtures (see tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def load(name: str) -> Any:
    """A fresh copy of fixture ``name`` (callers may change what they get)."""
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"fixture missing: {path}")
    return json.loads(path.read_text())
