"""The one failure every stage may meet and must handle: the store could not do what was asked."""

from __future__ import annotations

__all__ = ["StoreError"]


class StoreError(Exception):
    """The store could not do what was asked (down, refused a write, bad value). The message
    names what failed and never holds a password."""
