"""The pass, from probe results to persisted decisions.

::

    probes ──> intake ──> AppState (windows, Fly reports, signals, steady level, incident)
                              │
                 view_of ─────┘
                    │
                    v
    decide (pure): snapshot -> classify -> debounce -> incident transition
                    │
                    v
    apply, in order: persist -> page and journal -> act (mitigation) -> metrics and logs

``build()`` wires the probes; the daemon adds the store, the responder and the mitigation
stage, which live downstream and are named here by protocols (``ports.py``). Timeline writes
outside a pass (an action's end, an escalation, an acknowledgement) go through ``Timeline``.
"""

from hotdash_watch.pipeline.build import build
from hotdash_watch.pipeline.decide import AppView, Decision, decide, view_of
from hotdash_watch.pipeline.evaluate import Pipeline
from hotdash_watch.pipeline.state import AppState, Job

__all__ = ["AppState", "AppView", "Decision", "Job", "Pipeline", "build", "decide", "view_of"]
