"""An app's releases, from the GraphQL API: ``Release`` and ``parse_releases``.

The releases query asks for ``releasesUnprocessed``; ``parse_releases`` reads its answer, newest
version first. GraphQL ``errors[]`` are the client's to report, before this parser runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotdash_watch.fly.models.payload import Time, WireModel, required_time, validate

__all__ = ["Release", "parse_releases"]


@dataclass(frozen=True, slots=True)
class Release:
    """One release of an app (GraphQL ``releasesUnprocessed``); ``created_at`` epoch seconds."""

    id: str
    version: int
    status: str
    image_ref: str | None
    stable: bool
    created_at: float
    description: str
    reason: str
    user: str | None


# --- wire models (private; their class names appear in PayloadError messages) -------------------


class _User(WireModel):
    id: str | None = None
    email: str | None = None
    name: str | None = None


class _ReleaseNode(WireModel):
    id: str
    version: int
    description: str | None = None
    reason: str | None = None
    status: str | None = None
    imageRef: str | None = None
    stable: bool | None = None
    user: _User | None = None
    createdAt: Time


class _ReleaseConnection(WireModel):
    nodes: list[_ReleaseNode | None]


class _App(WireModel):
    releases: _ReleaseConnection


class _ReleasesData(WireModel):
    app: _App


class _ReleasesBody(WireModel):
    data: _ReleasesData


# --- parsing --------------------------------------------------------------------------------------


def parse_releases(data: Any) -> list[Release]:
    """The releases of a GraphQL ``releasesUnprocessed`` answer, newest version first."""
    body = validate(_ReleasesBody, data, "releases")
    releases = []
    for node in body.data.app.releases.nodes:
        if node is None:
            continue
        user = node.user
        releases.append(
            Release(
                id=node.id,
                version=node.version,
                status=node.status or "",
                image_ref=node.imageRef or None,
                stable=bool(node.stable),
                created_at=required_time(node.createdAt, "release createdAt"),
                description=node.description or "",
                reason=node.reason or "",
                user=(user.email or user.name or user.id) if user else None,
            )
        )
    releases.sort(key=lambda r: r.version, reverse=True)
    return releases
