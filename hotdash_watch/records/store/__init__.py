"""The incident store: incidents, their timelines, daemon state, samples, the paging outbox,
mitigation actions and silences, in SQLite or PostgreSQL (schema in ``records/tables.py``).

``Store`` (``facade.py``) is what callers hold; it owns the engine and hands each call to the
repository of its table:

* ``incidents.py`` - incidents and their timelines, at most one open incident per app;
* ``state.py`` - small daemon state as JSON values under string keys;
* ``samples.py`` - per-app error ratio and latency samples for the report's chart;
* ``outbox.py`` - the paging outbox, one row per (page key, channel);
* ``actions.py`` - mitigation actions and their outcomes;
* ``silences.py`` - maintenance windows that hold pages back;
* ``engine.py`` - URLs, the engine, SQLite's durability settings, the dialect's inserts and
  the translation of failures; ``checks.py`` - what a JSON column accepts.

The store never reads the clock: every time it writes is one carried by the values it is
given. Nor does it decide what becomes of a page: the delivery loop decides what an attempt
means, and the store records it, refusing only what would break its guarantees (a second row
for a page on a channel, a change to a row that has left ``pending``).

Every failure surfaces as ``StoreError``; its message shows the URL with the password replaced
by ``***`` and never the password itself.
"""

from hotdash_watch.model.page import OutboxRow, OutboxStats, PageState, Silence
from hotdash_watch.records.store.engine import CONNECT_TIMEOUT_S, StoreError, redact_store_url
from hotdash_watch.records.store.facade import Store

__all__ = [
    "CONNECT_TIMEOUT_S",
    "OutboxRow",
    "OutboxStats",
    "PageState",
    "Silence",
    "Store",
    "StoreError",
    "redact_store_url",
]
