"""Verifying everything around the log: the schema, ``meta``, ``migrations`` and projections.

The reference schema is built once in a scratch SQLite database from the
store's own migrations, in the store's own SQLite dialect, so it cannot drift
from what the store creates.
Projections are derived again from the log by the store and compared with
the stored tables row by row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from datatrail.audit._collect import TS_FORMAT, Faults, norm, short
from datatrail.errors import DatatrailError
from datatrail.model import is_uuid7
from datatrail.store import LOG_TABLES, PROJECTION_TABLES, SQLiteStore, Store
from datatrail.store._schema import MIGRATIONS, sqlite_sql

__all__ = ["check_meta", "check_migrations", "check_projections", "check_schema"]

META_KEYS = ("format", "origin", "store_id")
"""The keys a store's ``meta`` table holds."""
OPTIONAL_META_KEYS = ("tree_stride",)
"""Keys a store may hold: ``tree_stride`` in stores that keep every second tree level.

Without it the store keeps every level, so deleting or changing it makes the tree
check expect other rows than the stored ones, and that check names them."""

# The migrations table is created by the backend, not by a migration.
_MIGRATIONS_COLUMNS = (
    ("version", "INTEGER", 0, 1),
    ("name", "TEXT", 1, 0),
    ("applied_at", "TEXT", 1, 0),
)
_INDEX_COLUMNS = ("idx", "first_idx", "receipt_idx", "start_idx", "end_idx", "target_idx")
# Columns of a run written by its run_finished event rather than its run_started.
_RUN_END_COLUMNS = frozenset({"status", "ended_at", "error", "end_idx"})


@dataclass(frozen=True)
class _Reference:
    objects: dict[tuple[str, str], str]
    """(type, name) -> normalised CREATE statement."""
    columns: dict[str, tuple[tuple[str, str, int, int], ...]]
    """table -> (name, declared type, not null, pk position) per column."""


def _squash(sql: str) -> str:
    return " ".join(sql.split())


def _columns(conn: sqlite3.Connection | Store, table: str) -> tuple[tuple[str, str, int, int], ...]:
    sql = 'SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid'
    rows = (
        conn.execute(sql, (table,)).fetchall()
        if isinstance(conn, sqlite3.Connection)
        else conn.query(sql, (table,))
    )
    return tuple((str(n), str(t), int(nn), int(pk)) for n, t, nn, pk in rows)


@cache
def _reference() -> _Reference:
    conn = sqlite3.connect(":memory:")
    try:
        for migration in MIGRATIONS:
            for statement in migration.statements:
                conn.execute(sqlite_sql(statement))
        objects = {
            (str(t), str(n)): _squash(str(s))
            for t, n, s in conn.execute("SELECT type, name, sql FROM sqlite_master")
            if not str(n).startswith("sqlite_")
        }
        tables = [n for t, n in objects if t == "table"]
        columns = {t: _columns(conn, t) for t in tables}
    finally:
        conn.close()
    columns["migrations"] = _MIGRATIONS_COLUMNS
    return _Reference(objects=objects, columns=columns)


