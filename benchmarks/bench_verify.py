"""Tamper evidence at scale: store append rate, inclusion proofs from the store, full verify.

Three rows over one SQLite store of N synthetic ``run_finished`` events
(~200 canonical bytes each; 100k quick, 1M full):

- append: ``store.append`` in batches of 10,000 fresh events (what the writer
  does: hash leaves, extend the tree, derive projections, sign a checkpoint, in
  one transaction), in leaves per second, against the bare SQLite insert of
  the same event rows (no tree, no projections, no checkpoint). The row's
  ``extra`` splits the append time by SQL statement and the Python between.
  It is information, not a target: the ledger's append target (leaf hashing
  and tree nodes, ``bench_ledger``) is the issue's "append with hashing", and
  this whole path is what the writer row of ``bench_core`` has its target on.
- inclusion proofs: ``store.inclusion_proof`` for 1,000 random entries of the
  full tree, each timed alone; p50 and p99.
- verify: ``datatrail.audit.verify`` of the whole store, with the time of each
  pass in ``extra`` and the growth of peak RSS.
"""

from __future__ import annotations

import gc
import hashlib
import random
import resource
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, percentile
from datatrail.audit import verify
from datatrail.audit._checkpoints import judge_checkpoints, read_checkpoints
from datatrail.audit._collect import Faults
from datatrail.audit._log import check_tree, scan_events
from datatrail.ledger import Signer, verify_inclusion
from datatrail.model import ErrorInfo, RunFinished, encode_event, now_ts, uuid7
from datatrail.store import SQLiteStore

BATCH = 10_000
PROOFS = 1_000
STORE_APPEND = (
    "informational: the whole append transaction (the append-with-hashing target is "
    "the ledger row's; the writer row's target covers this path)"
)
PROOF_TARGET_MS = 1.0
VERIFY_TARGET_S = 30.0


def _batch(n: int, ts: str) -> list[RunFinished]:
    error = ErrorInfo(type="", message="")  # pads the body to ~200 bytes, as a small real event is
    return [
        RunFinished(id=uuid7(), ts=ts, run_id=uuid7(), status="completed", error=error)
        for _ in range(n)
    ]


def _instrument(store: SQLiteStore) -> tuple[Counter[str], Callable[[], None]]:
    """Time every statement the append path runs (the store's own SQL hooks), and COMMIT."""
    spent: Counter[str] = Counter()
    many, one, conn = store._executemany, store._execute, store._conn

    def label(sql: str) -> str:
        words = sql.split()
        table = words[2] if words[0] in ("INSERT", "DELETE") else words[1]
        return f"{words[0].lower()} {table.split('(')[0] or 'max_idx'}"

    def timed_many(tx: Any, sql: str, rows: Any) -> None:
        t = time.perf_counter()
        many(tx, sql, rows)
        spent[label(sql)] += time.perf_counter() - t

    def timed_one(tx: Any, sql: str, params: Any = ()) -> Any:
        t = time.perf_counter()
        out = one(tx, sql, params)
        spent[label(sql)] += time.perf_counter() - t
        return out

    class _Conn:
        def execute(self, sql: str, *args: Any) -> Any:
            t = time.perf_counter()
            out = conn.execute(sql, *args)
            if sql in ("COMMIT", "BEGIN IMMEDIATE"):
                spent[sql.lower()] += time.perf_counter() - t
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(conn, name)

    store._executemany = timed_many  # type: ignore[method-assign]
    store._execute = timed_one  # type: ignore[method-assign]
    store._conn = _Conn()  # type: ignore[assignment]

    def restore() -> None:
        store._executemany = many  # type: ignore[method-assign]
        store._execute = one  # type: ignore[method-assign]
        store._conn = conn

    return spent, restore


def _fill(store: SQLiteStore, n: int) -> tuple[float, dict[str, float]]:
    """Append n events; return leaves/s and the time split (seconds) of the append calls."""
    ts = now_ts()
    spent, restore = _instrument(store)
    total = 0.0
    try:
        for _ in range(0, n, BATCH):
            events = _batch(BATCH, ts)
            t = time.perf_counter()
            store.append(events, dedupe=False)
            total += time.perf_counter() - t
    finally:
        restore()
    split = {f"{k}_s": round(v, 3) for k, v in spent.most_common()}
    split["python_and_hashing_s"] = round(total - sum(spent.values()), 3)
    split["append_total_s"] = round(total, 3)
    return n / total, split


