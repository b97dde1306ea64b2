"""PostgreSQL store ingest: events/s appending batches of 10,000 small events.

The events are a pipeline's ordinary traffic: per run a start, one input and
one output (each with its dataset and content-hashed artifact) and a finish,
about 300 bytes each, so every batch writes the log, the tree, a signed
checkpoint and every lineage projection. The baseline is the embedded SQLite
store appending the very same batches in the same run. Batches are appended
with the default id check on (``dedupe=True``), as an at-least-once ingest
worker must; the writer's fresh-id path (``dedupe=False``) is reported too.

The server comes from ``DATATRAIL_BENCH_PG_URL`` (else ``DATATRAIL_TEST_PG_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test``); the benchmark works in a
schema of its own and drops it afterwards.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from benchmarks._harness import Result
from datatrail.ledger import Signer
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    Event,
    IORecorded,
    JobRef,
    RunFinished,
    RunStarted,
    uuid7,
)

BATCH = 10_000
TARGET = 50_000  # events/s

_URL = os.environ.get(
    "DATATRAIL_BENCH_PG_URL",
    os.environ.get("DATATRAIL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)


def _content_id(n: int) -> str:
    # Real content hashes are uniformly random hex; zero-padded counters would share
    # 50-character prefixes and make every index comparison pay for them.
    return "blake3:" + hashlib.blake2b(n.to_bytes(8, "little"), digest_size=32).hexdigest()


def _batches(total: int) -> Iterator[list[Event]]:
    """``total`` events in batches of :data:`BATCH`, four events per run."""
    ts = "2024-05-01T12:00:00.000000Z"
    jobs = [JobRef(namespace="bench", name=f"etl.step{j}") for j in range(50)]
    datasets = [DatasetRef(namespace="file", name=f"/data/part{d}.parquet") for d in range(200)]
    runs = 0
    for _ in range(total // BATCH):
        batch: list[Event] = []
        while len(batch) < BATCH:
            run_id = uuid7()
            n = runs
            runs += 1
            batch += [
                RunStarted(id=uuid7(), ts=ts, run_id=run_id, job=jobs[n % 50], params={"n": n}),
                IORecorded(
                    id=uuid7(),
                    ts=ts,
                    run_id=run_id,
                    role="input",
                    artifact=ArtifactInfo(id=_content_id(n), kind="file", size=n, rows=10),
                    dataset=datasets[n % 200],
                    label="src",
                ),
                IORecorded(
                    id=uuid7(),
                    ts=ts,
                    run_id=run_id,
                    role="output",
                    artifact=ArtifactInfo(id=_content_id(n + 1), kind="file", size=n, rows=9),
                    dataset=datasets[(n + 1) % 200],
                    label="return",
                ),
                RunFinished(id=uuid7(), ts=ts, run_id=run_id, status="completed"),
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


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(quick: bool) -> list[Result]:
    from datatrail.store._postgres import PostgresStore
    from datatrail.store._sqlite import SQLiteStore

    total = 50_000 if quick else 1_000_000
    name = f"postgres ingest: {total:,} events in batches of {BATCH:,}"
    reason = _unreachable()
    if reason is not None:
        return [
            Result(
                name=name,
                ours=0.0,
                unit="events/s",
                target=f"≥ {TARGET:,} events/s",
                ok=False,
                note=f"PostgreSQL not reachable at {_URL.split('@')[-1]}: {reason}",
            )
        ]
    signer = Signer.generate("bench")
    schemas = [f"dt_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}_{k}" for k in ("ingest", "fresh")]
    pg_times: list[float] = []
    sqlite_times: list[float] = []
    fresh_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        pg = PostgresStore(_URL, create=True, signer=signer, schema=schemas[0])
        fresh = PostgresStore(_URL, create=True, signer=signer, schema=schemas[1])
        lite = SQLiteStore(Path(tmp) / "trail.db", create=True, signer=signer)
        try:
            # Same batches, interleaved, so both stores see the same machine load.
            for batch in _batches(total):
                t0 = time.perf_counter()
                pg.append(batch)
                t1 = time.perf_counter()
                lite.append(batch)
                t2 = time.perf_counter()
                fresh.append(batch, dedupe=False)
                t3 = time.perf_counter()
                pg_times.append(t1 - t0)
                sqlite_times.append(t2 - t1)
                fresh_times.append(t3 - t2)
            stored = pg.size()
        finally:
            pg.close()
            fresh.close()
            lite.close()
            for schema in schemas:
                _drop(schema)
    rate = total / sum(pg_times)
    baseline = total / sum(sqlite_times)
    fresh_rate = total / sum(fresh_times)
    p50 = statistics.median(pg_times) * 1000
    return [
        Result(
            name=name,
            ours=rate,
            unit="events/s",
            target=f"≥ {TARGET:,} events/s",
            ok=rate >= TARGET and stored == total,
            baseline=baseline,
            baseline_name="SQLite store, same batches (events/s)",
            ratio=rate / baseline,
            note=(
                f"id check on; {sum(pg_times):.1f}s, batch p50 {p50:.0f} ms, {stored:,} stored; "
                f"writer path (dedupe=False) {fresh_rate:,.0f} events/s"
            ),
            extra={"batch_p50_ms": p50, "dedupe_off_events_per_s": fresh_rate},
        )
    ]
