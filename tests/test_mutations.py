"""Tampering with any table of a real store is detected by ``verify``, which points at it.

One small trail is recorded through the public API (tracked functions, a run
with file inputs and outputs, an erasure), then every table of the store file
is mutated on a fresh copy: every column of a few rows changed plausibly,
every row deleted, a row inserted; plus swapped bodies, swapped rows, a
truncated log, re-signed and forked checkpoints. Each mutation must be
detected, and where a log entry is to blame the report must name it.

No cell is exempt: checkpoint times, the set of checkpoints and the migration
times are bound by the binding lines of the signed notes, and an erased
entry's kind and time by its erasure receipt.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import datatrail
import datatrail.capture
from datatrail.audit import VerifyReport, erase, verify
from datatrail.errors import DatatrailError
from datatrail.ledger import (
    Checkpoint,
    Signer,
    Verifier,
    append_nodes,
    load_signer,
    load_verifier,
    sign_checkpoint,
)
from datatrail.model import RunFinished, encode_event, now_ts, uuid7
from datatrail.store import PROJECTION_TABLES, SQLiteStore

INDEX_COLUMNS = ("idx", "first_idx", "receipt_idx", "start_idx", "end_idx", "target_idx")


@dataclass
class Trail:
    db: Path
    verifier: Verifier
    signer: Signer
    size: int
    origin: str
    checkpoint_sizes: list[int]
    erased_index: int
    receipt_index: int


@dataclass
class Mutation:
    name: str
    apply: Callable[[sqlite3.Connection], None]
    expect_index: set[int] | None = None
    """Acceptable first-fault indexes; None when no log entry is to blame."""
    expect_kinds: set[str] = field(default_factory=set)
    """If given, one of the report's faults must be of one of these kinds."""


# -- the trail ---------------------------------------------------------------------------


def _record(tmp: Path) -> Trail:
    home = tmp / ".datatrail"
    datatrail.configure(home=home)
    data = tmp / "data"
    data.mkdir()
    raw = data / "orders.csv"
    raw.write_text("id,amount\n1,10\n2,20\n3,30\n")

    @datatrail.track
    def clean(path: Path) -> bytes:
        return path.read_bytes().replace(b"\n\n", b"\n")

    @datatrail.track
    def total(table: bytes) -> int:
        return sum(int(line.split(b",")[1]) for line in table.splitlines()[1:])

    try:
        for day in ("2026-11-19", "2026-11-20"):
            with datatrail.run(
                "nightly-orders", params={"day": day, "owner": "ana@example.com"}
            ) as r:
                r.input(raw)
                cleaned = clean(raw)
                out = data / f"clean-{day}.csv"
                out.write_bytes(cleaned)
                r.output(out)
                total(cleaned)
                datatrail.capture.emit_record(
                    "contract.check", subject=f"run:{r.run_id}", data={"day": day, "passed": True}
                )
            datatrail.flush()
    finally:
        datatrail.capture.shutdown()
    signer = load_signer(home / "signing.key")
    store = SQLiteStore(home / "trail.db", signer=signer)
    try:
        started = store.query("SELECT idx FROM events WHERE kind = 'run_started' ORDER BY idx")
        target = int(started[0][0])
        receipt = erase(store, target, reason="owner asked to be forgotten").receipt_index
    finally:
        store.close()
    try:
        with datatrail.run("weekly-report", params={"week": 47}) as r:
            r.output(data / "clean-2026-11-20.csv")
        datatrail.flush()
    finally:
        datatrail.capture.shutdown()
        datatrail.configure(home=None)
    store = SQLiteStore(home / "trail.db")
    try:
        sizes = [c.size for c in store.checkpoints()]
        trail = Trail(
            db=home / "trail.db",
            verifier=load_verifier(home / "verifier.key"),
            signer=signer,
            size=store.size(),
            origin=store.meta()["origin"],
            checkpoint_sizes=sizes,
            erased_index=target,
            receipt_index=receipt,
        )
    finally:
        store.close()
    assert not Path(f"{trail.db}-wal").exists() or Path(f"{trail.db}-wal").stat().st_size == 0
    return trail


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Trail:
    return _record(tmp_path_factory.mktemp("mutations"))


