"""Deriving the projection tables from events.

Every projection row is a pure function of the events before it: rows are
written with first-wins inserts and commutative upserts, so deriving a batch
incrementally and deriving the whole log again in ``rebuild`` give equal
tables. That equality is what ``verify`` checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from datatrail.errors import InvalidNodeId
from datatrail.model import (
    CodeVersion,
    Environment,
    ErasureRecorded,
    Event,
    IORecorded,
    Record,
    RunFinished,
    RunStarted,
    canonical_bytes,
    parse_node_id,
)

__all__ = ["Statements", "derive"]

Statements = list[tuple[str, list[tuple[object, ...]]]]

_SQL_JOB = (
    "INSERT INTO jobs (namespace, name, first_idx, first_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, name) DO NOTHING"
)
_SQL_DATASET = (
    "INSERT INTO datasets (namespace, name, first_idx, first_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, name) DO NOTHING"
)
_SQL_ARTIFACT = (
    "INSERT INTO artifacts (artifact_id, kind, size, rows, schema, media_type, stats, first_idx, first_ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (artifact_id) DO NOTHING"
)
_SQL_CODE = "INSERT INTO code_versions (code_id, body, first_idx) VALUES (?, ?, ?) ON CONFLICT (code_id) DO NOTHING"
_SQL_ENV = "INSERT INTO environments (env_id, body, first_idx) VALUES (?, ?, ?) ON CONFLICT (env_id) DO NOTHING"
# A start never touches the end columns and an end never touches the start columns,
# so the two commute: the row is the same whichever arrives first.
_SQL_RUN_START = (
    "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET job_namespace = excluded.job_namespace, "
    "job_name = excluded.job_name, parent_run_id = excluded.parent_run_id, "
    "started_at = excluded.started_at, params = excluded.params, code_id = excluded.code_id, "
    "env_id = excluded.env_id, actor = excluded.actor, level = excluded.level, "
    "start_idx = excluded.start_idx"
)
# A run that started and ended within one batch is written once, whole.
_SQL_RUN_WHOLE = (
    "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx, ended_at, error, end_idx) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET job_namespace = excluded.job_namespace, "
    "job_name = excluded.job_name, parent_run_id = excluded.parent_run_id, "
    "started_at = excluded.started_at, params = excluded.params, code_id = excluded.code_id, "
    "env_id = excluded.env_id, actor = excluded.actor, level = excluded.level, "
    "start_idx = excluded.start_idx, status = excluded.status, ended_at = excluded.ended_at, "
    "error = excluded.error, end_idx = excluded.end_idx"
)
_SQL_RUN_END = (
    "INSERT INTO runs (run_id, status, ended_at, error, end_idx) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at, "
    "error = excluded.error, end_idx = excluded.end_idx"
)
_SQL_IO = (
    "INSERT INTO run_io (idx, run_id, role, artifact_id, dataset_namespace, dataset_name, label, ts, "
    "job_namespace, job_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Dataset-level data flow comes from the io event alone (it names its run's job), so it is
# the same whether derived batch by batch or all at once: dataset -> job, job -> dataset.
_SQL_DS_EDGE = (
    "INSERT INTO dataset_edges (src, dst, first_idx, first_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (src, dst) DO NOTHING"
)
# An in-memory hand-off (an input with no dataset that an earlier io event output) links the
# producing job to the consuming job, so dataset-level lineage crosses steps passing frames.
_SQL_JOB_EDGE = (
    "INSERT INTO dataset_edges (src, dst, first_idx, first_ts) "
    "SELECT DISTINCT 'j:' || o.job_namespace || ':' || o.job_name, ?, ?, ? FROM run_io o "
    "WHERE o.artifact_id = ? AND o.role = 'output' AND o.idx < ? AND o.job_name IS NOT NULL "
    "ON CONFLICT (src, dst) DO NOTHING"
)
_SQL_ERASURE = (
    "INSERT INTO erasures (target_idx, receipt_idx, reason, ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (target_idx) DO NOTHING"
)

_SQL_RECORD = "INSERT INTO records (idx, topic, subject, ts, data, actor) VALUES (?, ?, ?, ?, ?, ?)"


# Datasets and jobs known without a run (an OpenLineage DatasetEvent or JobEvent): the
# node exists, and a job's declared inputs and outputs are dataset-level lineage.
_DECLARED = ("dataset.declared", "job.declared")


def _declare(
    ev: Record,
    idx: int,
    jobs: list[tuple[object, ...]],
    datasets: list[tuple[object, ...]],
    ds_edges: list[tuple[object, ...]],
) -> None:
    try:
        node = parse_node_id(ev.subject or "")
    except InvalidNodeId:
        return  # a malformed declaration names nothing; the record itself is kept
    if ev.topic == "dataset.declared":
        if node.kind == "dataset":
            datasets.append((node.namespace, node.name, idx, ev.ts))
        return
    if node.kind != "job":
        return
    jobs.append((node.namespace, node.name, idx, ev.ts))
    jkey = f"j:{node.namespace}:{node.name}"
    for role in ("inputs", "outputs"):
        declared = ev.data.get(role)
        for item in declared if isinstance(declared, list) else []:
            try:
                ds = parse_node_id(item) if isinstance(item, str) else None
            except InvalidNodeId:
                continue
            if ds is None or ds.kind != "dataset":
                continue
            datasets.append((ds.namespace, ds.name, idx, ev.ts))
            dkey = f"d:{ds.namespace}:{ds.name}"
            pair = (dkey, jkey) if role == "inputs" else (jkey, dkey)
            ds_edges.append((*pair, idx, ev.ts))


def _json(value: object) -> str | None:
    return None if value is None else canonical_bytes(value).decode()


_last_actor: tuple[object, str | None] = (None, None)


def _actor_json(actor: object) -> str | None:
    """``_json(actor)``, remembered for the last actor object (a process has one)."""
    global _last_actor
    last = _last_actor
    if last[0] is actor and actor is not None:
        return last[1]
    text = _json(actor)
    _last_actor = (actor, text)
    return text


def derive(events: Iterable[tuple[int, Event]]) -> Statements:
    """The projection writes for ``(index, event)`` pairs, as (SQL, rows) in the order to run them."""
    jobs: list[tuple[object, ...]] = []
    datasets: list[tuple[object, ...]] = []
    artifacts: list[tuple[object, ...]] = []
    codes: list[tuple[object, ...]] = []
    envs: list[tuple[object, ...]] = []
    # Starts write only start columns and ends only end columns, each last-one-wins, so
    # per run only the last start and the last end of a batch matter, in either order:
    # a run with both in the batch is written once, whole.
    starts: dict[str, tuple[object, ...]] = {}
    ends: dict[str, tuple[object, ...]] = {}
    ios: list[tuple[object, ...]] = []
    ds_edges: list[tuple[object, ...]] = []
    job_edges: list[tuple[object, ...]] = []
    erasures: list[tuple[object, ...]] = []
    records: list[tuple[object, ...]] = []
    seen_jobs: set[tuple[str, str]] = set()
    for idx, ev in events:
        if isinstance(ev, IORecorded):
            art = ev.artifact
            artifacts.append(
                (
                    art.id,
                    art.kind,
                    art.size,
                    art.rows,
                    _json(art.schema),
                    art.media_type,
                    _json(art.stats),
                    idx,
                    ev.ts,
                )
            )
            ds = ev.dataset
            job = ev.job
            ns, name = (ds.namespace, ds.name) if ds is not None else (None, None)
            jns, jname = (job.namespace, job.name) if job is not None else (None, None)
            ios.append((idx, ev.run_id, ev.role, art.id, ns, name, ev.label, ev.ts, jns, jname))
            if ds is not None:
                datasets.append((ds.namespace, ds.name, idx, ev.ts))
            if job is not None:
                jkey = f"j:{job.namespace}:{job.name}"
                if ds is not None:
                    dkey = f"d:{ds.namespace}:{ds.name}"
                    pair = (dkey, jkey) if ev.role == "input" else (jkey, dkey)
                    ds_edges.append((*pair, idx, ev.ts))
                elif ev.role == "input":
                    job_edges.append((jkey, idx, ev.ts, art.id, idx))
        elif isinstance(ev, RunStarted):
            job_key = (ev.job.namespace, ev.job.name)
            if job_key not in seen_jobs:  # first wins, as the upsert would keep it
                seen_jobs.add(job_key)
                jobs.append((*job_key, idx, ev.ts))
            starts[ev.run_id] = (
                ev.run_id,
                ev.job.namespace,
                ev.job.name,
                ev.parent_run_id,
                ev.ts,
                _json(ev.params),
                ev.code_id,
                ev.env_id,
                _actor_json(ev.actor),
                ev.level,
                idx,
            )
        elif isinstance(ev, RunFinished):
            ends[ev.run_id] = (ev.run_id, ev.status, ev.ts, _json(ev.error), idx)
        elif isinstance(ev, CodeVersion):
            codes.append((ev.code_id, _json(ev), idx))
        elif isinstance(ev, Environment):
            envs.append((ev.env_id, _json(ev), idx))
        elif isinstance(ev, ErasureRecorded):
            erasures.append((ev.target_index, idx, ev.reason, ev.ts))
        elif isinstance(ev, Record):
            records.append(
                (
                    idx,
                    ev.topic,
                    ev.subject,
                    ev.ts,
                    canonical_bytes(ev.data).decode(),
                    _json(ev.actor),
                )
            )
            if ev.topic in _DECLARED and ev.subject:
                _declare(ev, idx, jobs, datasets, ds_edges)
    wholes = []
    for run_id in [r for r in starts if r in ends]:
        start, end = starts.pop(run_id), ends.pop(run_id)
        wholes.append((*start[:4], end[1], *start[4:], end[2], end[3], end[4]))
    plan: Statements = [
        (_SQL_JOB, jobs),
        (_SQL_CODE, codes),
        (_SQL_ENV, envs),
        (_SQL_RUN_WHOLE, wholes),
        (_SQL_RUN_START, list(starts.values())),
        (_SQL_RUN_END, list(ends.values())),
        (_SQL_DATASET, datasets),
        (_SQL_ARTIFACT, artifacts),
        (_SQL_IO, ios),
        (_SQL_DS_EDGE, ds_edges),
        (_SQL_JOB_EDGE, job_edges),
        (_SQL_ERASURE, erasures),
        (_SQL_RECORD, records),
    ]
    return [(sql, rows) for sql, rows in plan if rows]
