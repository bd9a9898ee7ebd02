"""The reference payloads in shared/reference/fixtures (beside the repository checkout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "fixtures"


def load(name: str) -> Any:
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"reference fixture missing: {path} (shared/ must sit beside the checkout)")
    return json.loads(path.read_text())