def _rows(trail: Trail, table: str) -> tuple[list[str], list[dict[str, Any]]]:
    conn = sqlite3.connect(trail.db)
    try:
        cur = conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid")
        names = [d[0] for d in cur.description][1:]
        rows = [dict(zip(["rowid", *names], r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()
    return names, rows


def _tables(trail: Trail) -> list[str]:
    conn = sqlite3.connect(trail.db)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
    finally:
        conn.close()


# -- running a mutation ----------------------------------------------------------------------


@dataclass
class Outcome:
    detected: bool
    report: VerifyReport | None
    refused: str | None = None


def _run(trail: Trail, work: Path, mutation: Mutation) -> Outcome:
    db = work / "trail.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(trail.db, db)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        mutation.apply(conn)
    finally:
        conn.close()
    try:
        store = SQLiteStore(db)
    except DatatrailError as exc:
        # The store refuses to open it: `datatrail verify` exits 2 saying why.
        return Outcome(detected=True, report=None, refused=f"{type(exc).__name__}: {exc}")
    except KeyError as exc:
        # A store gap (meta without origin); the CLI reports it as a StoreError.
        return Outcome(detected=True, report=None, refused=f"KeyError: {exc}")
    try:
        report = verify(store, verifier=trail.verifier)
    finally:
        store.close()
    return Outcome(detected=not report.ok, report=report)


def _check(trail: Trail, work: Path, mutations: list[Mutation]) -> tuple[int, list[str]]:
    problems: list[str] = []
    detected = 0
    for m in mutations:
        outcome = _run(trail, work, m)
        if not outcome.detected:
            problems.append(f"NOT DETECTED: {m.name}")
            continue
        detected += 1
        report = outcome.report
        if report is None:
            continue
        first = report.first_fault
        assert first is not None
        if m.expect_index is not None and first.index not in m.expect_index:
            problems.append(
                f"WRONG INDEX: {m.name}: first fault {first.kind} at {first.index}, "
                f"expected one of {sorted(m.expect_index)} ({first.detail})"
            )
        if m.expect_kinds and not m.expect_kinds & {f.kind for f in report.faults}:
            problems.append(
                f"WRONG KIND: {m.name}: {[f.kind for f in report.faults]}, "
                f"expected one of {sorted(m.expect_kinds)}"
            )
    return detected, problems


# -- building the mutations ------------------------------------------------------------------


def _changed(value: Any, declared: str) -> list[Any]:
    """Plausible replacements for a cell, in the order to try them (a key may collide)."""
    if value is None:
        if "INT" in declared:
            return [0, 1, 10_000]
        if declared == "BLOB":
            return [bytes(32)]
        return ["x"]
    if isinstance(value, int):
        return [value + 1, value + 10_000, -1 - value]
    if isinstance(value, bytes):
        return [value[:-1] + bytes([value[-1] ^ 1])] if value else [b"\x00"]
    # The last digit if there is one (a time stays a valid time, JSON stays JSON), else the
    # last letter: the change a forger would make, not one that breaks the format.
    text = str(value)
    for wanted in (str.isdigit, str.isalpha):
        for i in range(len(text) - 1, -1, -1):
            c = text[i]
            if wanted(c):
                swap = {"9": "8", "z": "y", "Z": "Y"}.get(c, chr(ord(c) + 1))
                return [text[:i] + swap + text[i + 1 :], text + "x"]
    return [text + "x"]


def _set_cell(
    table: str, column: str, rowid: int, candidates: list[Any]
) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        for value in candidates:
            try:
                conn.execute(f'UPDATE {table} SET "{column}" = ? WHERE rowid = ?', (value, rowid))
                return
            except sqlite3.IntegrityError:
                continue
        raise AssertionError(f"no replacement for {table}.{column} fits the table")

    return apply


def _sql(*statements: str, params: tuple[Any, ...] = ()) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement, params if "?" in statement else ())

    return apply


def _row_indexes(table: str, row: dict[str, Any], trail: Trail) -> set[int] | None:
    if table == "events":
        return {row["idx"]}
    if table == "tree_nodes":
        return {row["idx"] << row["level"]}
    if table in PROJECTION_TABLES:
        found = {row[c] for c in INDEX_COLUMNS if isinstance(row.get(c), int)}
        return found or None
    return None


def _declared(trail: Trail, table: str) -> dict[str, str]:
    conn = sqlite3.connect(trail.db)
    try:
        return {r[1]: str(r[2]).upper() for r in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()


def _bound_by(trail: Trail, table: str, column: str | None, row: dict[str, Any]) -> set[str]:
    """The fault kinds that bind cells no derivation reaches: signed binding lines and receipts."""
    if (table, column) == ("checkpoints", "ts"):
        return {"checkpoint_row_mismatch"}  # the note's time line
    if (table, column) == ("migrations", "applied_at"):
        return {"migrations_changed"}  # the note's migrations commitment
    if table == "events" and row["body"] is None and column in ("kind", "ts"):
        return {"erasure_receipt_mismatch"}  # the receipt names the erased entry's kind and ts
    if (table, column) == ("checkpoints", None) and row["size"] != max(trail.checkpoint_sizes):
        return {"checkpoint_chain"}  # the next note names this one as its predecessor
    return set()


def _table_mutations(trail: Trail) -> list[Mutation]:
    mutations: list[Mutation] = []
    for table in _tables(trail):
        names, rows = _rows(trail, table)
        declared = _declared(trail, table)
        picks = {0, len(rows) // 2, len(rows) - 1} if rows else set()
        if table == "events":  # every entry kind, the erased entry and its receipt
            picks |= {
                i
                for i, r in enumerate(rows)
                if r["idx"] in (trail.erased_index, trail.receipt_index)
            }
            picks |= {
                next(i for i, r in enumerate(rows) if r["kind"] == k)
                for k in {r["kind"] for r in rows}
            }
        for i in sorted(picks):
            row = rows[i]
            for column in names:
                candidates = _changed(row[column], declared[column])
                if table == "events" and column == "kind" and row["body"] is None:
                    candidates = ["io" if row["kind"] != "io" else "run_started"]  # still a kind
                mutations.append(
                    Mutation(
                        name=f"change {table}.{column} of row {row.get('idx', row['rowid'])}",
                        apply=_set_cell(table, column, row["rowid"], candidates),
                        expect_index=_row_indexes(table, row, trail),
                        expect_kinds=_bound_by(trail, table, column, row),
                    )
                )
        mutations.extend(
            Mutation(
                name=f"delete {table} row {row.get('idx', row['rowid'])}",
                apply=_sql(f"DELETE FROM {table} WHERE rowid = {row['rowid']}"),
                expect_index=_row_indexes(table, row, trail),
                expect_kinds=_bound_by(trail, table, None, row),
            )
            for row in rows
        )
        mutations.append(_insert(trail, table, names, rows))
    return mutations


def _insert(trail: Trail, table: str, names: list[str], rows: list[dict[str, Any]]) -> Mutation:
    n = trail.size
    if table == "events":
        event = RunFinished(id=uuid7(), ts=now_ts(), run_id=uuid7(), status="completed")
        body = encode_event(event)
        leaf = hashlib.sha256(b"\x00" + body).digest()
        return Mutation(
            name="insert an event at the end of the log",
            apply=_sql(
                "INSERT INTO events (idx, id, kind, ts, body, leaf) VALUES (?, ?, ?, ?, ?, ?)",
                params=(n, event.id, "run_finished", event.ts, body, leaf),
            ),
            expect_index={n},
            expect_kinds={"checkpoint_missing_for_tail"},
        )
    if table == "checkpoints":
        forged = sign_checkpoint(
            Checkpoint(origin=trail.origin, size=n + 1, root=bytes(32)), trail.signer
        )
        return Mutation(
            name="insert a validly signed checkpoint beyond the log",
            apply=_sql(
                "INSERT INTO checkpoints (size, root, note, ts) VALUES (?, ?, ?, ?)",
                params=(n + 1, bytes(32), forged, now_ts()),
            ),
            expect_index={n},
            expect_kinds={"log_truncated"},
        )
    if table == "tree_nodes":
        return Mutation(
            name="insert a tree node beyond the tree",
            apply=_sql("INSERT INTO tree_nodes VALUES (1, ?, ?)", params=(n, bytes(32))),
            expect_kinds={"unexpected_row"},
        )
    if table == "meta":
        return Mutation(
            name="insert a meta key", apply=_sql("INSERT INTO meta VALUES ('owner', 'x')")
        )
    if table == "migrations":
        return Mutation(
            name="insert a migration",
            apply=_sql("INSERT INTO migrations VALUES (0, 'x', '2026-01-01T00:00:00.000000Z')"),
        )
    # A projection: a copy of an existing row under a new key.
    row = dict(rows[0])
    del row["rowid"]
    key = names[0]
    row[key] = row[key] + 100_000 if isinstance(row[key], int) else f"{row[key]}-copy"
    marks = ", ".join("?" * len(names))
    return Mutation(
        name=f"insert a row into {table}",
        apply=_sql(f"INSERT INTO {table} VALUES ({marks})", params=tuple(row[c] for c in names)),
        expect_kinds={"projection_mismatch"},
    )


def _log_mutations(trail: Trail) -> list[Mutation]:
    n = trail.size
    sizes = trail.checkpoint_sizes
    other = Signer.generate("impostor")

    def swap(columns: str, i: int, j: int) -> Callable[[sqlite3.Connection], None]:
        def apply(conn: sqlite3.Connection) -> None:
            a = conn.execute(f"SELECT {columns} FROM events WHERE idx = ?", (i,)).fetchone()
            b = conn.execute(f"SELECT {columns} FROM events WHERE idx = ?", (j,)).fetchone()
            sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
            conn.execute("BEGIN")
            conn.execute("UPDATE events SET id = id || '-' WHERE idx IN (?, ?)", (i, j))
            conn.execute(f"UPDATE events SET {sets} WHERE idx = ?", (*b, i))
            conn.execute(f"UPDATE events SET {sets} WHERE idx = ?", (*a, j))
            conn.execute("COMMIT")

        return apply

    def resign(
        size: int, signer: Signer, root: bytes | None
    ) -> Callable[[sqlite3.Connection], None]:
        def apply(conn: sqlite3.Connection) -> None:
            real = conn.execute("SELECT root FROM checkpoints WHERE size = ?", (size,)).fetchone()[
                0
            ]
            new_root = real if root is None else root
            note = sign_checkpoint(
                Checkpoint(origin=trail.origin, size=size, root=new_root), signer
            )
            conn.execute(
                "UPDATE checkpoints SET note = ?, root = ? WHERE size = ?", (note, new_root, size)
            )

        return apply

    cut = n - 3
    return [
        Mutation(
            name="swap the bodies of entries 3 and 9", apply=swap("body", 3, 9), expect_index={3}
        ),
        Mutation(
            name="swap whole entries 4 and 9 (reorder)",
            apply=swap("id, kind, ts, body, leaf", 4, 9),
            expect_index={4},
            expect_kinds={"tree_node_mismatch"},
        ),
        Mutation(
            name="swap whole entries 5 and 8 (reorder)",
            apply=swap("id, kind, ts, body, leaf", 5, 8),
            expect_index={4},  # the tree keeps every second level: the four [4, 8) holding entry 5
            expect_kinds={"tree_node_mismatch"},
        ),
        Mutation(
            name=f"truncate the log to {cut} entries, with their tree nodes",
            apply=_sql(
                f"DELETE FROM events WHERE idx >= {cut}",
                f"DELETE FROM tree_nodes WHERE ((idx + 1) << level) > {cut}",
            ),
            expect_index={cut},
            expect_kinds={"log_truncated"},
        ),
        Mutation(
            name="replace the latest checkpoint with one signed by another key",
            apply=resign(sizes[-1], other, None),
            expect_index={sizes[-2]},
            expect_kinds={"checkpoint_signature"},
        ),
        Mutation(
            name="fork an earlier checkpoint: a validly signed other root at its size",
            apply=resign(sizes[0], trail.signer, bytes(range(32))),
            expect_kinds={"checkpoint_inconsistent"},
        ),
        Mutation(
            name="fork the latest checkpoint: a validly signed other root at its size",
            apply=resign(sizes[-1], trail.signer, bytes(range(32))),
            expect_kinds={"checkpoint_root_mismatch"},
        ),
        Mutation(
            name="add a table",
            apply=_sql("CREATE TABLE notes (x TEXT)"),
            expect_kinds={"unknown_table"},
        ),
        Mutation(
            name="add a trigger",
            apply=_sql(
                "CREATE TRIGGER quiet AFTER INSERT ON events BEGIN DELETE FROM run_io WHERE 0; END"
            ),
            expect_kinds={"schema_changed"},
        ),
        Mutation(
            name="drop an index",
            apply=_sql("DROP INDEX runs_parent"),
            expect_kinds={"schema_changed"},
        ),
        Mutation(
            name="rewrite an entry with its leaf and tree recomputed (only the checkpoints know)",
            apply=_rewrite_entry(trail, 6),
            expect_index={max((s for s in sizes if s <= 6), default=0)},
            expect_kinds={"checkpoint_root_mismatch"},
        ),
    ]


def _rewrite_entry(trail: Trail, index: int) -> Callable[[sqlite3.Connection], None]:
    """A forger without the signing key: new body, new leaf, every tree node recomputed."""

    def apply(conn: sqlite3.Connection) -> None:
        event = RunFinished(id=uuid7(), ts=now_ts(), run_id=uuid7(), status="failed")
        body = encode_event(event)
        leaf = hashlib.sha256(b"\x00" + body).digest()
        conn.execute(
            "UPDATE events SET id = ?, kind = 'run_finished', ts = ?, body = ?, leaf = ? WHERE idx = ?",
            (event.id, event.ts, body, leaf, index),
        )
        leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf FROM events ORDER BY idx")]
        nodes, _ = append_nodes([], 0, leaves)
        conn.execute("DELETE FROM tree_nodes")
        conn.executemany("INSERT INTO tree_nodes VALUES (?, ?, ?)", nodes)

    return apply


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def test_every_mutation_of_every_table_is_detected_and_located(trail: Trail, work: Path) -> None:
    mutations = _table_mutations(trail) + _log_mutations(trail)
    tables = _tables(trail)
    assert {"events", "tree_nodes", "checkpoints", "meta", "migrations", *PROJECTION_TABLES} <= set(
        tables
    )
    detected, problems = _check(trail, work, mutations)
    print(f"mutations tried: {len(mutations)}, detected: {detected} (over {len(tables)} tables)")
    assert not problems, "\n".join(problems)
    assert detected == len(mutations)


def test_the_unmutated_copy_verifies(trail: Trail, work: Path) -> None:
    outcome = _run(trail, work, Mutation(name="nothing", apply=lambda conn: None))
    assert outcome.report is not None
    assert outcome.report.ok, outcome.report.faults
    assert [e.index for e in outcome.report.erased] == [trail.erased_index]
    assert outcome.report.unbound == []  # a trail recorded now binds everything it stores


def test_malformed_or_backward_times_are_faults_of_their_own(trail: Trail, work: Path) -> None:
    mutations = [
        Mutation(
            name="checkpoint time not a time",
            apply=_sql("UPDATE checkpoints SET ts = 'yesterday'"),
            expect_kinds={"checkpoint_order"},
        ),
        Mutation(
            name="checkpoint times going backwards",
            apply=_sql(
                f"UPDATE checkpoints SET ts = '2000-01-01T00:00:00.000000Z' WHERE size = {max(trail.checkpoint_sizes)}"
            ),
            expect_kinds={"checkpoint_order"},
        ),
        Mutation(
            name="migration time not a time",
            apply=_sql("UPDATE migrations SET applied_at = 'soon'"),
            expect_kinds={"migrations_changed"},
        ),
    ]
    detected, problems = _check(trail, work, mutations)
    assert not problems, "\n".join(problems)
    assert detected == len(mutations)
