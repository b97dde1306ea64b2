"""The shared shape of a benchmark result and the timing helpers.

Every benchmark module exposes ``run(quick: bool) -> list[Result]``. A result
states our figure, the baseline measured in the same run (a reference
implementation or the raw primitive), their ratio, and the target from the
issue, so the table can say plainly whether the target holds. Medians, never
single timings: these machines are shared and noisy.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    """One row of the benchmark table."""

    name: str
    ours: float
    unit: str
    target: str
    ok: bool
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def settle() -> float:
    """Flush the kernel's dirty pages; return the seconds it took.

    A group that writes gigabytes (a million-event store, a JetStream stream) leaves
    them for the kernel to write back over the next seconds. A group that commits
    with ``fsync`` while that writeback runs would count the earlier group's I/O as
    its own, so the runner settles the disk before each group, outside its timing.
    """
    start = time.perf_counter()
    os.sync()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Median wall time of ``number`` calls of ``fn``, over ``repeat`` rounds, per call."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile (0-100) of ``samples`` by nearest rank."""
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
