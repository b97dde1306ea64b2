"""Quality metrics at level ``full`` against the equivalent pandas calls.

One row per frame: ``summarize_table`` (rows, bytes, per-column nulls, distinct
estimate, min/max, from Arrow buffers and polars expressions) against pandas
``describe()`` + ``isna().sum()`` + ``nunique()`` on the same frame (target: at
least 10× faster on 5M rows). A second row times the numpy HyperLogLog path
used when polars is not installed, against ``nunique()`` alone.

Ours and the baseline are timed alternately after a warm-up; figures are medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks._harness import Result
from datatrail.capture._hash_tables import _hll, summarize_table


def _paired(
    ours: Callable[[], object], baseline: Callable[[], object], *, repeat: int
) -> tuple[float, float]:
    ours()
    baseline()
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        ours()
        mine.append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline()
        theirs.append(time.perf_counter() - start)
    return statistics.median(mine), statistics.median(theirs)


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    amount = rng.normal(100, 30, rows)
    amount[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "order_id": np.arange(rows, dtype=np.int64),
            "customer": rng.integers(0, 200_000, rows),
            "amount": amount,
            "status": rng.choice(np.array(["paid", "refunded", "cancelled"]), rows),
            "day": pd.to_datetime(rng.integers(1.70e18, 1.75e18, rows)),
            "quantity": rng.integers(1, 6, rows).astype(np.int32),
        }
    )


def _pandas(frame: pd.DataFrame) -> object:
    return frame.describe(), frame.isna().sum(), frame.nunique()


def run(quick: bool) -> list[Result]:
    """The quality-metric rows; ``quick`` shrinks the frame for a smoke run."""
    rows = 1_000_000 if quick else 5_000_000
    repeat = 3 if quick else 5
    frame = _frame(rows)
    ours, theirs = _paired(lambda: summarize_table(frame), lambda: _pandas(frame), repeat=repeat)
    ratio = theirs / ours
    results = [
        Result(
            name=f"quality metrics, {rows / 1e6:g}M rows × 6 columns",
            ours=ours * 1000,
            unit="ms",
            target="≥ 10× pandas",
            ok=ratio >= 10,
            baseline=theirs * 1000,
            baseline_name="pandas describe + isna().sum + nunique",
            ratio=ratio,
        )
    ]
    column = pa.array(frame["customer"].to_numpy())
    exact = frame["customer"].nunique()
    estimate = _hll(column)
    ours, theirs = _paired(lambda: _hll(column), lambda: frame["customer"].nunique(), repeat=repeat)
    error = abs((estimate or 0) - exact) / exact
    results.append(
        Result(
            name=f"distinct estimate without polars (numpy HLL), {rows / 1e6:g}M int64",
            ours=ours * 1000,
            unit="ms",
            target="faster than nunique, error ≤ 3%",
            ok=ours < theirs and error <= 0.03,
            baseline=theirs * 1000,
            baseline_name="pandas Series.nunique",
            ratio=theirs / ours,
            note=f"relative error {error:.2%}",
        )
    )
    return results
