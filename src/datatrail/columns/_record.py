"""Recording SQL column lineage: ``datatrail.sql(...)`` and tracked DB-API cursors.

A statement's lineage becomes one ``column_lineage`` record (subject: the
output dataset's node id) whose ``fields`` is exactly OpenLineage's
``columnLineage`` facet ``fields``, and the tables it reads and writes become
the run's inputs and outputs. SQL names tables; datatrail names datasets
(OpenLineage naming): a PostgreSQL connection gives ``postgres://host:port``
and ``db.schema.table``, a SQLite one ``sqlite`` and ``PATH:table``;
otherwise the names given in ``inputs``/``output`` are matched by suffix, and
the rest get ``namespace`` (default ``default``) and the name as written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from datatrail.columns._analyze import StatementLineage, analyze
from datatrail.columns._errors import SQLLineageError
from datatrail.errors import DatatrailError, UsageError
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    Event,
    IORecorded,
    JobRef,
    format_ts,
    parse_node_id,
    uuid7,
)

__all__ = ["TOPIC", "ColumnLineage", "TrackedCursor", "sql", "tracked_cursor"]

log = logging.getLogger("datatrail")

TOPIC = "column_lineage"
"""The record topic of a statement's column lineage."""


class ColumnLineage(msgspec.Struct, frozen=True, kw_only=True):
    """The column lineage of one statement, with datasets named as datatrail names them."""

    output: str | None
    """The output dataset's node id (None for a plain SELECT read by the program)."""
    inputs: list[str]
    """Node ids of the datasets read."""
    fields: dict[str, Any]
    """OpenLineage ``columnLineage.fields``: output column → ``{"inputFields": [...]}``."""
    sql: str
    dialect: str | None = None
    kind: str = "select"

    def facet(self) -> dict[str, Any]:
        """The OpenLineage ``columnLineage`` dataset facet body (``{"fields": ...}``)."""
        return {"fields": self.fields}

    def record_data(self, run_id: str | None) -> dict[str, Any]:
        """The ``data`` of the ``column_lineage`` record."""
        return {
            "fields": self.fields,
            "sql": self.sql,
            "dialect": self.dialect,
            "output": self.output,
            "inputs": self.inputs,
            "run_id": run_id,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


# -- dataset naming ----------------------------------------------------------------


def _as_dataset(value: DatasetRef | str, naming: _Naming) -> DatasetRef:
    if isinstance(value, DatasetRef):
        return value
    if not isinstance(value, str) or not value:
        raise UsageError(
            f"a dataset is a datatrail.DatasetRef, a node id (dataset:NS:NAME) or a table name, "
            f"not {value!r}"
        )
    if value.startswith("dataset:"):
        node = parse_node_id(value)
        return DatasetRef(namespace=node.namespace or "", name=node.name or "")
    return naming.default(value)


class _Naming:
    def __init__(
        self,
        *,
        namespace: str,
        database: str | None = None,
        default_schema: str | None = None,
        separator: str = ".",
    ) -> None:
        self.namespace = namespace
        self.database = database
        self.default_schema = default_schema
        self.separator = separator
        self.hints: list[DatasetRef] = []

    def default(self, table: str) -> DatasetRef:
        parts = table.split(".")
        if self.database is not None and self.separator != ".":
            return DatasetRef(
                namespace=self.namespace, name=f"{self.database}{self.separator}{table}"
            )
        if self.database is not None and len(parts) == 1 and self.default_schema:
            name = f"{self.database}.{self.default_schema}.{table}"
        elif self.database is not None and len(parts) == 2:
            name = f"{self.database}.{table}"
        else:
            name = table
        return DatasetRef(namespace=self.namespace, name=name)

    def resolve(self, table: str) -> DatasetRef:
        low = table.lower()
        for hint in self.hints:
            name = hint.name.lower()
            if name == low or name.endswith("." + low) or low.endswith("." + name):
                return hint
        return self.default(table)


def _facet_fields(lineage: StatementLineage, naming: _Naming) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, contrib in lineage.fields.items():
        entries = []
        for (table, name), transforms in contrib.items():
            ds = naming.resolve(table)
            entries.append(
                {
                    "namespace": ds.namespace,
                    "name": ds.name,
                    "field": name,
                    "transformations": [
                        t.to_dict()
                        for t in sorted(
                            transforms, key=lambda t: (t.type, t.subtype, t.description)
                        )
                    ],
                }
            )
        entries.sort(key=lambda e: (e["namespace"], e["name"], e["field"]))
        fields[column] = {"inputFields": entries}
    return fields


def _lineage(
    query: str,
    *,
    dialect: str | None,
    inputs: Iterable[DatasetRef | str],
    output: DatasetRef | str | None,
    schema: Mapping[str, Any] | None,
    naming: _Naming,
) -> tuple[ColumnLineage, list[DatasetRef], DatasetRef | None]:
    naming.hints = [_as_dataset(i, naming) for i in inputs]
    parsed = analyze(query, dialect=dialect, schema=schema)
    out_ds: DatasetRef | None = None
    if output is not None:
        out_ds = _as_dataset(output, naming)
    elif parsed.target is not None:
        out_ds = naming.resolve(parsed.target)
    if out_ds is not None:
        naming.hints.append(out_ds)
    read = [naming.resolve(t) for t in parsed.inputs]
    given = naming.hints[:-1] if out_ds is not None else naming.hints
    read.extend(hint for hint in given if hint not in read)
    result = ColumnLineage(
        output=out_ds.node_id() if out_ds is not None else None,
        inputs=[d.node_id() for d in read],
        fields=_facet_fields(parsed, naming) if out_ds is not None else {},
        sql=query,
        dialect=dialect,
        kind=parsed.kind,
    )
    return result, read, out_ds


# -- recording ---------------------------------------------------------------------


def _build_dataset_io(
    run_id: str, job: JobRef, ts_ns: int, items: list[tuple[str, str, DatasetRef]]
) -> Iterable[Event]:
    ts = format_ts(ts_ns)
    return [
        IORecorded(
            id=uuid7(),
            ts=ts,
            run_id=run_id,
            role="input" if role == "input" else "output",
            # A table's content is not read: the version is known by identity only.
            artifact=ArtifactInfo(id="uuid:" + uuid7(), kind="table"),
            dataset=ds,
            label=label,
            job=job,
        )
        for role, label, ds in items
    ]


def _record(lineage: ColumnLineage, read: list[DatasetRef], written: DatasetRef | None) -> None:
    import datatrail
    from datatrail.capture import current_run, emit_record
    from datatrail.capture._state import get_writer

    handle = current_run()
    if handle is None:
        job = "sql:" + (written.name if written is not None else "select")
        with datatrail.run(job):
            _record(lineage, read, written)
        return
    if not handle._recording:
        return
    items = [("input", "sql:" + ds.name, ds) for ds in read]
    if written is not None:
        items.append(("output", "sql:" + written.name, written))
    get_writer().submit((_build_dataset_io, (handle.run_id, handle.job, time.time_ns(), items)))
    if lineage.output is not None:
        emit_record(TOPIC, subject=lineage.output, data=lineage.record_data(handle.run_id))


def sql(
    query: str,
    *,
    dialect: str | None = None,
    inputs: Sequence[DatasetRef | str] = (),
    output: DatasetRef | str | None = None,
    schema: Mapping[str, Any] | None = None,
    namespace: str = "default",
    database: str | None = None,
    default_schema: str | None = None,
    record: bool = True,
) -> ColumnLineage:
    """Record the column lineage of one SQL statement in the current run; returns it.

    ``query`` is a SELECT (then ``output`` names the dataset it fills), an
    ``INSERT … SELECT`` or a ``CREATE TABLE … AS``. ``inputs`` and ``output``
    are :class:`~datatrail.DatasetRef`\\ s, node ids (``dataset:NS:NAME``) or
    table names; SQL tables are matched to them by name suffix, and the rest are
    named ``namespace`` + the table as written (prefixed with ``database`` and
    ``default_schema`` when given). ``schema`` (``{table: {column: type}}``)
    lets ``SELECT *`` and unqualified columns over joins resolve. Outside a run,
    a run ``sql:<output>`` is opened for the statement. Raises
    :class:`SQLLineageError` for SQL it cannot read.
    """
    naming = _Naming(namespace=namespace, database=database, default_schema=default_schema)
    lineage, read, written = _lineage(
        query,
        dialect=dialect,
        inputs=inputs,
        output=output,
        schema=schema,
        naming=naming,
    )
    if written is None:
        raise UsageError(
            "a SELECT fills no table by itself: pass output= (the dataset it produces)"
        )
    if record:
        _record(lineage, read, written)
    return lineage


# -- DB-API cursors ----------------------------------------------------------------


def _connection_naming(cursor: Any, namespace: str | None) -> tuple[_Naming, str | None]:
    """Dataset naming from the cursor's connection (PostgreSQL, SQLite), and the SQL dialect."""
    conn: Any = getattr(cursor, "connection", None)
    if conn is None:
        return _Naming(namespace=namespace or "default"), None
    module = type(conn).__module__.split(".")[0]
    if module == "psycopg":
        info = conn.info
        return (
            _Naming(
                namespace=namespace or f"postgres://{info.host}:{info.port}",
                database=info.dbname,
                default_schema="public",
            ),
            "postgres",
        )
    if module == "psycopg2":
        params = conn.get_dsn_parameters()
        return (
            _Naming(
                namespace=namespace
                or f"postgres://{params.get('host', 'localhost')}:{params.get('port', 5432)}",
                database=params.get("dbname"),
                default_schema="public",
            ),
            "postgres",
        )
    if module == "sqlite3":
        path = ":memory:"
        try:
            for _, name, file in conn.execute("PRAGMA database_list").fetchall():
                if name == "main" and file:
                    path = file
        except Exception:  # the connection may be closed or busy: the name only loses its path
            log.debug("datatrail: could not read the SQLite database path", exc_info=True)
        return _Naming(namespace=namespace or "sqlite", database=path, separator=":"), "sqlite"
    return _Naming(namespace=namespace or "default"), None


def _sqlite_schema(cursor: Any, tables: Iterable[str]) -> dict[str, dict[str, str]]:
    conn = cursor.connection
    schema: dict[str, dict[str, str]] = {}
    for table in tables:
        name = table.split(".")[-1]
        rows = conn.execute(f'PRAGMA table_info("{name.replace(chr(34), "")}")').fetchall()
        if rows:
            schema[name] = {str(r[1]): str(r[2] or "TEXT") for r in rows}
    return schema


class TrackedCursor:
    """A DB-API cursor that records the column lineage of every statement it executes.

    Everything else is passed through to the wrapped cursor. Recording never
    breaks the program: a statement datatrail cannot read is logged and skipped.
    """

    def __init__(
        self,
        cursor: Any,
        *,
        dialect: str | None = None,
        namespace: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        self._cursor = cursor
        self._naming, detected = _connection_naming(cursor, namespace)
        self._dialect = dialect or detected
        self._schema = schema
        self.recorded: list[ColumnLineage] = []
        """The lineage of each statement recorded through this cursor, in order."""

    def execute(self, operation: Any, parameters: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Execute on the wrapped cursor, then record the statement's lineage."""
        if parameters is None:
            result = self._cursor.execute(operation, *args, **kwargs)
        else:
            result = self._cursor.execute(operation, parameters, *args, **kwargs)
        self._observe(operation)
        return self if result is self._cursor else result

    def executemany(self, operation: Any, seq_of_parameters: Any, *args: Any, **kwargs: Any) -> Any:
        """Execute many on the wrapped cursor, then record the statement's lineage once."""
        result = self._cursor.executemany(operation, seq_of_parameters, *args, **kwargs)
        self._observe(operation)
        return self if result is self._cursor else result

    def _observe(self, operation: Any) -> None:
        text = operation.decode() if isinstance(operation, bytes) else operation
        if not isinstance(text, str):
            text = str(getattr(operation, "as_string", lambda _c: operation)(self._cursor))
        try:
            schema = self._schema
            if schema is None and self._dialect == "sqlite" and "*" in text:
                tables = analyze_tables(text, self._dialect)
                schema = _sqlite_schema(self._cursor, tables) or None
            lineage, read, written = _lineage(
                text,
                dialect=self._dialect,
                inputs=(),
                output=None,
                schema=schema,
                naming=self._naming,
            )
        except SQLLineageError as exc:
            log.debug("datatrail: no column lineage for %r: %s", text[:80], exc)
            return
        except Exception:
            log.exception("datatrail: reading the lineage of a statement failed; the query ran")
            return
        try:
            _record(lineage, read, written)
            self.recorded.append(lineage)
        except DatatrailError:
            raise
        except Exception:
            log.exception("datatrail: recording a statement's lineage failed; the query ran")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    def __enter__(self) -> TrackedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._cursor, "close", None)
        if close is not None:
            close()


def analyze_tables(query: str, dialect: str | None) -> list[str]:
    """The base tables a statement reads (for looking up their columns)."""
    import sqlglot
    from sqlglot import exp

    try:
        statement = sqlglot.parse_one(query, dialect=dialect)
    except Exception:
        return []
    ctes = {c.alias_or_name for c in statement.find_all(exp.CTE)}
    names = []
    for table in statement.find_all(exp.Table):
        key = ".".join(p.name for p in table.parts)
        if key not in ctes and key not in names:
            names.append(key)
    return names


def tracked_cursor(
    cursor: Any,
    *,
    dialect: str | None = None,
    namespace: str | None = None,
    schema: Mapping[str, Any] | None = None,
) -> TrackedCursor:
    """Wrap a DB-API cursor so each executed statement's column lineage is recorded.

    PostgreSQL (psycopg 3 and psycopg2) and SQLite connections name their
    datasets themselves (and set the dialect); for other drivers give
    ``namespace`` and ``dialect``. Statements without column lineage (DDL,
    ``INSERT … VALUES``, ``UPDATE``) run as usual and record nothing; a plain
    ``SELECT`` records its tables as inputs of the current run.
    """
    return TrackedCursor(cursor, dialect=dialect, namespace=namespace, schema=schema)