def _bare_sqlite(tmp: Path, n: int) -> float:
    """The floor: the same event rows into the same events table, nothing else."""
    from datatrail.store._schema import MIGRATIONS, sqlite_sql

    conn = sqlite3.connect(tmp / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    events_ddl = next(s for s in MIGRATIONS[0].statements if "CREATE TABLE events" in s)
    conn.execute(sqlite_sql(events_ddl))
    ts = now_ts()
    total = 0.0
    for start in range(0, n, BATCH):
        batch = _batch(BATCH, ts)
        t = time.perf_counter()
        rows = []
        for i, ev in enumerate(batch):
            body = encode_event(ev)
            rows.append(
                (
                    start + i,
                    ev.id,
                    "run_finished",
                    ev.ts,
                    body,
                    hashlib.sha256(b"\x00" + body).digest(),
                )
            )
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (idx, id, kind, ts, body, leaf) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        conn.execute("COMMIT")
        total += time.perf_counter() - t
    conn.close()
    return n / total


def _proofs(store: SQLiteStore, n: int) -> tuple[list[float], int]:
    rng = random.Random(7)
    indexes = [rng.randrange(n) for _ in range(PROOFS)]
    root = store.root()
    leaves = {i: store.event(i).leaf for i in indexes[:20]}  # type: ignore[union-attr]
    samples = []
    for i in indexes:
        t = time.perf_counter()
        proof = store.inclusion_proof(i)
        samples.append(time.perf_counter() - t)
        if i in leaves and not verify_inclusion(leaves[i], i, n, proof, root):
            raise AssertionError(f"the store's inclusion proof for entry {i} does not verify")
    return samples, len(leaves)


def _verify_passes(store: SQLiteStore, signer: Signer, *, projections: bool) -> dict[str, float]:
    """The verify passes timed one by one (the same functions ``verify`` runs).

    ``projections`` times the projection passes too (derive, read, compare); at full
    size those are most of the run again, so ``make bench`` leaves them to ``--quick``.
    """
    faults = Faults()
    out: dict[str, float] = {}
    t = time.perf_counter()
    scan = scan_events(store, faults, lambda done: None)
    out["entries_s"] = time.perf_counter() - t
    t = time.perf_counter()
    scan.tree()
    out["recompute_tree_s"] = time.perf_counter() - t
    t = time.perf_counter()
    opened = read_checkpoints(
        store, scan, faults, verifier=signer.verifier, origin=store.origin, created_at=None
    )
    out["open_checkpoints_s"] = time.perf_counter() - t
    t = time.perf_counter()
    check_tree(store, scan, faults)
    out["stored_nodes_s"] = time.perf_counter() - t
    t = time.perf_counter()
    steps = store.query("SELECT version, name, applied_at FROM migrations ORDER BY version")
    judge_checkpoints(scan, faults, opened, origin=store.origin, migrations=steps)
    out["judge_checkpoints_s"] = time.perf_counter() - t
    del scan
    if faults.total:
        raise AssertionError(f"verify found faults in a clean store: {faults.items[:3]}")
    if not projections:
        return {k: round(v, 2) for k, v in out.items()}
    t = time.perf_counter()
    derived = store.derive_projections()
    out["derive_projections_s"] = time.perf_counter() - t
    t = time.perf_counter()
    stored = {table: store.table_rows(table) for table in derived}
    out["table_rows_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if any(stored[table] != rows for table, rows in derived.items()):
        raise AssertionError("the freshly appended store's projections differ from the log")
    out["compare_s"] = time.perf_counter() - t
    return {k: round(v, 2) for k, v in out.items()}


def run(quick: bool) -> list[Result]:
    """Benchmark rows for tamper evidence (100k events quick, 1M full)."""
    n = 100_000 if quick else 1_000_000
    rows: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dt-bench-verify-") as folder:
        tmp = Path(folder)
        signer = Signer.generate("bench")
        store = SQLiteStore(tmp / "trail.db", create=True, signer=signer)
        try:
            body_bytes = len(encode_event(_batch(1, now_ts())[0]))
            rate, split = _fill(store, n)
            bare = _bare_sqlite(tmp, min(n, 200_000))
            rows.append(
                Result(
                    name=f"store append, {n:,} events of {body_bytes} B in batches of {BATCH:,}",
                    ours=rate,
                    unit="leaves/s",
                    target=STORE_APPEND,
                    ok=True,
                    baseline=bare,
                    baseline_name="bare SQLite insert of the event rows",
                    ratio=rate / bare,
                    note="extra: seconds per SQL statement, COMMIT, and the Python between",
                    extra=split,
                )
            )
            samples, checked = _proofs(store, n)
            p50 = percentile(samples, 50) * 1e3
            rows.append(
                Result(
                    name=f"store inclusion proof p50, {PROOFS:,} random entries of {n:,}",
                    ours=p50,
                    unit="ms",
                    target=f"≤ {PROOF_TARGET_MS:g} ms",
                    ok=p50 <= PROOF_TARGET_MS,
                    note=f"{checked} proofs checked against the root",
                    extra={"p99_ms": round(percentile(samples, 99) * 1e3, 3)},
                )
            )
            store.close()
            store = SQLiteStore(tmp / "trail.db")
            gc.collect()
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t = time.perf_counter()
            report = verify(store, verifier=signer.verifier)
            seconds = time.perf_counter() - t
            rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
            if not report.ok:
                raise AssertionError(f"verify failed a clean store: {report.first_fault}")
            passes = _verify_passes(store, signer, projections=quick)
            rows.append(
                Result(
                    name=f"full verify of {n:,} events",
                    ours=seconds,
                    unit="s",
                    target=f"≤ {VERIFY_TARGET_S:g} s at 1M",
                    ok=seconds <= VERIFY_TARGET_S * (n / 1_000_000),
                    note="extra: each pass timed again on its own; peak RSS growth in MB",
                    extra={**passes, "peak_rss_growth_mb": round(rss_growth)},
                )
            )
        finally:
            store.close()
    return rows
