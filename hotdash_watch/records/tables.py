"""The store's schema: SQLAlchemy Core tables that work unchanged on SQLite and PostgreSQL.

* ``incidents`` - one row per incident, the latest value of every field.
* ``timeline`` - the incident's timeline, one row per entry; ``seq`` orders the entries of one
  incident (1, 2, 3, ...) and is unique with ``incident_id``.
* ``kv`` - small daemon state (budgets, heartbeats) as JSON values under string keys.
* ``samples`` - per app, the error ratio and p95 of each evaluation while an incident is open
  (the post-incident report draws them).

Times are epoch seconds (UTC) as floats, exactly as in the values; enums are stored as their
string values. The partial unique index ``one_open_incident_per_app`` is the database's guarantee
that an app never has two open incidents at once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from hotdash_watch.incident_model import State

__all__ = ["incidents", "kv", "metadata", "samples", "timeline"]

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
