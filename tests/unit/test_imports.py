"""Every module of the package imports on its own (a renamed module cannot hide in one)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import hotdash_watch

MODULES = sorted(m.name for m in pkgutil.walk_packages(hotdash_watch.__path__,
                                                       prefix="hotdash_watch.")
                 if not m.name.endswith("__main__"))  # running it is what it does


class TestImports:
    @pytest.mark.parametrize("name", MODULES)
    def test_module_imports(self, name: str) -> None:
        """The module imports without error."""
        importlib.import_module(name)
