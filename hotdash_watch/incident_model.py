"""Moved to ``hotdash_watch.model.incident``; kept until every importer has moved."""

from hotdash_watch.model.incident import *  # noqa: F403
