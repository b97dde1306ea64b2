"""Walking column lineage across ``column_lineage`` records, upstream or downstream.

Each record links input fields to the output fields of one statement; a
column is ``NAMESPACE:NAME:COLUMN`` (the dataset's namespace and name, then
the column). Walks follow those links breadth-first to a depth, so a column
can be traced through a chain of statements, across runs, to its sources.
``direct_only`` keeps only links that carry the value itself (DIRECT), which is
what classifications follow: a column filtered or joined on does not pass its
values on.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import msgspec

from datatrail.columns._record import TOPIC
from datatrail.errors import NodeNotFound, UsageError
from datatrail.model import from_json, parse_node_id, parse_ts

__all__ = ["ColumnEdge", "ColumnLineageGraph", "ColumnNode", "column_lineage", "parse_column"]

_MAX_DEPTH = 1000


class _Result(msgspec.Struct, frozen=True, kw_only=True):
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the stable ``--json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class ColumnNode(_Result, frozen=True, kw_only=True):
    """One column of one dataset, reached at ``depth`` steps from the root."""

    id: str
    """``NAMESPACE:NAME:COLUMN``."""
    dataset: str
    """The dataset's node id."""
    column: str
    depth: int


class ColumnEdge(_Result, frozen=True, kw_only=True):
    """``source`` feeds ``target`` by these transformations, as recorded by these statements."""

    source: str
    target: str
    transformations: list[dict[str, Any]]
    records: list[int]
    """Log indexes of the ``column_lineage`` records that state it."""
    runs: list[str] = []

    @property
    def direct(self) -> bool:
        """Whether any transformation carries the value itself."""
        return any(t.get("type") == "DIRECT" for t in self.transformations)


class ColumnLineageGraph(_Result, frozen=True, kw_only=True):
    """The upstream or downstream closure of a column."""

    root: str
    direction: Literal["upstream", "downstream"]
    depth: int
    direct_only: bool = False
    nodes: list[ColumnNode] = []
    edges: list[ColumnEdge] = []


def parse_column(text: str) -> tuple[str, str]:
    """Split ``NAMESPACE:NAME:COLUMN`` (or ``dataset:NAMESPACE:NAME:COLUMN``) into dataset node id and column."""
    body = text[len("dataset:") :] if text.startswith("dataset:") else text
    dataset, sep, column = body.rpartition(":")
    if not sep or not column or not dataset:
        raise UsageError(
            f"column {text!r}: expected NAMESPACE:NAME:COLUMN, e.g. "
            "postgres://db:5432:shop.public.orders:amount"
        )
    node = parse_node_id("dataset:" + dataset)
    return str(node), column


def _column_id(dataset_node: str, column: str) -> str:
    return f"{dataset_node[len('dataset:') :]}:{column}"


class _Link(msgspec.Struct, kw_only=True):
    transformations: list[dict[str, Any]]
    records: list[int]
    runs: list[str]


def _links(store: Any, as_of: str | None) -> dict[tuple[str, str], _Link]:
    """Every recorded field link (source column id, target column id), merged over records."""
    params: tuple[Any, ...] = (TOPIC,)
    sql = "SELECT idx, subject, data FROM records WHERE topic = ?"
    if as_of:
        sql += " AND ts <= ?"
        params = (TOPIC, parse_ts(as_of))
    links: dict[tuple[str, str], _Link] = {}
    for idx, subject, data in store.query(sql + " ORDER BY idx", params):
        body = from_json(data) if isinstance(data, str) else data
        output = body.get("output") or subject
        if not output or not isinstance(body.get("fields"), dict):
            continue
        run_id = body.get("run_id")
        for column, spec in body["fields"].items():
            target = _column_id(output, column)
            for field in spec.get("inputFields", ()):
                source = f"{field['namespace']}:{field['name']}:{field['field']}"
                link = links.setdefault(
                    (source, target), _Link(transformations=[], records=[], runs=[])
                )
                for t in field.get("transformations", ()):
                    if t not in link.transformations:
                        link.transformations.append(t)
                link.records.append(int(idx))
                if run_id and run_id not in link.runs:
                    link.runs.append(run_id)
    return links


def column_lineage(
    trail: Any,
    column: str,
    *,
    direction: Literal["upstream", "downstream"] = "upstream",
    depth: int | None = None,
    direct_only: bool = False,
    as_of: str | None = None,
) -> ColumnLineageGraph:
    """The columns a column was derived from (upstream) or feeds (downstream).

    ``trail`` is a :class:`~datatrail.Trail` (or a store); ``column`` is
    ``NAMESPACE:NAME:COLUMN``. Raises :class:`~datatrail.errors.NodeNotFound`
    when no recorded statement mentions the column.
    """
    if direction not in ("upstream", "downstream"):
        raise UsageError(f"direction must be upstream or downstream, not {direction!r}")
    limit = 50 if depth is None else depth
    if not 0 <= limit <= _MAX_DEPTH:
        raise UsageError(f"depth must be between 0 and {_MAX_DEPTH}, not {limit}")
    dataset, name = parse_column(column)
    root = _column_id(dataset, name)
    store = getattr(trail, "store", trail)
    links = _links(store, as_of)
    if direct_only:
        links = {
            k: v
            for k, v in links.items()
            if any(t.get("type") == "DIRECT" for t in v.transformations)
        }
    forward: dict[str, list[str]] = {}
    for source, target in links:
        a, b = (target, source) if direction == "upstream" else (source, target)
        forward.setdefault(a, []).append(b)
    known = {c for pair in links for c in pair}
    if root not in known:
        raise NodeNotFound(
            f"no column lineage recorded for {root}; record SQL with datatrail.sql() or a "
            "tracked cursor"
        )
    depths = {root: 0}
    queue = deque([root])
    edges: list[ColumnEdge] = []
    while queue:
        here = queue.popleft()
        if depths[here] >= limit:
            continue
        for nxt in sorted(forward.get(here, ())):
            pair = (nxt, here) if direction == "upstream" else (here, nxt)
            link = links[pair]
            edges.append(
                ColumnEdge(
                    source=pair[0],
                    target=pair[1],
                    transformations=link.transformations,
                    records=link.records,
                    runs=link.runs,
                )
            )
            if nxt not in depths:
                depths[nxt] = depths[here] + 1
                queue.append(nxt)
    nodes = []
    for node_id, d in sorted(depths.items(), key=lambda kv: (kv[1], kv[0])):
        ds_part, _, col = node_id.rpartition(":")
        nodes.append(ColumnNode(id=node_id, dataset="dataset:" + ds_part, column=col, depth=d))
    return ColumnLineageGraph(
        root=root,
        direction=direction,
        depth=limit,
        direct_only=direct_only,
        nodes=nodes,
        edges=sorted(edges, key=lambda e: (e.source, e.target)),
    )
