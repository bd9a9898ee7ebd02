"""Moved to ``hotdash_watch.model.severity``; kept until every importer has moved."""

from hotdash_watch.model.severity import *  # noqa: F403
