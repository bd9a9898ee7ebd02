"""Values the stages pass to one another: severity, findings, incidents, actions, pages,
silences. Frozen dataclasses and enums; this package imports nothing else of hotdash_watch."""
