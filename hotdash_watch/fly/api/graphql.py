"""The GraphQL API, for what the Machines API does not tell: an app's releases (``GraphQLApi``).

GraphQL answers HTTP 200 with an ``errors[]`` list when a query fails; those are read into the
same ``FlyError`` tree as the other APIs' error statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hotdash_watch.fly.core import FlyCore, segment
from hotdash_watch.fly.errors import (
    FlyError,
    FlyNotFound,
    FlyRejected,
    FlyUnauthorized,
    FlyUnavailable,
    shorten,
)
from hotdash_watch.fly.models import Release, parse_releases

__all__ = ["RELEASES_QUERY", "GraphQLApi"]

#: The releases query, with names exactly as in Fly's GraphQL schema.
RELEASES_QUERY = """\
query ($appName: String!, $limit: Int!) {
  app(name: $appName) {
    releases: releasesUnprocessed(first: $limit) {
      nodes { id version description reason status imageRef stable
              user { id email name } createdAt }
    }
  }
}"""


class GraphQLApi(FlyCore):
    """Fly's GraphQL API (``/graphql`` under ``api_url``) of one Fly client."""

    async def releases(self, app: str, *, limit: int = 10) -> list[Release]:
        """The app's releases, newest version first (GraphQL ``releasesUnprocessed``)."""
        if not 1 <= limit <= 100:
            raise ValueError(f"limit must be between 1 and 100, got {limit}")
        ctx = {"call": "releases", "app": segment(app, "app name"), "machine": None}

        def parse(data: Any) -> list[Release]:
            errors = data.get("errors") if isinstance(data, Mapping) else None
            if errors:
                raise self._graphql_error(errors, ctx)
            return parse_releases(data)

        return await self._call(
            "POST",
            self._api / "graphql",
            call="releases",
            app=app,
            json_body={"query": RELEASES_QUERY, "variables": {"appName": app, "limit": limit}},
            parse=parse,
        )

    def _graphql_error(self, errors: Any, ctx: Mapping[str, Any]) -> FlyError:
        """The error for a GraphQL ``errors[]`` answer (HTTP 200).

        GraphQL has no status, so the kind is read from ``extensions.code`` and the message:
        not found, unauthorized, and server-side trouble are told apart; anything else is a
        rejection. (Fly's codes and texts here are UNCONFIRMED.)
        """
        messages, codes = [], []
        for err in errors if isinstance(errors, list) else [errors]:
            if isinstance(err, Mapping):
                messages.append(str(err.get("message") or ""))
                ext = err.get("extensions")
                if isinstance(ext, Mapping) and ext.get("code"):
                    codes.append(str(ext["code"]).upper())
        text = self._scrub(shorten("; ".join(messages)))
        low = text.lower()
        code = codes[0] if codes else None
        if "NOT_FOUND" in codes or "could not find" in low or "not found" in low:
            return FlyNotFound(text, code=code, **ctx)
        if {"UNAUTHORIZED", "UNAUTHENTICATED", "FORBIDDEN"} & set(codes) or (
            "not authorized" in low or "unauthorized" in low or "must be authenticated" in low
        ):
            return FlyUnauthorized(text, code=code, **ctx)
        if {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"} & set(codes) or (
            "timeout" in low or "timed out" in low or "try again" in low
        ):
            return FlyUnavailable(text, code=code, **ctx)
        return FlyRejected(text, code=code, **ctx)
