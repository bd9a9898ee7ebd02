"""The runbook's severity levels, ordered: SEV-1 is the worst."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Severity"]


class Severity(StrEnum):
    SEV1 = "SEV-1"
    SEV2 = "SEV-2"
    SEV3 = "SEV-3"

    @property
    def rank(self) -> int:
        """3 for SEV-1, 2 for SEV-2, 1 for SEV-3: larger is worse."""
        return 4 - int(self.value[-1])

    def worse_than(self, other: Severity | None) -> bool:
        return other is None or self.rank > other.rank

    @classmethod
    def worst(cls, *levels: Severity | None) -> Severity | None:
        present = [s for s in levels if s is not None]
        return max(present, key=lambda s: s.rank) if present else None

    @classmethod
    def from_rank(cls, rank: int) -> Severity | None:
        return {3: cls.SEV1, 2: cls.SEV2, 1: cls.SEV3}.get(rank)

    @property
    def title(self) -> str:
        """The runbook's name for the level: Critical, Major, Minor."""
        return {"SEV-1": "Critical", "SEV-2": "Major", "SEV-3": "Minor"}[self.value]
