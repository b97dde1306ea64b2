"""Data out: the event log and the projection tables as JSON lines or Parquet.

The ``events`` table exports one object per log entry: its index, id, kind,
time, leaf hash (hex), the event itself (``null`` once erased) and the index
of the erasure receipt. Projection tables export their rows by column name,
with JSON columns (params, schema, data, ...) decoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from datatrail.errors import ConfigError, UsageError
from datatrail.model import from_json
from datatrail.store import PROJECTION_TABLES, Store
from datatrail.store._schema import MIGRATIONS

__all__ = ["EXPORT_TABLES", "export_jsonl", "export_parquet", "table_columns", "table_rows"]

EXPORT_TABLES: tuple[str, ...] = ("events", *PROJECTION_TABLES)
"""What ``export --format jsonl|parquet --table`` can name."""

_JSON_COLUMNS = {
    ("runs", "params"),
    ("runs", "actor"),
    ("runs", "error"),
    ("artifacts", "schema"),
    ("artifacts", "stats"),
    ("code_versions", "body"),
    ("environments", "body"),
    ("records", "data"),
    ("records", "actor"),
}
_CREATE = re.compile(r"CREATE TABLE (\w+) \((.*)\)\s*$", re.DOTALL)


def table_columns(table: str) -> list[str]:
    """The column names of a projection table, in order, from the schema's migrations."""
    for migration in MIGRATIONS:
        for statement in migration.statements:
            match = _CREATE.match(statement.strip())
            if match and match.group(1) == table:
                columns = []
                for part in match.group(2).split(","):
                    word = part.strip().split(" ")[0]
                    if word.upper() != "PRIMARY" and re.fullmatch(r"[a-z_]+", word):
                        columns.append(word)
                return columns
    raise UsageError(f"unknown table {table!r}; export one of: {', '.join(EXPORT_TABLES)}")


def _check(table: str) -> None:
    if table not in EXPORT_TABLES:
        raise UsageError(f"unknown table {table!r}; export one of: {', '.join(EXPORT_TABLES)}")


def table_rows(store: Store, table: str, *, since: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of ``events`` or a projection table as dicts (``since`` filters by time where rows have one)."""
    _check(table)
    if table == "events":
        for stored in store.events():
            if since and stored.ts < since:
                continue
            yield {
                "index": stored.index,
                "id": stored.id,
                "kind": stored.kind,
                "ts": stored.ts,
                "leaf": stored.leaf.hex(),
                "event": from_json(stored.body) if stored.body is not None else None,
                "erased_by": stored.erased_by,
            }
        return
    columns = table_columns(table)
    json_cols = {c for c in columns if (table, c) in _JSON_COLUMNS}
    time_col = next((c for c in ("ts", "started_at", "first_ts") if c in columns), None)
    sql = f"SELECT {', '.join(columns)} FROM {table}"
    params: tuple[Any, ...] = ()
    if since and time_col:
        sql += f" WHERE {time_col} >= ?"
        params = (since,)
    for row in store.query(sql, params):
        item = dict(zip(columns, row, strict=True))
        for col in json_cols:
            if item[col] is not None:
                item[col] = from_json(item[col])
        yield item


def export_jsonl(
    store: Store, out: IO[str], *, table: str = "events", since: str | None = None
) -> int:
    """Write a table as JSON lines to ``out``; returns the rows written."""
    count = 0
    for row in table_rows(store, table, since=since):
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n")
        count += 1
    return count


def export_parquet(
    store: Store, path: str | Path, *, table: str = "events", since: str | None = None
) -> int:
    """Write a table as one Parquet file (needs pyarrow: the ``arrow`` extra); returns the rows.

    Nested values (the event, JSON columns) are written as JSON text columns, so the
    file's schema is flat and stable whatever the events hold.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "Parquet export needs pyarrow: pip install 'datatrail[arrow]' (or use --format jsonl)"
        ) from None
    rows = list(table_rows(store, table, since=since))
    columns = (
        ["index", "id", "kind", "ts", "leaf", "event", "erased_by"]
        if table == "events"
        else table_columns(table)
    )
    data: dict[str, list[Any]] = {c: [] for c in columns}
    nested = {"event"} | {c for c in columns if (table, c) in _JSON_COLUMNS}
    for row in rows:
        for c in columns:
            value = row[c]
            if c in nested and value is not None:
                value = json.dumps(value, ensure_ascii=False, sort_keys=True)
            data[c].append(value)
    arrays = {}
    for c in columns:
        values = data[c]
        if c in nested:
            arrays[c] = pa.array(values, type=pa.string())
        else:
            arrays[c] = pa.array(values)
    pq.write_table(pa.table(arrays), str(path))
    return len(rows)
