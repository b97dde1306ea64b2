"""PostgreSQL store: ingest events/s in batches, and lineage walks over 1M runs.

Ingest: batches of 10,000 small events, a pipeline's ordinary traffic: per
run a start, one input and one output (each with its dataset and
content-hashed artifact) and a finish, about 300 bytes each, so every batch
writes the log, the tree, a signed checkpoint and every lineage projection.
The baseline is the embedded SQLite store appending the first 200,000 events
of batches made the same way, in the same run, just before PostgreSQL starts
(interleaved, SQLite's background WAL checkpoints ran during PostgreSQL's
appends and were counted in them). Before PostgreSQL's first batch the kernel's
dirty pages are flushed and the server is asked for a ``CHECKPOINT``: the
group run just before (NATS into this same server) leaves a checkpoint's worth
of dirty buffers that would otherwise be written during this one's timing. The
checkpoints the ingest causes itself stay in its time (about 1.2 KB of WAL an
event: two a million events at the default ``max_wal_size`` of 1 GB). Batches
are appended with the default id check on (``dedupe=True``), as an
at-least-once ingest worker must; the writer's fresh-id path
(``dedupe=False``) is measured afterwards in a store of its own and reported
in the note. The note also gives the CPU time the server's process spent per
batch, read from ``/proc`` when the server runs on this machine: how much of
a batch's time is the server's own work, against the client's and the waits
for the disk.

Lineage: the synthetic 1M-run graph of ``bench_core`` (1,000 chains with
random cross-links), made in SQLite by the same helper and copied into the
PostgreSQL projection tables with ``COPY``; then ``Trail.upstream(...,
depth=20)`` from 60 random chain tips. The tables are left as a bulk load
leaves them, without planner statistics (no ``ANALYZE``): the harder case. The
baseline is the same walks over the same graph in the SQLite store.

The server comes from ``DATATRAIL_BENCH_PG_URL`` (else ``DATATRAIL_TEST_PG_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test``); the benchmark works in
schemas of its own and drops them afterwards.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from benchmarks._harness import Result, percentile, settle
from datatrail.ledger import Signer
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    Event,
    IORecorded,
    JobRef,
    RunFinished,
    RunStarted,
    format_ts,
    uuid7,
)

BATCH = 10_000
BASELINE_EVENTS = 200_000
TARGET = 50_000  # events/s
LINEAGE_P50_MS = 50
LINEAGE_P95_MS = 200

_URL = os.environ.get(
    "DATATRAIL_BENCH_PG_URL",
    os.environ.get("DATATRAIL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)


def _content_id(n: int) -> str:
    # Real content hashes are uniformly random hex; zero-padded counters would share
    # 50-character prefixes and make every index comparison pay for them.
    return "blake3:" + hashlib.blake2b(n.to_bytes(8, "little"), digest_size=32).hexdigest()


_EPOCH_NS = 1_714_564_800 * 10**9  # 2024-05-01T12:00:00Z, the first run's start


def _batches(total: int) -> Iterator[list[Event]]:
    """``total`` events in batches of :data:`BATCH`, four events per run.

    Runs start a millisecond apart and their events 100 µs apart, as a pipeline's
    would: timestamps are indexed (a dataset's versions by time), and equal ones
    would let the server fold index entries together that real traffic never does.
    """
    jobs = [JobRef(namespace="bench", name=f"etl.step{j}") for j in range(50)]
    datasets = [DatasetRef(namespace="file", name=f"/data/part{d}.parquet") for d in range(200)]
    runs = 0
    for _ in range(total // BATCH):
        batch: list[Event] = []
        while len(batch) < BATCH:
            run_id = uuid7()
            n = runs
            runs += 1
            start = _EPOCH_NS + n * 1_000_000  # runs a millisecond apart
            batch += [
                RunStarted(
                    id=uuid7(),
                    ts=format_ts(start),
                    run_id=run_id,
                    job=jobs[n % 50],
                    params={"n": n},
                ),
                IORecorded(
                    id=uuid7(),
                    ts=format_ts(start + 100_000),
                    run_id=run_id,
                    role="input",
                    artifact=ArtifactInfo(id=_content_id(n), kind="file", size=n, rows=10),
                    dataset=datasets[n % 200],
                    label="src",
                ),
                IORecorded(
                    id=uuid7(),
                    ts=format_ts(start + 200_000),
                    run_id=run_id,
                    role="output",
                    artifact=ArtifactInfo(id=_content_id(n + 1), kind="file", size=n, rows=9),
                    dataset=datasets[(n + 1) % 200],
                    label="return",
                ),
                RunFinished(
                    id=uuid7(), ts=format_ts(start + 300_000), run_id=run_id, status="completed"
                ),
            ]
        yield batch


def _unreachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'datatrail[postgres]')"
    try:
        with psycopg.connect(_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _checkpoint() -> str:
    """Ask the server to write its dirty buffers now; what happened, for the row's note."""
    import psycopg

    settle()
    with psycopg.connect(_URL, autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            # Needs superuser or pg_checkpoint (PostgreSQL 15); the run goes on without it.
            return "no CHECKPOINT first (the role may not run it)"
    return "after a CHECKPOINT"


def _backend(application: str) -> Path | None:
    """The ``/proc`` directory of the server process serving ``application``'s connection.

    ``None`` when it cannot be read here: a server reached other than by a Unix
    socket or loopback (its process ids may mean nothing in this machine's
    ``/proc``), or not on Linux.
    """
    import psycopg

    with psycopg.connect(_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid, inet_server_addr() IS NULL OR inet_server_addr() << '127.0.0.0/8' "
            "OR inet_server_addr() = '::1' FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchone()
    if row is None or not row[1]:
        return None
    proc = Path(f"/proc/{row[0]}")
    try:
        return proc if proc.joinpath("comm").read_text().strip() == "postgres" else None
    except OSError:
        return None


def _cpu_seconds(proc: Path) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(quick: bool) -> list[Result]:
    reason = _unreachable()
    if reason is not None:
        return [
            Result(
                name="postgres ingest and lineage",
                ours=0.0,
                unit="-",
                target=f"≥ {TARGET:,} events/s; lineage p95 ≤ {LINEAGE_P95_MS} ms",
                ok=False,
                note=f"PostgreSQL not reachable at {_URL.split('@')[-1]}: {reason}",
            )
        ]
    return [*_ingest(quick), *_lineage(quick)]


def _ingest(quick: bool) -> list[Result]:
    from psycopg.conninfo import make_conninfo

    from datatrail.store._postgres import PostgresStore
    from datatrail.store._sqlite import SQLiteStore

    total = 50_000 if quick else 1_000_000
    name = f"postgres ingest: {total:,} events in batches of {BATCH:,}"
    signer = Signer.generate("bench")
    schemas = [f"dt_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}_{k}" for k in ("ingest", "fresh")]
    pg_times: list[float] = []
    sqlite_times: list[float] = []
    fresh_times: list[float] = []
    # The SQLite baseline first, on BASELINE_EVENTS (its rate is steady by then; the whole
    # bench run stays under ten minutes), its files deleted before PostgreSQL starts: none
    # of its background work (WAL checkpoints, the kernel writing its pages back) falls in
    # PostgreSQL's time.
    with tempfile.TemporaryDirectory() as tmp:
        lite = SQLiteStore(Path(tmp) / "trail.db", create=True, signer=signer)
        try:
            for batch in _batches(min(total, BASELINE_EVENTS)):
                t0 = time.perf_counter()
                lite.append(batch)
                sqlite_times.append(time.perf_counter() - t0)
        finally:
            lite.close()
    checkpointed = _checkpoint()
    # The server's own CPU time for the batches: how much of their time is its work.
    application = f"datatrail-bench-{uuid.uuid4().hex[:8]}"
    url = make_conninfo(_URL, application_name=application)
    try:
        pg = PostgresStore(url, create=True, signer=signer, schema=schemas[0])
        try:
            backend = _backend(application)
            cpu = _cpu_seconds(backend) if backend else 0.0
            for batch in _batches(total):
                t0 = time.perf_counter()
                pg.append(batch)
                pg_times.append(time.perf_counter() - t0)
            server_ms = (_cpu_seconds(backend) - cpu) * 1000 / len(pg_times) if backend else None
            stored = pg.size()
        finally:
            pg.close()
            _drop(schemas[0])
        # The writer's path on its own afterwards: filled alongside the first, a second
        # store would share the server's buffers with it and slow both.
        _checkpoint()
        fresh = PostgresStore(_URL, create=True, signer=signer, schema=schemas[1])
        try:
            for batch in _batches(min(total, BASELINE_EVENTS)):
                t0 = time.perf_counter()
                fresh.append(batch, dedupe=False)
                fresh_times.append(time.perf_counter() - t0)
        finally:
            fresh.close()
    finally:
        for schema in schemas:
            _drop(schema)
    rate = total / sum(pg_times)
    baseline = len(sqlite_times) * BATCH / sum(sqlite_times)
    fresh_rate = len(fresh_times) * BATCH / sum(fresh_times)
    p50 = statistics.median(pg_times) * 1000
    extra = {"batch_p50_ms": p50, "dedupe_off_events_per_s": fresh_rate}
    server = "server CPU not readable from here"
    if server_ms is not None:
        extra["server_cpu_ms_per_batch"] = server_ms
        server = f"server backend CPU {server_ms:.0f} ms a batch"
    return [
        Result(
            name=name,
            ours=rate,
            unit="events/s",
            target=f"≥ {TARGET:,} events/s",
            ok=rate >= TARGET and stored == total,
            baseline=baseline,
            baseline_name=f"SQLite store, first {min(total, BASELINE_EVENTS):,} events of the same kind, just before",
            ratio=rate / baseline,
            note=(
                f"id check on, {checkpointed}; {sum(pg_times):.1f}s, batch p50 {p50:.0f} ms "
                f"({BATCH / (p50 / 1000):,.0f} events/s), {server}, {stored:,} stored; "
                f"writer path (dedupe=False, alone, first {min(total, BASELINE_EVENTS):,}) "
                f"{fresh_rate:,.0f} events/s"
            ),
            extra=extra,
        )
    ]


# The projection columns bench_core's synthetic graph fills, with their COPY types.
_GRAPH_TABLES = (
    ("runs", "run_id, job_namespace, job_name, status, started_at", ("text",) * 5),
    ("run_io", "idx, run_id, role, artifact_id, ts", ("int8", "text", "text", "text", "text")),
    ("artifacts", "artifact_id, kind, first_idx, first_ts", ("text", "text", "int8", "text")),
)


def _copy_graph(lite: Path, schema: str) -> None:
    """Copy the graph's projection rows from the SQLite file into a fresh PostgreSQL store."""
    import psycopg

    from datatrail.store._postgres import PostgresStore

    PostgresStore(_URL, create=True, schema=schema).close()
    source = sqlite3.connect(lite)
    try:
        with psycopg.connect(_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            for table, columns, types in _GRAPH_TABLES:
                with (
                    conn.cursor() as cur,
                    cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
                ):
                    copy.set_types(list(types))
                    for row in source.execute(f"SELECT {columns} FROM {table}"):
                        copy.write_row(row)
    finally:
        source.close()


def _lineage(quick: bool) -> list[Result]:
    import datatrail
    from benchmarks.bench_core import _synthetic_graph
    from datatrail.store._postgres import PostgresStore

    runs = 100_000 if quick else 1_000_000
    schema = f"dt_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}_lineage"
    pg_samples: list[float] = []
    lite_samples: list[float] = []
    sizes: list[int] = []
    differ = 0  # walks whose graph is not the SQLite store's
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trail.db"
        tips = _synthetic_graph(path, runs, lanes=1000)
        try:
            started = time.perf_counter()
            _copy_graph(path, schema)
            fill = time.perf_counter() - started
            rng = random.Random(3)
            with (
                datatrail.Trail(store=PostgresStore(_URL, schema=schema)) as pg,
                datatrail.Trail(path) as lite,
            ):
                for _ in range(60):
                    warm = f"artifact:{rng.choice(tips)}"
                    tip = f"artifact:{rng.choice(tips)}"
                    # Same tips for both, interleaved; a warm-up walk first, as bench_core does.
                    graphs = []
                    for trail, samples in ((pg, pg_samples), (lite, lite_samples)):
                        trail.upstream(warm, depth=20)
                        start = time.perf_counter()
                        graphs.append(trail.upstream(tip, depth=20))
                        samples.append(time.perf_counter() - start)
                    sizes.append(len(graphs[0].nodes))
                    differ += graphs[0] != graphs[1]
        finally:
            _drop(schema)
    note = (
        f"{runs:,} runs copied in {fill:.0f}s, no ANALYZE; "
        f"median closure {statistics.median(sizes):.0f} nodes, {differ} differ from SQLite's"
    )
    results = []
    for label, p, target in (("p50", 50, LINEAGE_P50_MS), ("p95", 95, LINEAGE_P95_MS)):
        ours = percentile(pg_samples, p) * 1000
        base = percentile(lite_samples, p) * 1000
        results.append(
            Result(
                name=f"postgres lineage upstream depth 20, {runs:,} runs: {label}",
                ours=ours,
                unit="ms",
                target=f"≤ {target} ms",
                ok=ours <= target and differ == 0,
                baseline=base,
                baseline_name=f"SQLite store, same graph and tips ({label} ms)",
                ratio=ours / base if base else None,
                note=note,
            )
        )
    return results
