"""``LogFollower``: poll one app's logs and hand back each line once.

The polling API's ``next_token`` is a cursor *and* a start time, so successive pages can
overlap. The follower keeps the token of the last non-empty page (as flyctl does: an empty page
may carry a token past lines that have not been indexed yet) and the ids of the lines it has
already returned, bounded to the most recent ``max_seen``. A line is returned by at most one
``poll()``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from hotdash_watch.fly.models import LogLine, LogPage

__all__ = ["LogFollower", "LogSource"]


class LogSource(Protocol):
    """What a follower reads pages from: ``FlyClient.logs``."""

    async def logs(
        self, app: str, *, next_token: str | None = None, instance: str | None = None
    ) -> LogPage: ...


class LogFollower:
    """New log lines of one app (or one machine, with ``instance``) on each ``poll()``.

    ``next_token`` may be given to resume where an earlier follower stopped. Errors of the
    client (``FlyError``) propagate; the cursor and the seen ids are then unchanged, so the
    next poll asks for the same page again.
    """

    def __init__(
        self,
        client: LogSource,
        app: str,
        *,
        instance: str | None = None,
        next_token: str | None = None,
        max_seen: int = 2000,
    ) -> None:
        if max_seen < 1:
            raise ValueError(f"max_seen must be >= 1, got {max_seen}")
        self.app = app
        self.instance = instance
        self._client = client
        self._token = next_token
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._max_seen = max_seen

    @property
    def next_token(self) -> str | None:
        """The cursor the next poll sends: the token of the last non-empty page."""
        return self._token

    def __repr__(self) -> str:
        return f"LogFollower({self.app!r}, instance={self.instance!r})"

    async def poll(self) -> tuple[LogLine, ...]:
        """The lines of the next page that no earlier poll returned, in page order."""
        page = await self._client.logs(self.app, next_token=self._token, instance=self.instance)
        fresh: list[LogLine] = []
        for line in page.lines:
            if line.id in self._seen:
                self._seen.move_to_end(line.id)
                continue
            self._seen[line.id] = None
            fresh.append(line)
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)
        if page.lines and page.next_token:
            self._token = page.next_token
        return tuple(fresh)
