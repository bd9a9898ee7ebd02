"""The store's schema: SQLAlchemy Core tables that work unchanged on SQLite and PostgreSQL.

* ``incidents`` - one row per incident, the latest value of every field.
* ``timeline`` - the incident's timeline, one row per entry; ``seq`` orders the entries of one
  incident (1, 2, 3, ...) and is unique with ``incident_id``.
* ``kv`` - small daemon state (budgets, heartbeats) as JSON values under string keys.
* ``samples`` - per app, the error ratio and p95 of each evaluation while an incident is open
  (the post-incident report draws them).
* ``outbox`` - every page, one row per channel, written before it is sent; ``state`` is
  pending, sent, failed, silenced or handed_over, and (``key``, ``channel``) is unique, so the
  same page is never queued twice on one channel. No foreign key to ``incidents``: a page is
  never refused for want of an incident row.
* ``actions`` - every mitigation step: planned, started (written before the Fly call), ended
  with an outcome, or vetoed by a guard. Restart budgets, cooldowns and "rollback once per
  incident" are read from it, so they hold across a restart of the watcher.
* ``silences`` - maintenance windows: pages for ``app`` (or every app, ``"*"``) between
  ``starts_at`` and ``ends_at`` are held back (stored as silenced, not sent).

Times are epoch seconds (UTC) as floats, exactly as in the values; enums are stored as their
string values. The partial unique index ``one_open_incident_per_app`` is the database's guarantee
that an app never has two open incidents at once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hotdash_watch.model.incident import State

__all__ = ["actions", "incidents", "kv", "metadata", "outbox", "samples", "silences", "timeline"]

# Deterministic constraint names, so that a later migration can refer to them by name.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("app", String, nullable=False, index=True),
    Column("state", String(20), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("max_severity", String(10), nullable=False),
    Column("opened_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
    Column("severity_since", Float, nullable=False),
    Column("monitoring_since", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("reasons", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
)

_OPEN = incidents.c.state != State.RESOLVED.value

# At most one open incident per app (PostgreSQL and SQLite both support partial indexes).
Index(
    "one_open_incident_per_app",
    incidents.c.app,
    unique=True,
    postgresql_where=_OPEN,
    sqlite_where=_OPEN,
)

timeline = Table(
    "timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "incident_id",
        String(40),
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("seq", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("event", String(30), nullable=False),
    Column("state", String(20), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    UniqueConstraint("incident_id", "seq"),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=True),
    Column("updated_at", Float, nullable=False),
)

samples = Table(
    "samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String, nullable=False),
    Column("at", Float, nullable=False),
    Column("error_ratio", Float, nullable=True),
    Column("p95_ms", Float, nullable=True),
    Column("severity", String(10), nullable=True),
    Index("ix_samples_app_at", "app", "at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("incident_id", String(40), nullable=False, index=True),
    Column("event", String(30), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("page", JSON, nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("key", "channel"),
    # The delivery loop's query: pending rows of a channel, oldest first.
    Index("ix_outbox_state_channel_created", "state", "channel", "created_at", "id"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("author", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("suspend_mitigation", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Index("ix_silences_ends_at", "ends_at"),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String, nullable=False),
    Column("incident_id", String(40), nullable=True, index=True),
    Column("kind", String(20), nullable=False),
    Column("target", String(100), nullable=False),
    Column("reason", String(60), nullable=False),
    Column("text", Text, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("guard", String(40), nullable=True),
    Column("at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("detail", JSON, nullable=False),
    Index("ix_actions_app_at", "app", "at"),
)
