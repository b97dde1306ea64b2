"""Column lineage and artifact cache benchmarks.

- SQL column lineage: one 3-CTE, join, aggregate, window statement analysed end to end
  (parse, qualify, trace every column), against sqlglot's own ``parse_one`` + ``qualify`` of
  the same statement (the floor any sqlglot-based analysis pays), and against sqlglot's
  ``lineage()`` for every output column (its own column tracer, which gives no
  transformation types).
- Artifact cache: keeping a 200k-row pandas frame (Parquet, verified by loading it back and
  hashing) against a plain ``DataFrame.to_parquet`` of the same frame.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks._harness import Result, median_time

QUERY = """
WITH paid AS (
    SELECT o.id, o.customer_id, o.amount, o.day FROM orders o WHERE o.status = 'paid'
), per_customer AS (
    SELECT p.customer_id, SUM(p.amount) AS revenue, COUNT(p.id) AS n
    FROM paid p GROUP BY p.customer_id
), ranked AS (
    SELECT c.region, pc.customer_id, pc.revenue, pc.n,
           ROW_NUMBER() OVER (PARTITION BY c.region ORDER BY pc.revenue DESC) AS rk
    FROM per_customer pc JOIN customers c ON c.id = pc.customer_id
)
SELECT r.region, r.customer_id, r.revenue,
       CASE WHEN r.n > 10 THEN 'loyal' ELSE 'casual' END AS segment,
       SHA256(CAST(r.customer_id AS TEXT)) AS customer_hash
FROM ranked r WHERE r.rk <= 10 ORDER BY r.region, r.revenue DESC
"""


def _sql(quick: bool) -> list[Result]:
    import sqlglot
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify

    from datatrail.columns import analyze

    repeat = 5 if quick else 15
    ours = median_time(lambda: analyze(QUERY), repeat=repeat)
    floor = median_time(lambda: qualify(sqlglot.parse_one(QUERY)), repeat=repeat)
    columns = list(analyze(QUERY).fields)

    def sqlglot_lineage() -> None:
        for column in columns:
            lineage(column, QUERY, schema=None)

    theirs = median_time(sqlglot_lineage, repeat=repeat)
    return [
        Result(
            name="SQL column lineage, 5-column 3-CTE query",
            ours=ours * 1e3,
            unit="ms",
            target="≤ 3× parse+qualify",
            ok=ours / floor <= 3,
            baseline=floor * 1e3,
            baseline_name="sqlglot parse_one + qualify",
            ratio=ours / floor,
        ),
        Result(
            name="SQL column lineage vs sqlglot.lineage per column",
            ours=ours * 1e3,
            unit="ms",
            target="faster than sqlglot.lineage",
            ok=ours < theirs,
            baseline=theirs * 1e3,
            baseline_name="sqlglot.lineage() for each column",
            ratio=ours / theirs,
        ),
    ]


def _cache(quick: bool) -> list[Result]:
    import numpy as np
    import pandas as pd

    from datatrail.capture._hashing import hash_value
    from datatrail.model import ArtifactInfo
    from datatrail.reproduce import ArtifactCache

    rows = 50_000 if quick else 200_000
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "amount": rng.random(rows),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )
    content = hash_value(frame)
    assert content is not None
    art = ArtifactInfo(id=content.digest, kind=content.kind)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counter = iter(range(1_000_000))

        def put() -> None:
            cache = ArtifactCache(root / f"c{next(counter)}")
            assert cache.put(frame, art) is not None

        def plain() -> None:
            frame.to_parquet(root / f"p{next(counter)}.parquet", engine="pyarrow")

        repeat = 3 if quick else 7
        ours = median_time(put, repeat=repeat)
        base = median_time(plain, repeat=repeat)
    return [
        Result(
            name=f"cache put, pandas {rows:,} rows (verified)",
            ours=ours * 1e3,
            unit="ms",
            target="≤ 4× plain to_parquet",
            ok=ours / base <= 4,
            baseline=base * 1e3,
            baseline_name="DataFrame.to_parquet",
            ratio=ours / base,
            note="includes reading back and hashing to verify",
        )
    ]


def run(quick: bool) -> list[Result]:
    """Every column lineage and cache benchmark."""
    return [*_sql(quick), *_cache(quick)]
