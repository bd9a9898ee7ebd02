"""The mitigation stage's decisions, as pure functions of typed values.

* ``situation`` - what the policy reads about one app (``AppFacts`` in, ``Situation`` out).
* ``escalation`` - the recovery check after a mitigation: a SEV-2 still there becomes SEV-1.
* ``step_records`` - the records a step leaves: started, ended, and the veto, dry-run and
  page-only records written once per incident.

``mitigate.Mitigator`` reads the store and Fly, calls these, and writes what they return.
"""
