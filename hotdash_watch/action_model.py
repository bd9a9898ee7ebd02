"""Moved to ``hotdash_watch.model.action``; kept until every importer has moved."""

from hotdash_watch.model.action import *  # noqa: F403
