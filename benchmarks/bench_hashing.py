"""Content hashing throughput: files and DataFrames against raw BLAKE3 and pandas.

Rows:

1. a file hashed with ``hash_file`` against raw ``blake3(max_threads=AUTO)`` over
   the same bytes already in memory (target: at least 80% of raw);
2. a numeric frame (float64/int64 columns) with ``hash_value`` against raw BLAKE3
   over the same column buffers (target 80%) and against
   ``pandas.util.hash_pandas_object(df, index=False)`` (target 20× faster). Both
   sides hash the same bytes on all cores (``max_threads=AUTO``); ours also checks
   every float for NaN and keeps one stream per column. The pandas row notes its
   ceiling: what raw BLAKE3 itself achieves against ``hash_pandas_object``, timed
   in the same rounds;
3. a string + int frame against ``hash_pandas_object`` (target 20× faster).

Ours and the baseline are timed in turn, round after round (each round starting
with the next one), so a noisy neighbour slows both alike; the figures are medians.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np
import pandas as pd

from benchmarks._harness import Result
from datatrail.capture._hashing import hash_file, hash_value

GB = 1e9


def _interleaved(*runs: Callable[[], object], repeat: int) -> list[float]:
    """Median seconds of each of ``runs``, timed in turn round after round, after a warm-up.

    Each round starts one further along, so no run always follows the same other one
    (hash_pandas_object churns memory and caches; whoever runs next pays for it).
    """
    for run in runs:
        run()
    samples: list[list[float]] = [[] for _ in runs]
    for round_ in range(repeat):
        for k in range(len(runs)):
            i = (round_ + k) % len(runs)
            start = time.perf_counter()
            runs[i]()
            samples[i].append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def _paired(
    ours: Callable[[], object], baseline: Callable[[], object], *, repeat: int
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``baseline``, timed alternately after one warm-up each."""
    mine, theirs = _interleaved(ours, baseline, repeat=repeat)
    return mine, theirs


def _raw_blake3(buffers: list[np.ndarray]) -> Callable[[], bytes]:
    def run() -> bytes:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        for buffer in buffers:
            hasher.update(buffer)
        return hasher.digest()

    return run


def _file_row(size: int, repeat: int) -> Result:
    data = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "payload.bin"
        data.tofile(path)
        ours, raw = _paired(lambda: hash_file(path), _raw_blake3([data]), repeat=repeat)
    ratio = raw / ours
    return Result(
        name=f"hash_file {size >> 20} MiB (page cache)",
        ours=size / ours / GB,
        unit="GB/s",
        target="≥ 0.8× raw BLAKE3",
        ok=ratio >= 0.8,
        baseline=size / raw / GB,
        baseline_name="raw blake3 AUTO, in memory",
        ratio=ratio,
    )


def _numeric_rows(rows: int, repeat: int) -> list[Result]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "a": rng.standard_normal(rows),
            "b": rng.integers(0, 1 << 40, rows),
            "c": rng.standard_normal(rows),
            "d": rng.integers(0, 100, rows),
        }
    )
    buffers = [np.asarray(frame[name]).view(np.uint8) for name in frame.columns]
    size = sum(buffer.nbytes for buffer in buffers)
    ours, raw = _paired(lambda: hash_value(frame), _raw_blake3(buffers), repeat=repeat)
    # Raw BLAKE3 runs in these rounds too, so the ceiling in the note compares timings
    # taken side by side rather than across two separate runs.
    ours_again, pandas_time, raw_again = _interleaved(
        lambda: hash_value(frame),
        lambda: pd.util.hash_pandas_object(frame, index=False),
        _raw_blake3(buffers),
        repeat=max(3, repeat // 2),
    )
    label = f"numeric frame {rows / 1e6:g}M×4"
    speedup = pandas_time / ours_again
    return [
        Result(
            name=f"{label} vs raw",
            ours=size / ours / GB,
            unit="GB/s",
            target="≥ 0.8× raw BLAKE3",
            ok=raw / ours >= 0.8,
            baseline=size / raw / GB,
            baseline_name="raw blake3 over column buffers",
            ratio=raw / ours,
        ),
        Result(
            name=f"{label} vs pandas",
            ours=ours_again * 1e3,
            unit="ms",
            target="≥ 20× faster",
            ok=speedup >= 20,
            baseline=pandas_time * 1e3,
            baseline_name="hash_pandas_object",
            ratio=speedup,
            # BLAKE3 itself bounds this row: no BLAKE3 hash of these bytes can beat
            # hash_pandas_object by more than raw BLAKE3 does, so the 20× target is out
            # of reach wherever that ceiling is below 20×.
            note=f"ceiling: raw BLAKE3 is {pandas_time / raw_again:.1f}× hash_pandas_object",
            extra={"raw_blake3_ms": raw_again * 1e3},
        ),
    ]


def _string_row(rows: int, repeat: int) -> Result:
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 10**9, rows)
    frame = pd.DataFrame(
        {"name": [f"user-{i}@example.org" for i in ids.tolist()], "n": rng.integers(0, 1000, rows)}
    )
    ours, pandas_time = _paired(
        lambda: hash_value(frame),
        lambda: pd.util.hash_pandas_object(frame, index=False),
        repeat=repeat,
    )
    speedup = pandas_time / ours
    return Result(
        name=f"string+int frame {rows / 1e6:g}M ({frame['name'].dtype})",
        ours=ours * 1e3,
        unit="ms",
        target="≥ 20× faster",
        ok=speedup >= 20,
        baseline=pandas_time * 1e3,
        baseline_name="hash_pandas_object",
        ratio=speedup,
    )


def run(quick: bool) -> list[Result]:
    """The hashing rows; ``quick`` shrinks the sizes for a smoke run."""
    file_size = (64 if quick else 512) << 20
    repeat = 5 if quick else 7
    results = [_file_row(file_size, repeat)]
    results += _numeric_rows(1_000_000 if quick else 5_000_000, repeat)
    results.append(_string_row(400_000 if quick else 2_000_000, 3 if quick else 5))
    return results
