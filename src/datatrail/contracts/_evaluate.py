"""Checking one output against its dataset's contract, from Arrow buffers.

The result is a list of assertions in the shape of OpenLineage's
``dataQualityAssertions`` facet (assertion, column, success) plus what was
expected and what was found, so a failure explains itself. The schema part
uses the artifact's recorded schema when there is one; value assertions need
the data as an Arrow table (pandas, polars and Arrow values convert; CSV,
Parquet and Arrow IPC files are read).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Final

import msgspec

from datatrail.contracts._spec import ColumnSpec, Contract, parse_duration

__all__ = ["Assertion", "CheckResult", "evaluate", "to_arrow"]

_WIDER: Final[dict[str, tuple[str, ...]]] = {
    "int8": ("int16", "int32", "int64"),
    "int16": ("int32", "int64"),
    "int32": ("int64",),
    "uint8": ("uint16", "uint32", "uint64", "int16", "int32", "int64"),
    "uint16": ("uint32", "uint64", "int32", "int64"),
    "uint32": ("uint64", "int64"),
    "halffloat": ("float", "double"),
    "float": ("double",),
}
"""Type changes a reader of the narrower type can always follow (used by ``diff``)."""


class Assertion(msgspec.Struct, frozen=True, kw_only=True):
    """One checked promise: OpenLineage's assertion, column and success, with expected/actual."""

    assertion: str
    column: str | None = None
    success: bool
    expected: Any = None
    actual: Any = None

    def describe(self) -> str:
        """One line for people: what failed, where, expected and found."""
        where = f"column {self.column!r}: " if self.column else ""
        return f"{where}{self.assertion} expected {self.expected!r}, found {self.actual!r}"


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one contract check (the ``data`` of a ``contract.check`` record)."""

    dataset: str
    contract_version: int | None
    mode: str
    assertions: list[Assertion]
    success: bool
    artifact: str | None = None
    run_id: str | None = None

    @property
    def failures(self) -> list[Assertion]:
        """The assertions that failed."""
        return [a for a in self.assertions if not a.success]

    def message(self) -> str:
        """A readable summary naming every failed assertion."""
        if self.success:
            return f"{self.dataset} keeps its contract (v{self.contract_version})"
        listed = "; ".join(a.describe() for a in self.failures)
        return f"{self.dataset} breaks its contract (v{self.contract_version}): {listed}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


# -- getting a table ----------------------------------------------------------------------


def _read_file(path: Path) -> Any:
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if suffix in (".csv", ".tsv"):
        import pyarrow.csv as pcsv

        delimiter = "\t" if suffix == ".tsv" else ","
        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    if suffix in (".arrow", ".feather", ".ipc"):
        import pyarrow.feather as feather

        return feather.read_table(path)
    if suffix in (".jsonl", ".ndjson"):
        import pyarrow.json as pjson

        return pjson.read_json(path)
    del pa
    return None


def to_arrow(value: Any) -> Any:
    """The value as a ``pyarrow.Table`` (pandas, polars, Arrow, or a table file), else None.

    pandas NaN and NaT become nulls, as everywhere in datatrail.
    """
    module = type(value).__module__.split(".", 1)[0]
    if isinstance(value, os.PathLike):
        path = Path(value)
        return _read_file(path) if path.is_file() else None
    if module not in ("pandas", "polars", "pyarrow"):
        return None
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if module == "polars":
        import polars as pl

        frame = value.to_frame() if isinstance(value, pl.Series) else value
        return frame.to_arrow()
    if module == "pandas":
        import pandas as pd

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        if not isinstance(frame, pd.DataFrame):
            return None
        columns = {}
        for i, name in enumerate(frame.columns):
            series = frame.iloc[:, i]
            try:
                columns[str(name)] = pa.array(series, from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError):
                continue  # mixed objects: the schema check still sees the column
        return pa.table(columns) if columns else pa.table({})
    return None


def _schema_of(table: Any) -> list[tuple[str, str]]:
    from datatrail.capture._hash_tables import type_name

    return [(str(f.name), type_name(f.type)) for f in table.schema]


# -- checks -------------------------------------------------------------------------------


def evaluate(
    contract: Contract,
    *,
    version: int | None,
    value: Any = None,
    table: Any = None,
    schema: list[tuple[str, str]] | None = None,
    rows: int | None = None,
    now: dt.datetime | None = None,
    artifact: str | None = None,
    run_id: str | None = None,
) -> CheckResult:
    """Check a value (or an Arrow ``table``, or a bare ``schema``) against ``contract``."""
    if table is None and value is not None:
        table = to_arrow(value)
    if table is not None:
        # The recorded schema (the hasher's view) wins: it also names columns Arrow cannot hold.
        schema = schema or _schema_of(table)
        rows = table.num_rows
    out: list[Assertion] = []
    if schema is None:
        out.append(
            Assertion(
                assertion="readable",
                success=False,
                expected="a table (pandas, polars, Arrow, or a CSV/Parquet/Arrow file)",
                actual="no schema could be read",
            )
        )
        return _result(contract, version, out, artifact, run_id)
    types = dict(schema)
    for spec in contract.columns:
        found = types.get(spec.name)
        out.append(
            Assertion(
                assertion="column_present",
                column=spec.name,
                success=found is not None,
                expected=True,
                actual=found is not None,
            )
        )
        if found is None:
            continue
        if spec.type is not None:
            out.append(
                Assertion(
                    assertion="type",
                    column=spec.name,
                    success=found == spec.type,
                    expected=spec.type,
                    actual=found,
                )
            )
        if table is not None and spec.name in table.column_names:
            out.extend(_column_checks(spec, table.column(spec.name), table.num_rows))
    if contract.extra_columns == "forbid":
        declared = {c.name for c in contract.columns}
        extra = [name for name, _ in schema if name not in declared]
        out.append(
            Assertion(
                assertion="no_extra_columns",
                success=not extra,
                expected=sorted(declared),
                actual=extra,
            )
        )
    if contract.rows is not None and rows is not None:
        low, high = contract.rows.min, contract.rows.max
        ok = (low is None or rows >= low) and (high is None or rows <= high)
        out.append(
            Assertion(
                assertion="row_count", success=ok, expected={"min": low, "max": high}, actual=rows
            )
        )
    if contract.freshness is not None and table is not None:
        out.append(_freshness(contract, table, now or dt.datetime.now(dt.UTC)))
    return _result(contract, version, out, artifact, run_id)


def _result(
    contract: Contract,
    version: int | None,
    assertions: list[Assertion],
    artifact: str | None,
    run_id: str | None,
) -> CheckResult:
    return CheckResult(
        dataset=contract.dataset,
        contract_version=version,
        mode=contract.mode,
        assertions=assertions,
        success=all(a.success for a in assertions),
        artifact=artifact,
        run_id=run_id,
    )


def _plain(column: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _column_checks(spec: ColumnSpec, column: Any, rows: int) -> list[Assertion]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from datatrail.capture._hash_tables import _bounds

    column = _plain(column)
    out: list[Assertion] = []
    nulls = int(column.null_count)
    if not spec.nullable:
        out.append(
            Assertion(
                assertion="not_null", column=spec.name, success=nulls == 0, expected=0, actual=nulls
            )
        )
    if spec.max_null_rate is not None:
        rate = nulls / rows if rows else 0.0
        out.append(
            Assertion(
                assertion="max_null_rate",
                column=spec.name,
                success=rate <= spec.max_null_rate,
                expected=spec.max_null_rate,
                actual=round(rate, 6),
            )
        )
    if spec.allowed is not None:
        try:
            value_set = pa.array(spec.allowed).cast(column.type)
            inside = pc.is_in(column, value_set=value_set)
            outside = pc.filter(column, pc.invert(pc.fill_null(inside, True)))
            bad = pc.unique(outside).to_pylist()
        except (pa.ArrowException, TypeError, ValueError):
            bad = ["<values of another type than the allowed list>"]
        out.append(
            Assertion(
                assertion="allowed_values",
                column=spec.name,
                success=not bad,
                expected=list(spec.allowed),
                actual=[str(v) for v in bad[:10]],
            )
        )
    if spec.unique:
        present = len(column) - nulls
        distinct = int(pc.count_distinct(column, mode="only_valid").as_py())
        out.append(
            Assertion(
                assertion="unique",
                column=spec.name,
                success=distinct == present,
                expected=present,
                actual=distinct,
            )
        )
    if spec.min is not None or spec.max is not None:
        bounds = _bounds(column)
        low, high = bounds if bounds is not None else (None, None)
        if spec.min is not None:
            out.append(
                Assertion(
                    assertion="min",
                    column=spec.name,
                    success=low is None or not _less(low, spec.min),
                    expected=spec.min,
                    actual=low,
                )
            )
        if spec.max is not None:
            out.append(
                Assertion(
                    assertion="max",
                    column=spec.name,
                    success=high is None or not _less(spec.max, high),
                    expected=spec.max,
                    actual=high,
                )
            )
    return out


def _less(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) < str(b)
    return bool(a < b)


def _freshness(contract: Contract, table: Any, now: dt.datetime) -> Assertion:
    import pyarrow as pa
    import pyarrow.compute as pc

    spec = contract.freshness
    assert spec is not None
    age = parse_duration(spec.max_age)
    if spec.column not in table.column_names:
        return Assertion(
            assertion="freshness",
            column=spec.column,
            success=False,
            expected=spec.max_age,
            actual="no such column",
        )
    column = _plain(table.column(spec.column))
    newest: Any = None
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        newest = pc.max(column).as_py()
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.max(column).as_py()
        try:
            newest = dt.datetime.fromisoformat(text) if text else None
        except ValueError:
            newest = None
    if isinstance(newest, dt.date) and not isinstance(newest, dt.datetime):
        newest = dt.datetime(newest.year, newest.month, newest.day, tzinfo=dt.UTC)
    if isinstance(newest, dt.datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=dt.UTC)
    ok = newest is not None and now - newest <= age
    return Assertion(
        assertion="freshness",
        column=spec.column,
        success=ok,
        expected=f"newest value at most {spec.max_age} old",
        actual=newest.isoformat() if isinstance(newest, dt.datetime) else newest,
    )
