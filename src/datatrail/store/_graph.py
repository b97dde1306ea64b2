"""The artifact-level graph, read from ``run_io``: its edges and its recursive walks.

Every io event is one edge of the graph: an input is ``a:ARTIFACT -> r:RUN``,
an output ``r:RUN -> a:ARTIFACT``. ``run_io`` already holds one row per io
event with both ids, each under an index (``run_io_artifact``, ``run_io_run``),
so the graph is read from it directly rather than kept a second time.

From a node, the edges on one side are one index probe: for an artifact by its
id, for a run by its id, each with the role that points the right way. A walk
step joins the frontier to ``run_io`` with the two probes ORed (SQLite takes
both indexes, a ``MULTI-INDEX OR``); on PostgreSQL each step is a ``LATERAL``
union of the two probes behind ``OFFSET 0``, run per node whatever the
planner's statistics say (see ``datatrail.lineage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

__all__ = ["EDGE_COLUMNS", "Side", "artifact_edges", "artifact_walk"]

Side = Literal["src", "dst"]
"""Which end of an edge is given: ``src`` for the edges leaving a node, ``dst`` for those entering it."""

# The role of the io rows that are an artifact's (or a run's) edges on one side:
# edges leaving an artifact are the runs that read it; edges entering it, the runs that wrote it.
_ARTIFACT_ROLE = {"src": "input", "dst": "output"}
_RUN_ROLE = {"src": "output", "dst": "input"}

EDGE_COLUMNS = (
    "CASE io.role WHEN 'input' THEN 'a:' || io.artifact_id ELSE 'r:' || io.run_id END, "
    "CASE io.role WHEN 'input' THEN 'r:' || io.run_id ELSE 'a:' || io.artifact_id END"
)
"""The (src, dst) node keys of the edge an io row ``io`` is."""

_CHUNK = 500

# The walk, then one result of tagged rows: its nodes (each at its nearest depth) and the
# edges leaving the nodes it expanded. Parameters: start node, depth limit, cutoff twice.
_WALK_SQLITE = """
WITH RECURSIVE walk(node, depth) AS (
    SELECT ?, 0
    UNION
    SELECT CASE substr(w.node, 1, 2) WHEN 'a:' THEN 'r:' || io.run_id
           ELSE 'a:' || io.artifact_id END, w.depth + 1
    FROM walk w JOIN run_io io ON {probe}
    WHERE w.depth < ? AND io.ts <= ?
), found(node, depth) AS (SELECT node, MIN(depth) FROM walk GROUP BY node)
SELECT 'n', node, CAST(depth AS TEXT) FROM found UNION ALL
SELECT DISTINCT 'e', {edge} FROM found w JOIN run_io io ON {probe}
WHERE w.depth < ? AND io.ts <= ?
"""
_PROBE_SQLITE = (
    "(substr(w.node, 1, 2) = 'a:' AND io.artifact_id = substr(w.node, 3) "
    "AND io.role = '{artifact_role}') "
    "OR (substr(w.node, 1, 2) = 'r:' AND io.run_id = substr(w.node, 3) AND io.role = '{run_role}')"
)

# Parameters: start node, cutoff twice, depth limit, cutoff twice, depth limit.
_WALK_PG = """
WITH RECURSIVE walk(node, depth) AS (
    SELECT CAST(? AS TEXT){collate}, 0
    UNION
    SELECT x.node, w.depth + 1 FROM walk w CROSS JOIN LATERAL (
        SELECT 'r:' || io.run_id AS node FROM run_io io
        WHERE {artifact_probe}
        UNION ALL
        SELECT 'a:' || io.artifact_id FROM run_io io
        WHERE {run_probe}
        OFFSET 0
    ) x WHERE w.depth < ?
), found(node, depth) AS (SELECT node, MIN(depth) FROM walk GROUP BY node)
SELECT 'n', node, CAST(depth AS TEXT) FROM found UNION ALL
SELECT DISTINCT 'e', x.src, x.dst FROM found w CROSS JOIN LATERAL (
    SELECT {edge} FROM run_io io
    WHERE {artifact_probe}
    UNION ALL
    SELECT {edge} FROM run_io io
    WHERE {run_probe}
    OFFSET 0
) x (src, dst) WHERE w.depth < ?
"""
# One side of a step on PostgreSQL: a node of one kind, its io rows of one role, by the cutoff.
_PROBE_PG = (
    "left(w.node, 2) = '{kind}:' AND io.{column} = substr(w.node, 3) "
    "AND io.role = '{role}' AND io.ts <= ?"
)


def artifact_walk(
    start: str,
    side: Side,
    limit: int,
    cutoff: str,
    *,
    postgres: bool,
    collate: str = "",
) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of a walk from node key ``start`` over the edges on ``side``.

    ``side="dst"`` walks upstream (from each node to the sources of the edges
    entering it), ``side="src"`` downstream; ``limit`` is the depth in edges and
    ``cutoff`` the latest io timestamp to follow. The rows are ``('n', node,
    depth)`` and ``('e', src, dst)``.
    """
    roles = {"artifact_role": _ARTIFACT_ROLE[side], "run_role": _RUN_ROLE[side]}
    if postgres:
        sql = _WALK_PG.format(
            collate=collate,
            edge=EDGE_COLUMNS,
            artifact_probe=_PROBE_PG.format(
                kind="a", column="artifact_id", role=roles["artifact_role"]
            ),
            run_probe=_PROBE_PG.format(kind="r", column="run_id", role=roles["run_role"]),
        )
        return sql, (start, cutoff, cutoff, limit, cutoff, cutoff, limit)
    sql = _WALK_SQLITE.format(probe=_PROBE_SQLITE.format(**roles), edge=EDGE_COLUMNS)
    return sql, (start, limit, cutoff, limit, cutoff)


def artifact_edges(store: Any, keys: Iterable[str], side: Side) -> list[tuple[str, str]]:
    """The (src, dst) edges whose ``side`` end is one of the node keys ``a:ID`` or ``r:ID``.

    Keys of other kinds have no artifact-level edges and are ignored. Each edge
    comes once per io event that made it (an artifact a run read twice gives two).
    """
    artifacts = [k[2:] for k in keys if k.startswith("a:")]
    runs = [k[2:] for k in keys if k.startswith("r:")]
    out: list[tuple[str, str]] = []
    for column, ids, role in (
        ("artifact_id", artifacts, _ARTIFACT_ROLE[side]),
        ("run_id", runs, _RUN_ROLE[side]),
    ):
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            # The role as a literal: an IN list as the only parameters travels as one array.
            rows = store.query(
                f"SELECT {EDGE_COLUMNS} FROM run_io io "
                f"WHERE io.role = '{role}' AND io.{column} IN ({marks})",
                chunk,
            )
            out.extend((str(src), str(dst)) for src, dst in rows)
    return out


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]