def check_schema(store: Store, faults: Faults) -> set[str]:
    """Compare the store's tables (and, for SQLite, every index, trigger and view) with the schema.

    Returns the expected tables that are present, so later checks skip missing ones.
    """
    expected = set(LOG_TABLES) | set(PROJECTION_TABLES)
    if isinstance(store, SQLiteStore):
        found = store.query("SELECT type, name, sql FROM sqlite_master")
        present = {str(n) for t, n, _ in found if t == "table"}
        ref = _reference()
        for kind, name, sql in sorted(found, key=lambda r: (str(r[0]), str(r[1]))):
            name = str(name)
            if name.startswith("sqlite_"):
                continue
            if kind == "table" and name not in expected:
                faults.add(
                    "unknown_table", None, name, f"table {name} is not part of a datatrail store"
                )
            elif name == "migrations":
                if _columns(store, name) != _MIGRATIONS_COLUMNS:
                    faults.add(
                        "schema_changed", None, name, "the migrations table's columns changed"
                    )
            elif (kind, name) not in ref.objects:
                faults.add(
                    "schema_changed",
                    None,
                    str(name),
                    f"{kind} {name} is not part of the datatrail schema",
                )
            elif _squash(str(sql)) != ref.objects[(kind, name)]:
                faults.add(
                    "schema_changed", None, name, f"{kind} {name} differs from the datatrail schema"
                )
        names = {str(n) for _, n, _ in found}
        for kind, name in sorted(ref.objects):
            if kind != "table" and name not in names:
                faults.add("schema_changed", None, name, f"{kind} {name} is missing")
    else:
        lister: Callable[[], list[str]] | None = getattr(store, "tables", None)
        present = set(lister()) if lister is not None else set(expected)
        for name in sorted(present - expected):
            faults.add(
                "unknown_table", None, name, f"table {name} is not part of a datatrail store"
            )
    for name in sorted(expected - present):
        faults.add("missing_table", None, name, f"table {name} is missing from the store")
    return present & expected


def check_meta(store: Store, faults: Faults) -> str:
    """Check ``meta`` holds exactly format, store_id, origin (and perhaps tree_stride), consistently.

    Returns the origin.
    """
    rows = store.query("SELECT key, value FROM meta")
    meta: dict[Any, Any] = {}
    for key, value in rows:
        if key in meta:
            faults.add("meta_changed", None, "meta", f"meta key {short(key)} appears twice")
        meta[key] = value
    for key in sorted(set(meta) - set(META_KEYS) - set(OPTIONAL_META_KEYS), key=str):
        faults.add("meta_changed", None, "meta", f"meta has an unexpected key {short(key)}")
    for key in META_KEYS:
        if key not in meta:
            faults.add("meta_changed", None, "meta", f"meta has no {key}")
    if "format" in meta and meta["format"] != "datatrail":
        faults.add(
            "meta_changed", None, "meta", f"meta format is {short(meta['format'])}, not 'datatrail'"
        )
    store_id = meta.get("store_id")
    if store_id is not None and not (isinstance(store_id, str) and is_uuid7(store_id)):
        faults.add("meta_changed", None, "meta", f"meta store_id {short(store_id)} is not a UUIDv7")
    origin = meta.get("origin")
    if store_id is not None and origin != f"datatrail/{store_id}":
        faults.add(
            "meta_changed",
            None,
            "meta",
            f"meta origin {short(origin)} does not name store {short(store_id)}",
        )
    return origin if isinstance(origin, str) else ""


def check_migrations(store: Store, faults: Faults) -> tuple[str | None, list[tuple[Any, ...]]]:
    """Check ``migrations`` records exactly this schema's steps, in time order.

    Returns when the store was created (the first step's time, if well formed)
    and the rows by version, which the checkpoints' binding lines commit to.
    """
    rows = store.query("SELECT version, name, applied_at FROM migrations ORDER BY version")
    want = [(m.version, m.name) for m in MIGRATIONS]
    got = [(v, n) for v, n, _ in rows]
    if got != want:
        faults.add(
            "migrations_changed",
            None,
            "migrations",
            f"migrations record {short(got, 120)}, the schema defines {short(want, 120)}",
        )
    last = None
    for version, _, applied_at in rows:
        if not isinstance(applied_at, str) or not TS_FORMAT.fullmatch(applied_at):
            faults.add(
                "migrations_changed",
                None,
                "migrations",
                f"migration {short(version)} has a malformed time {short(applied_at)}",
            )
        elif last is not None and applied_at < last:
            faults.add(
                "migrations_changed",
                None,
                "migrations",
                f"migration {short(version)} was applied at {applied_at}, before the one before it",
            )
        else:
            last = applied_at
    first = rows[0][2] if rows else None
    created = first if isinstance(first, str) and TS_FORMAT.fullmatch(first) else None
    return created, [tuple(r) for r in rows]


