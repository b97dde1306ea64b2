"""``Trail``: read a trail — runs, artifacts, datasets, lineage graphs, explanations.

Graph walks are recursive SQL in the store over two projections: ``run_io``
(artifact-level: input artifact → run → output artifact, one edge per io
event; see ``datatrail.store._graph``) and ``dataset_edges`` (dataset → job →
dataset). The walk carries its depth and stops at the limit, and ``UNION``
drops repeated (node, depth) pairs, so cyclic graphs (a job that reads and
writes one table) terminate.

A walk touches a few dozen rows of tables that hold millions, so every step
must be an index probe per node. SQLite plans it so. PostgreSQL, when its
statistics are missing or stale (a freshly loaded or migrated store, before
autovacuum has analysed it), may hash-join a node list against the whole
table instead, hundreds of times slower; on PostgreSQL each probe is a
``LATERAL`` subquery behind ``OFFSET 0``, which it must run per node.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from datatrail.errors import NodeNotFound, UsageError
from datatrail.lineage._records import (
    ArtifactRecord,
    DatasetRecord,
    ExplainRun,
    Explanation,
    IORecord,
    LineageEdge,
    LineageGraph,
    LineageNode,
    RunRecord,
)
from datatrail.model import NodeId, from_json, parse_node_id, parse_ts
from datatrail.store import Home, PostgresStore, Store, find_home, open_store
from datatrail.store._graph import Side, artifact_walk

__all__ = ["DEFAULT_DEPTH", "Trail"]

DEFAULT_DEPTH = 50
"""How deep a lineage walk goes when no depth is given."""
_MAX_DEPTH = 1000
_FOREVER = "9999-12-31T23:59:59.999999Z"
_CHUNK = 500

# The dataset-level walk (the artifact-level one is datatrail.store._graph's), then one result
# of tagged rows: its nodes (each at its nearest depth) and the edges leaving the nodes it
# expanded. Parameters: start node, depth limit, cutoff twice.
_WALK = """
WITH RECURSIVE walk(node, depth) AS (
    SELECT ?, 0
    UNION
    SELECT e.{next}, w.depth + 1 FROM walk w JOIN dataset_edges e ON e.{here} = w.node
    WHERE w.depth < ? AND e.first_ts <= ?
), found(node, depth) AS (SELECT node, MIN(depth) FROM walk GROUP BY node)
SELECT 'n', node, CAST(depth AS TEXT) FROM found UNION ALL
SELECT DISTINCT 'e', e.src, e.dst FROM dataset_edges e JOIN found w ON e.{here} = w.node
WHERE w.depth < ? AND e.first_ts <= ?
"""

# The same on PostgreSQL, each step an index probe per node (see the module docstring).
# Parameters: start node, cutoff, depth limit, cutoff, depth limit.
_WALK_PG = """
WITH RECURSIVE walk(node, depth) AS (
    SELECT CAST(? AS TEXT){collate}, 0
    UNION
    SELECT x.node, w.depth + 1 FROM walk w CROSS JOIN LATERAL (
        SELECT e.{next} AS node FROM dataset_edges e WHERE e.{here} = w.node AND e.first_ts <= ? OFFSET 0
    ) x WHERE w.depth < ?
), found(node, depth) AS (SELECT node, MIN(depth) FROM walk GROUP BY node)
SELECT 'n', node, CAST(depth AS TEXT) FROM found UNION ALL
SELECT DISTINCT 'e', x.src, x.dst FROM found w CROSS JOIN LATERAL (
    SELECT e.src, e.dst FROM dataset_edges e WHERE e.{here} = w.node AND e.first_ts <= ? OFFSET 0
) x WHERE w.depth < ?
"""

# An artifact's label and first dataset; on PostgreSQL its io rows are probed per artifact.
_ARTIFACTS = (
    "SELECT a.artifact_id, a.kind, a.rows, MIN(io.dataset_namespace), MIN(io.dataset_name) "
    "FROM artifacts a LEFT JOIN run_io io ON io.artifact_id = a.artifact_id "
    "WHERE a.artifact_id IN ({marks}) GROUP BY a.artifact_id, a.kind, a.rows"
)
_ARTIFACTS_PG = (
    "SELECT a.artifact_id, a.kind, a.rows, d.namespace, d.name FROM artifacts a "
    "LEFT JOIN LATERAL (SELECT MIN(io.dataset_namespace) AS namespace, "
    "MIN(io.dataset_name) AS name FROM run_io io WHERE io.artifact_id = a.artifact_id) d ON TRUE "
    "WHERE a.artifact_id IN ({marks})"
)


def _key(node: NodeId) -> str:
    prefix = {"artifact": "a", "run": "r", "dataset": "d", "job": "j"}[node.kind]
    return f"{prefix}:{node.key}"


def _node_id(key: str) -> str:
    prefix, rest = key.split(":", 1)
    return {"a": "artifact", "r": "run", "d": "dataset", "j": "job"}[prefix] + ":" + rest


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _json(text: str | None) -> Any:
    return None if text is None else from_json(text)


def _duration_ms(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    from datetime import datetime

    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return round((b - a).total_seconds() * 1000, 3)


class Trail:
    """A trail to query. ``Trail()`` opens the one in use; ``Trail(path_or_url)`` another.

    ``path_or_url`` is a trail folder (``.datatrail``), a store file, or a URL
    (``sqlite:///…``, ``postgresql://…``).
    """

    def __init__(
        self, path_or_url: str | os.PathLike[str] | None = None, *, store: Store | None = None
    ) -> None:
        if store is not None:
            self.store = store
            self.home: Home | None = None
            self._postgres = isinstance(store, PostgresStore)
            return
        if path_or_url is None:
            home = find_home()
            if home is None:
                raise NodeNotFound(
                    "no trail here: no .datatrail/ in this folder or its parents and no DATATRAIL_URL; "
                    "run `datatrail init` first"
                )
        else:
            text = os.fspath(path_or_url)
            if "://" in text:
                home = Home(path=Path.cwd(), url=text)
            elif Path(text).is_dir():
                folder = Path(text).resolve()
                home = Home(path=folder, url=f"sqlite:///{folder / 'trail.db'}")
            else:
                home = Home(
                    path=Path(text).resolve().parent, url=f"sqlite:///{Path(text).resolve()}"
                )
        self.home = home
        self.store = open_store(home.url, create=False, signer=None)
        self._postgres = isinstance(self.store, PostgresStore)

    def read(self, node: str, *, principal: str, purpose: str | None = None, **options: Any) -> Any:
        """The data of a dataset or artifact, masked as the policy says, or ``PolicyDenied``.

        Every attempt, allowed or denied, is recorded as an access event.
        """
        from datatrail.governance import read

        return read(node, principal=principal, purpose=purpose, trail=self, **options)

    def close(self) -> None:
        """Close the store connection."""
        self.store.close()

    def __enter__(self) -> Trail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------

    _RUN_COLS = (
        "run_id, job_namespace, job_name, parent_run_id, status, started_at, ended_at, params, "
        "code_id, env_id, actor, level, error"
    )

    def _run_record(self, row: tuple[Any, ...], *, detail: bool) -> RunRecord:
        (
            run_id,
            ns,
            name,
            parent,
            status,
            started,
            ended,
            params,
            code_id,
            env_id,
            actor,
            level,
            error,
        ) = row
        code = env = None
        inputs: list[IORecord] = []
        outputs: list[IORecord] = []
        children: list[str] = []
        if detail:
            if code_id:
                found = self.store.query(
                    "SELECT body FROM code_versions WHERE code_id = ?", (code_id,)
                )
                code = _json(found[0][0]) if found else {"code_id": code_id}
                if isinstance(code, dict):
                    code = {k: v for k, v in code.items() if k not in ("id", "ts", "kind", "v")}
            if env_id:
                found = self.store.query(
                    "SELECT body FROM environments WHERE env_id = ?", (env_id,)
                )
                env = _json(found[0][0]) if found else {"env_id": env_id}
                if isinstance(env, dict):
                    env = {k: v for k, v in env.items() if k not in ("id", "ts", "kind", "v")}
            for io in self._io_for_run(run_id):
                (inputs if io.role == "input" else outputs).append(io)
            children = [
                r[0]
                for r in self.store.query(
                    "SELECT run_id FROM runs WHERE parent_run_id = ? ORDER BY started_at, run_id",
                    (run_id,),
                )
            ]
        elif code_id:
            code = {"code_id": code_id}
        return RunRecord(
            run_id=run_id,
            job=f"job:{ns}:{name}",
            job_name=name or "",
            parent_run_id=parent,
            status=status,
            started_at=started,
            ended_at=ended,
            duration_ms=_duration_ms(started, ended),
            params=_json(params) or {},
            code=code,
            environment=env,
            actor=_json(actor),
            level=level,
            error=_json(error),
            inputs=inputs,
            outputs=outputs,
            children=children,
        )

    def _io_for_run(self, run_id: str) -> list[IORecord]:
        rows = self.store.query(
            "SELECT io.artifact_id, io.role, a.kind, io.label, io.dataset_namespace, io.dataset_name, "
            "a.size, a.rows, io.ts FROM run_io io JOIN artifacts a ON a.artifact_id = io.artifact_id "
            "WHERE io.run_id = ? ORDER BY io.idx",
            (run_id,),
        )
        return [
            IORecord(
                artifact_id=r[0],
                role=r[1],
                kind=r[2],
                label=r[3],
                dataset=f"dataset:{r[4]}:{r[5]}" if r[4] is not None else None,
                size=r[6],
                rows=r[7],
                ts=r[8],
            )
            for r in rows
        ]

    def run(self, run_id: str) -> RunRecord:
        """One run with its parameters, code, environment, inputs, outputs and children."""
        rows = self.store.query(f"SELECT {self._RUN_COLS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise NodeNotFound(f"no run {run_id} in this trail; `datatrail runs` lists them")
        return self._run_record(rows[0], detail=True)

    def runs(
        self,
        *,
        job: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        parent: str | None = None,
        roots_only: bool = False,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by job name, status, start time, parent."""
        if limit < 1:
            raise UsageError(f"limit must be at least 1, not {limit}")
        clauses: list[str] = []
        params: list[Any] = []
        if job:
            clauses.append("job_name = ?")
            params.append(job.split(":", 2)[-1] if job.startswith("job:") else job)
        if status:
            if status not in ("running", "completed", "failed"):
                raise UsageError(f"status {status!r} is not one of running, completed, failed")
            clauses.append("status = ?")
            params.append(status)
        if since:
            clauses.append("started_at >= ?")
            params.append(parse_ts(since))
        if until:
            clauses.append("started_at <= ?")
            params.append(parse_ts(until))
        if parent:
            clauses.append("parent_run_id = ?")
            params.append(parent)
        if roots_only:
            clauses.append("parent_run_id IS NULL")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.store.query(
            f"SELECT {self._RUN_COLS} FROM runs {where} ORDER BY started_at DESC, run_id DESC LIMIT ?",
            (*params, limit),
        )
        return [self._run_record(r, detail=False) for r in rows]

    # -- artifacts and datasets ------------------------------------------------------

    def artifact(self, artifact_id: str) -> ArtifactRecord:
        """One artifact, the datasets it is a version of, and the runs that made and used it."""
        rows = self.store.query(
            "SELECT artifact_id, kind, size, rows, schema, media_type, stats, first_ts FROM artifacts "
            "WHERE artifact_id = ?",
            (artifact_id,),
        )
        if not rows:
            raise NodeNotFound(f"no artifact {artifact_id} in this trail")
        r = rows[0]
        io = self.store.query(
            "SELECT run_id, role, dataset_namespace, dataset_name FROM run_io WHERE artifact_id = ? ORDER BY idx",
            (artifact_id,),
        )
        datasets = sorted({f"dataset:{ns}:{name}" for _, _, ns, name in io if ns is not None})
        schema = _json(r[4])
        return ArtifactRecord(
            artifact_id=r[0],
            kind=r[1],
            size=r[2],
            rows=r[3],
            schema=[(c, t) for c, t in schema] if schema else None,
            media_type=r[5],
            stats=_json(r[6]),
            first_seen=r[7],
            datasets=datasets,
            produced_by=list(dict.fromkeys(run for run, role, _, _ in io if role == "output")),
            used_by=list(dict.fromkeys(run for run, role, _, _ in io if role == "input")),
        )

    def dataset(self, namespace: str, name: str) -> DatasetRecord:
        """A dataset and its versions, oldest first."""
        rows = self.store.query(
            "SELECT first_ts FROM datasets WHERE namespace = ? AND name = ?", (namespace, name)
        )
        if not rows:
            raise NodeNotFound(f"no dataset {namespace}:{name} in this trail")
        versions = self.store.query(
            "SELECT io.artifact_id, MIN(io.ts), a.size, a.rows FROM run_io io "
            "JOIN artifacts a ON a.artifact_id = io.artifact_id "
            "WHERE io.dataset_namespace = ? AND io.dataset_name = ? "
            "GROUP BY io.artifact_id, a.size, a.rows ORDER BY MIN(io.ts)",
            (namespace, name),
        )
        return DatasetRecord(
            node_id=f"dataset:{namespace}:{name}",
            namespace=namespace,
            name=name,
            first_seen=rows[0][0],
            versions=[
                {"artifact_id": v[0], "first_seen": v[1], "size": v[2], "rows": v[3]}
                for v in versions
            ],
        )

    def latest_version(self, namespace: str, name: str, *, as_of: str | None = None) -> str:
        """The artifact id of a dataset's newest version (as of a time, if given)."""
        rows = self.store.query(
            "SELECT artifact_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ? AND ts <= ? "
            "ORDER BY ts DESC, idx DESC LIMIT 1",
            (namespace, name, parse_ts(as_of) if as_of else _FOREVER),
        )
        if not rows:
            raise NodeNotFound(f"dataset {namespace}:{name} has no recorded version")
        return str(rows[0][0])

    # -- node resolution -------------------------------------------------------------

    def resolve(self, node: str | NodeId) -> NodeId:
        """Parse a node id and check the node exists, or raise :class:`NodeNotFound`."""
        parsed = parse_node_id(node) if isinstance(node, str) else node
        params: tuple[Any, ...]
        if parsed.kind == "run":
            sql, params = "SELECT 1 FROM runs WHERE run_id = ?", (parsed.key,)
        elif parsed.kind == "artifact":
            sql, params = "SELECT 1 FROM artifacts WHERE artifact_id = ?", (parsed.key,)
        elif parsed.kind == "dataset":
            sql, params = (
                "SELECT 1 FROM datasets WHERE namespace = ? AND name = ?",
                (parsed.namespace, parsed.name),
            )
        else:
            sql, params = (
                "SELECT 1 FROM jobs WHERE namespace = ? AND name = ?",
                (parsed.namespace, parsed.name),
            )
        if not self.store.query(sql, params):
            if parsed.kind == "dataset":
                # An alias (an OpenLineage symlink) names the same dataset as its target.
                from datatrail.interop.openlineage import resolve_alias

                target = resolve_alias(self.store, str(parsed))
                if target != str(parsed):
                    return self.resolve(target)
            raise NodeNotFound(f"no {parsed.kind} {parsed} in this trail")
        return parsed

    # -- lineage -----------------------------------------------------------------------

    def upstream(
        self, node: str, *, depth: int | None = None, as_of: str | None = None
    ) -> LineageGraph:
        """Everything ``node`` was derived from, up to ``depth`` steps, as the trail stood at ``as_of``."""
        return self.lineage(node, direction="upstream", depth=depth, as_of=as_of)

    def downstream(
        self, node: str, *, depth: int | None = None, as_of: str | None = None
    ) -> LineageGraph:
        """Everything derived from ``node``, up to ``depth`` steps, as the trail stood at ``as_of``."""
        return self.lineage(node, direction="downstream", depth=depth, as_of=as_of)

    def lineage(
        self,
        node: str,
        *,
        direction: Literal["upstream", "downstream"] = "upstream",
        depth: int | None = None,
        as_of: str | None = None,
    ) -> LineageGraph:
        """The upstream or downstream closure of a node id (dataset, job, run or artifact)."""
        if direction not in ("upstream", "downstream"):
            raise UsageError(f"direction must be upstream or downstream, not {direction!r}")
        limit = DEFAULT_DEPTH if depth is None else depth
        if not 0 <= limit <= _MAX_DEPTH:
            raise UsageError(f"depth must be between 0 and {_MAX_DEPTH}, not {limit}")
        parsed = self.resolve(node)
        cutoff = parse_ts(as_of) if as_of else _FOREVER
        here: Side = "dst" if direction == "upstream" else "src"
        nxt = "src" if here == "dst" else "dst"
        start = _key(parsed)
        params: tuple[Any, ...]
        collate = self.store.key_collation if isinstance(self.store, PostgresStore) else ""
        if parsed.kind not in ("dataset", "job"):
            sql, params = artifact_walk(
                start, here, limit, cutoff, postgres=self._postgres, collate=collate
            )
        elif self._postgres:
            sql = _WALK_PG.format(here=here, next=nxt, collate=collate)
            params = (start, cutoff, limit, cutoff, limit)
        else:
            sql = _WALK.format(here=here, next=nxt)
            params = (start, limit, cutoff, limit, cutoff)
        rows = self.store.query(sql, params)
        depths = {str(a): int(b) for tag, a, b in rows if tag == "n"}
        edge_rows = [(a, b) for tag, a, b in rows if tag == "e"]
        nodes = self._describe(depths)
        edges = sorted(
            (LineageEdge(source=_node_id(s), target=_node_id(d)) for s, d in edge_rows),
            key=lambda e: (e.source, e.target),
        )
        return LineageGraph(
            root=str(parsed),
            direction=direction,
            depth=limit,
            as_of=cutoff if as_of else None,
            nodes=nodes,
            edges=edges,
        )

    def _describe(self, depths: dict[str, int]) -> list[LineageNode]:
        by_prefix: dict[str, list[str]] = {}
        for key in depths:
            by_prefix.setdefault(key[0], []).append(key[2:])
        attrs: dict[str, tuple[str, dict[str, Any]]] = {}
        for chunk in _chunks(by_prefix.get("r", [])):
            for run_id, name, status, started in self.store.query(
                f"SELECT run_id, job_name, status, started_at FROM runs WHERE run_id IN ({_marks(len(chunk))})",
                chunk,
            ):
                attrs["r:" + run_id] = (
                    str(name),
                    {"job": name, "status": status, "started_at": started},
                )
        for chunk in _chunks(by_prefix.get("a", [])):
            template = _ARTIFACTS_PG if self._postgres else _ARTIFACTS
            for art, kind, rows, ns, name in self.store.query(
                template.format(marks=_marks(len(chunk))), chunk
            ):
                dataset = f"dataset:{ns}:{name}" if ns is not None else None
                label = (
                    name.rsplit("/", 1)[-1] if name else kind
                ) + f" @{art.split(':', 1)[1][:8]}"
                attrs["a:" + art] = (label, {"kind": kind, "rows": rows, "dataset": dataset})
        for prefix in ("d", "j"):
            for key in by_prefix.get(prefix, []):
                parsed = parse_node_id(("dataset:" if prefix == "d" else "job:") + key)
                name = parsed.name or key
                label = name.rsplit("/", 1)[-1] if prefix == "d" else name
                attrs[f"{prefix}:{key}"] = (
                    label or name,
                    {"namespace": parsed.namespace, "name": name},
                )
        out = []
        for key, depth in sorted(depths.items(), key=lambda kv: (kv[1], kv[0])):
            node_id = _node_id(key)
            label, extra = attrs.get(key, (node_id.split(":", 1)[1], {}))
            kind = node_id.split(":", 1)[0]
            out.append(LineageNode(id=node_id, kind=kind, label=label, depth=depth, attrs=extra))  # type: ignore[arg-type]
        return out

    # -- explain -----------------------------------------------------------------------

    def explain(self, node: str, *, depth: int = 20) -> Explanation:
        """How an artifact was made: producing runs, their code, params and inputs, recursively.

        ``node`` is an artifact id (``artifact:…`` or the bare ``blake3:…``), a
        dataset (its latest version is explained) or a run (its first output).
        """
        if node.startswith(("blake3:", "uuid:")):
            node = "artifact:" + node
        parsed = self.resolve(node)
        if parsed.kind == "dataset":
            artifact_id = self.latest_version(parsed.namespace or "", parsed.name or "")
        elif parsed.kind == "run":
            outputs = self.store.query(
                "SELECT artifact_id FROM run_io WHERE run_id = ? AND role = 'output' ORDER BY idx",
                (parsed.key,),
            )
            if not outputs:
                raise NodeNotFound(
                    f"run {parsed.key} recorded no outputs to explain; try `datatrail show`"
                )
            artifact_id = str(outputs[-1][0])
        elif parsed.kind == "artifact":
            artifact_id = parsed.key
        else:
            raise UsageError("explain takes an artifact, a dataset or a run, not a job")
        return self._explain(artifact_id, depth, set())

    def _explain(self, artifact_id: str, depth: int, seen: set[str]) -> Explanation:
        record = self.artifact(artifact_id)
        if artifact_id in seen:
            return Explanation(artifact=record, seen_above=True)
        seen.add(artifact_id)
        steps: list[ExplainRun] = []
        if depth > 0:
            for run_id in record.produced_by:
                run = self.run(run_id)
                inputs = [self._explain(io.artifact_id, depth - 1, seen) for io in run.inputs]
                steps.append(ExplainRun(run=run, inputs=inputs))
        return Explanation(artifact=record, produced_by=steps)
