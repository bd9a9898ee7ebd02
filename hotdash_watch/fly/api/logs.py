"""The logs polling API: one page of an app's (or a machine's) log lines (``LogsApi``).

``fly.logs.LogFollower`` reads successive pages and hands back each line once.
"""

from __future__ import annotations

from hotdash_watch.fly.core import FlyCore, segment
from hotdash_watch.fly.models import LogPage, parse_log_page

__all__ = ["LogsApi"]


class LogsApi(FlyCore):
    """The logs polling API (``/api/v1/apps/{app}/logs`` under ``api_url``) of one Fly client."""

    async def logs(
        self, app: str, *, next_token: str | None = None, instance: str | None = None
    ) -> LogPage:
        """One page of the logs polling API; without a token, the latest lines."""
        params: dict[str, str] = {}
        if next_token:
            params["next_token"] = next_token
        if instance:
            params["instance"] = segment(instance, "instance")
        return await self._call(
            "GET",
            self._api / "api" / "v1" / "apps" / segment(app, "app name") / "logs",
            call="logs",
            app=app,
            machine=instance,
            params=params,
            parse=parse_log_page,
        )
