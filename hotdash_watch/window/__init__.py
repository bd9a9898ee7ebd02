"""The windows a pass reads, one per kind of evidence, each bounded by the window's span:

* ``samples.Window``: probe observations in time buckets, read as a ``Snapshot``;
* ``traffic.TrafficWindow``: edge traffic reports (Fly's Prometheus);
* ``logs.LogTally``: log scans (error counts, dependency hints, samples).

Machine exits are kept by the machines probe's ledger, which also deduplicates Fly's events.
Nothing here reads the clock.
"""

from hotdash_watch.window.histogram import MAX_MS, MIN_MS, LogHistogram
from hotdash_watch.window.logs import LogTally
from hotdash_watch.window.samples import Snapshot, Window
from hotdash_watch.window.traffic import TrafficWindow

__all__ = ["MAX_MS", "MIN_MS", "LogHistogram", "LogTally", "Snapshot", "TrafficWindow", "Window"]
