"""Reproducibility: run diffs, the content-addressed artifact cache, and replay.

:func:`diff_runs` compares two runs and ranks the likely causes of a changed
output; the :class:`ArtifactCache` keeps input and output content of ``full``
runs inside the trail folder (filled by :func:`cache_observer`); :func:`replay`
re-runs a recorded step from its commit and cached inputs and says whether it
reproduces.
"""

from datatrail.reproduce._cache import (
    DEFAULT_MAX_BYTES,
    ArtifactCache,
    CacheEntry,
    CacheStatus,
    cache_delete,
    cache_for,
    cache_observer,
    cache_path,
    install_cache,
)
from datatrail.reproduce._diff import Cause, Change, IOChange, RunDiff, diff_runs
from datatrail.reproduce._replay import (
    REPLAY_TOPIC,
    OutputCheck,
    ReplayError,
    ReplayResult,
    replay,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "REPLAY_TOPIC",
    "ArtifactCache",
    "CacheEntry",
    "CacheStatus",
    "Cause",
    "Change",
    "IOChange",
    "OutputCheck",
    "ReplayError",
    "ReplayResult",
    "RunDiff",
    "cache_delete",
    "cache_for",
    "cache_observer",
    "cache_path",
    "diff_runs",
    "install_cache",
    "replay",
]