# -- projections --------------------------------------------------------------------------


def check_projections(
    store: Store,
    faults: Faults,
    *,
    size: int,
    present: set[str],
    progress: Callable[[int, int], None] | None,
) -> None:
    """Derive every projection again from the log and compare it with the stored table."""
    try:
        derived = store.derive_projections(progress)
    except (DatatrailError, sqlite3.Error, ValueError, TypeError) as exc:
        faults.add(
            "projection_mismatch",
            None,
            "*",
            f"the projections cannot be derived again from the log ({exc}); fix the log faults first",
        )
        return
    ref = _reference()
    for table in PROJECTION_TABLES:
        if table not in present:
            continue
        stored = store.table_rows(table)
        expected = derived.get(table, [])
        if stored == expected:
            continue
        _diff(faults, table, ref.columns[table], expected, stored, size)


def _diff(
    faults: Faults,
    table: str,
    columns: Sequence[tuple[str, str, int, int]],
    expected: list[tuple[Any, ...]],
    stored: list[tuple[Any, ...]],
    size: int,
) -> None:
    names = [c[0] for c in columns]
    pk = [i for _, i in sorted((c[3], i) for i, c in enumerate(columns) if c[3])] or list(
        range(len(columns))
    )
    want = {tuple(row[i] for i in pk): row for row in expected}
    have: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    found: list[tuple[int | None, str]] = []
    for raw in stored:
        row = tuple(norm(v) for v in raw)
        key = tuple(row[i] for i in pk) if len(row) == len(names) else (object(),)
        if key in have:
            found.append((_row_index(names, row, None, size), f"a repeated row {short(row, 100)}"))
            continue
        have[key] = row
        ref_row = want.get(key)
        if ref_row is None:
            found.append(
                (_row_index(names, row, None, size), f"an unexpected row {short(row, 100)}")
            )
        elif not _same(ref_row, row):
            col = next(
                i
                for i, (a, b) in enumerate(zip(ref_row, row, strict=True))
                if not _same((a,), (b,))
            )
            found.append(
                (
                    _row_index(names, ref_row, names[col], size, stored=row),
                    f"row {short(key, 80)} has {names[col]} = {short(row[col])} "
                    f"where the log gives {short(ref_row[col])}",
                )
            )
    for key, ref_row in want.items():
        if key not in have:
            found.append(
                (_row_index(names, ref_row, None, size), f"row {short(key, 80)} is missing")
            )
    if not found:  # the same rows in another order (a backend's collation): nothing changed
        return
    index, what = min(found, key=lambda f: (f[0] is None, f[0] or 0))
    faults.add(
        "projection_mismatch",
        index,
        table,
        f"{table}: {len(found)} row(s) differ from the log; "
        + (f"first, derived from entry {index}: " if index is not None else "first: ")
        + what,
    )


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Equal values of equal types (``1 == 1.0 == True`` in Python, not in a table)."""
    return len(a) == len(b) and all(
        x == y and type(x) is type(y) for x, y in zip(a, b, strict=True)
    )


def _row_index(
    names: list[str],
    row: Sequence[Any],
    column: str | None,
    size: int,
    stored: Sequence[Any] = (),
) -> int | None:
    """The log index a projection row derives from (for a run's end columns: its end event)."""
    if len(row) != len(names):
        return None
    values = dict(zip(names, row, strict=True))
    order: Sequence[str] = _INDEX_COLUMNS
    if "end_idx" in values and column in _RUN_END_COLUMNS:
        if values["end_idx"] is None and len(stored) == len(names):
            # The log lost the end event the stored row still shows: point at that entry.
            values = dict(zip(names, stored, strict=True))
        order = ("end_idx", *_INDEX_COLUMNS)
    for name in order:
        value = values.get(name)
        if type(value) is int and 0 <= value < size:
            return value
    return None
