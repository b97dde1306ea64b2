"""SQL → column lineage, with OpenLineage's semantics, by walking sqlglot's scopes.

One statement is parsed and its query qualified (stars expanded when the
schema is known, columns tied to their tables). Each output column is then
traced through CTEs, derived tables, set operations and scalar subqueries
down to base-table columns. Every input field carries the transformations
that link it to the output, as OpenLineage's ``columnLineage`` facet names
them:

* ``DIRECT``: the value flows into the output — ``IDENTITY`` (as is),
  ``TRANSFORMATION`` (through an expression), ``AGGREGATION`` (through an
  aggregate, including an aggregate used as a window function).
* ``INDIRECT``: the value decides which rows or how they are combined —
  ``JOIN``, ``FILTER`` (WHERE, HAVING, QUALIFY, IN-subqueries), ``GROUP_BY``,
  ``SORT``, ``WINDOW`` (partition and order of a window) and ``CONDITIONAL``
  (a CASE/IF condition).

``masking`` is true when the value passes through a hashing function or a
``COUNT``: the output holds nothing of the original value. Clause-level
(INDIRECT) inputs are listed on every output column they affect, as the
OpenLineage examples do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from datatrail.columns._errors import SQLLineageError

__all__ = ["MASKING_FUNCTIONS", "StatementLineage", "Transformation", "analyze"]

MASKING_FUNCTIONS = frozenset(
    {
        "MD5",
        "MD5_DIGEST",
        "MD5_NUMBER_LOWER64",
        "MD5_NUMBER_UPPER64",
        "SHA",
        "SHA1",
        "SHA2",
        "SHA256",
        "SHA512",
        "HASH",
        "HASHBYTES",
        "FARM_FINGERPRINT",
        "CRC32",
        "XXHASH64",
        "XXHASH3_64",
        "MURMUR3_32",
        "CITYHASH64",
        "SIPHASH64",
        "DIGEST",
        "STANDARD_HASH",
        "ORA_HASH",
        "CHECKSUM",
    }
)
"""Functions whose output keeps nothing of the input value (``masking: true``)."""

_DIRECT_RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}
_DIRECT_NAME = {v: k for k, v in _DIRECT_RANK.items()}


@dataclass(frozen=True, order=True)
class Transformation:
    """One way an input field reaches an output field."""

    type: str
    subtype: str
    masking: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The OpenLineage shape: ``{type, subtype, description, masking}``."""
        data: dict[str, Any] = {"type": self.type, "subtype": self.subtype}
        if self.description:
            data["description"] = self.description
        data["masking"] = self.masking
        return data


Key = tuple[str, str]
"""(table as written in SQL, qualified as far as the SQL says; column name)."""
Contrib = dict[Key, set[Transformation]]


@dataclass
class StatementLineage:
    """The column lineage of one statement, with tables as the SQL names them."""

    kind: str
    """``select``, ``insert``, ``create``."""
    target: str | None
    """The table written (INSERT, CREATE TABLE AS), as the SQL names it."""
    inputs: list[str]
    """Tables read, in order of first appearance."""
    fields: dict[str, Contrib] = field(default_factory=dict)
    """Output column → input (table, column) → transformations."""


def _merge(into: Contrib, other: Mapping[Key, Iterable[Transformation]]) -> None:
    for key, transforms in other.items():
        into.setdefault(key, set()).update(transforms)


def _table_key(table: Any) -> str:
    return ".".join(part.name for part in table.parts)


@dataclass(frozen=True)
class _Ctx:
    rank: int = 0
    """Direct subtype the path so far imposes (IDENTITY < TRANSFORMATION < AGGREGATION)."""
    masking: bool = False
    indirect: str | None = None
    """An INDIRECT subtype the path imposes (a window spec, a CASE condition)."""
    description: str = ""


class _Analyzer:
    def __init__(self, dialect: str | None) -> None:
        self.dialect = dialect
        self._outputs: dict[int, list[tuple[str, Contrib]]] = {}
        self._indirect: dict[int, Contrib] = {}

    def sql(self, node: Any) -> str:
        text: str = node.sql(dialect=self.dialect)
        return text if len(text) <= 200 else text[:197] + "..."

    # -- scope outputs ---------------------------------------------------------------

    def outputs(self, scope: Any) -> list[tuple[str, Contrib]]:
        key = id(scope)
        if key not in self._outputs:
            self._outputs[key] = self._compute_outputs(scope)
        return self._outputs[key]

    def _compute_outputs(self, scope: Any) -> list[tuple[str, Contrib]]:
        from sqlglot import exp

        node = scope.expression
        if isinstance(node, exp.SetOperation):
            parts = [self.outputs(s) for s in scope.set_operation_scopes]
            if not parts:
                raise SQLLineageError(f"cannot read the branches of {self.sql(node)!r}")
            first = parts[0]
            merged: list[tuple[str, Contrib]] = []
            for i, (name, branch) in enumerate(first):
                combined: Contrib = {}
                _merge(combined, branch)
                for other in parts[1:]:
                    if i < len(other):
                        _merge(combined, other[i][1])
                merged.append((name, combined))
            order = node.args.get("order")
            if order is not None:
                sort = self._clause(scope, order, "SORT")
                for _, column in merged:
                    _merge(column, sort)
            return merged
        if not isinstance(node, exp.Select):
            raise SQLLineageError(
                f"column lineage reads SELECT queries; {type(node).__name__} is not one: "
                f"{self.sql(node)!r}"
            )
        indirect = self.scope_indirect(scope)
        result: list[tuple[str, Contrib]] = []
        for i, projection in enumerate(node.expressions):
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                raise SQLLineageError(
                    f"SELECT * over {', '.join(scope.selected_sources) or 'a source'} needs the "
                    "columns of its tables: pass schema={table: {column: type}} "
                    "(or list the columns)"
                )
            name = projection.alias_or_name or f"_col_{i}"
            expr = projection.this if isinstance(projection, exp.Alias) else projection
            contrib: Contrib = {}
            self._visit(scope, expr, _Ctx(description=self.sql(expr)), contrib, top=True)
            _merge(contrib, indirect)
            result.append((name, contrib))
        return result

    def scope_indirect(self, scope: Any) -> Contrib:
        """Inputs that shape every row of a SELECT scope: joins, filters, grouping, sorting."""
        key = id(scope)
        if key in self._indirect:
            return self._indirect[key]
        node = scope.expression
        out: Contrib = {}
        self._indirect[key] = out  # guards recursion through correlated subqueries
        for join in node.args.get("joins") or ():
            on = join.args.get("on")
            if on is not None:
                _merge(out, self._clause(scope, on, "JOIN", prefix="ON "))
            for using in join.args.get("using") or ():
                _merge(out, self._clause(scope, using, "JOIN", prefix="USING "))
        for arg, subtype, prefix in (
            ("where", "FILTER", ""),
            ("group", "GROUP_BY", ""),
            ("having", "FILTER", ""),
            ("qualify", "FILTER", ""),
            ("order", "SORT", ""),
        ):
            clause = node.args.get(arg)
            if clause is not None:
                _merge(out, self._clause(scope, clause, subtype, prefix=prefix))
        # Rows of a derived table or CTE are already filtered, joined, grouped by its own clauses.
        for _alias, (_node, source) in scope.selected_sources.items():
            if not _is_table(source):
                _merge(out, self._inherited_indirect(source))
        return out

    def _inherited_indirect(self, scope: Any) -> Contrib:
        from sqlglot import exp

        if isinstance(scope.expression, exp.SetOperation):
            out: Contrib = {}
            for branch in scope.set_operation_scopes:
                _merge(out, self._inherited_indirect(branch))
            return out
        return self.scope_indirect(scope)

    def _clause(self, scope: Any, node: Any, subtype: str, *, prefix: str = "") -> Contrib:
        contrib: Contrib = {}
        description = prefix + self.sql(node)
        self._visit(scope, node, _Ctx(indirect=subtype, description=description), contrib)
        return contrib

    # -- expressions -----------------------------------------------------------------

    def _visit(self, scope: Any, node: Any, ctx: _Ctx, out: Contrib, *, top: bool = False) -> None:
        from sqlglot import exp

        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return
            self._compose(self._column(scope, node), ctx, out)
            return
        if isinstance(node, exp.Paren):
            self._visit(scope, node.this, ctx, out, top=top)
            return
        if isinstance(node, exp.Subquery | exp.Select | exp.SetOperation):
            self._subquery(scope, node, ctx, out)
            return
        if isinstance(node, exp.Window):
            self._visit(scope, node.this, ctx, out)
            spec = _Ctx(indirect="WINDOW", description=ctx.description)
            for part in node.args.get("partition_by") or ():
                self._visit(scope, part, spec, out)
            order = node.args.get("order")
            if order is not None:
                self._visit(scope, order, spec, out)
            return
        inner = ctx
        if not top or not isinstance(node, exp.Column):
            inner = _Ctx(
                rank=max(ctx.rank, _DIRECT_RANK["TRANSFORMATION"]),
                masking=ctx.masking,
                indirect=ctx.indirect,
                description=ctx.description,
            )
        if isinstance(node, exp.AggFunc):
            inner = _Ctx(
                rank=_DIRECT_RANK["AGGREGATION"],
                masking=ctx.masking or isinstance(node, exp.Count),
                indirect=ctx.indirect,
                description=ctx.description,
            )
        elif isinstance(node, exp.Func) and _function_name(node) in MASKING_FUNCTIONS:
            inner = _Ctx(
                rank=inner.rank, masking=True, indirect=ctx.indirect, description=ctx.description
            )
        if isinstance(node, exp.Case):
            condition = _Ctx(indirect="CONDITIONAL", description=ctx.description)
            subject = node.args.get("this")
            if subject is not None:
                self._visit(scope, subject, condition, out)
            for branch in node.args.get("ifs") or ():
                self._visit(scope, branch.this, condition, out)
                self._visit(scope, branch.args.get("true"), inner, out)
            default = node.args.get("default")
            if default is not None:
                self._visit(scope, default, inner, out)
            return
        if isinstance(node, exp.If):
            condition = _Ctx(indirect="CONDITIONAL", description=ctx.description)
            self._visit(scope, node.this, condition, out)
            for arg in ("true", "false"):
                branch = node.args.get(arg)
                if branch is not None:
                    self._visit(scope, branch, inner, out)
            return
        for child in node.iter_expressions():
            self._visit(scope, child, inner, out)

    def _compose(self, contrib: Contrib, ctx: _Ctx, out: Contrib) -> None:
        for key, transforms in contrib.items():
            bucket = out.setdefault(key, set())
            for t in transforms:
                if t.type == "INDIRECT":
                    bucket.add(t)
                elif ctx.indirect is not None:
                    bucket.add(Transformation("INDIRECT", ctx.indirect, False, ctx.description))
                else:
                    rank = max(_DIRECT_RANK[t.subtype], ctx.rank)
                    bucket.add(
                        Transformation(
                            "DIRECT",
                            _DIRECT_NAME[rank],
                            t.masking or ctx.masking,
                            "" if rank == 0 else (t.description or ctx.description),
                        )
                    )

    def _column(self, scope: Any, column: Any) -> Contrib:
        """What a column reference carries, as a DIRECT IDENTITY path from its sources."""
        source = self._source(scope, column)
        if _is_table(source):
            return {(_table_key(source), column.name): {Transformation("DIRECT", "IDENTITY")}}
        for name, contrib in self.outputs(source):
            if name == column.name:
                return contrib
        raise SQLLineageError(
            f"column {self.sql(column)!r}: its source has no column {column.name!r} "
            f"(it has {', '.join(n for n, _ in self.outputs(source))})"
        )

    def _source(self, scope: Any, column: Any) -> Any:
        table = column.table
        current = scope
        while current is not None:
            if table:
                if table in current.sources:
                    return current.sources[table]
            else:
                selected = current.selected_sources
                if len(selected) == 1:
                    return next(iter(selected.values()))[1]
                if len(selected) > 1:
                    raise SQLLineageError(
                        f"column {column.name!r} could come from any of "
                        f"{', '.join(sorted(selected))}: qualify it (table.{column.name}) "
                        "or pass schema={table: {column: type}}"
                    )
            current = current.parent
        raise SQLLineageError(f"column {self.sql(column)!r} names no table or alias of the query")

    def _subquery(self, scope: Any, node: Any, ctx: _Ctx, out: Contrib) -> None:
        from sqlglot import exp

        target = node.this if isinstance(node, exp.Subquery) else node
        for sub in scope.subquery_scopes:
            if sub.expression is target:
                outputs = self.outputs(sub)
                if outputs:
                    # A scalar or IN subquery: its (first) column feeds this expression.
                    self._compose(outputs[0][1], ctx, out)
                return
        raise SQLLineageError(f"cannot place the subquery {self.sql(node)!r}")


def _is_table(source: Any) -> bool:
    from sqlglot import exp

    return isinstance(source, exp.Table)


def _function_name(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    return str(node.sql_name()).upper()


def _schema_for_sqlglot(schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    out: dict[str, Any] = {}
    for table, columns in schema.items():
        if isinstance(columns, Mapping):
            cols = {str(c): str(t) for c, t in columns.items()}
        elif isinstance(columns, Iterable) and not isinstance(columns, str | bytes):
            cols = {str(c): "TEXT" for c in columns}
        else:
            raise SQLLineageError(
                f"schema[{table!r}] must map column names to types, or list column names"
            )
        # Nested keys ("db.schema.table") become sqlglot's nested mapping.
        parts = str(table).split(".")
        level = out
        for part in parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = cols
    depths = {_depth(v) for v in out.values()}
    if len(depths) > 1:
        raise SQLLineageError(
            "schema keys must all have the same number of parts (table, schema.table or "
            "db.schema.table)"
        )
    return out


def _depth(value: Any) -> int:
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return 1 + max(_depth(v) for v in value.values())
    return 0


def _lookup_columns(schema: Mapping[str, Any], table: str) -> list[str] | None:
    low = table.lower()
    for key, columns in schema.items():
        name = str(key).lower()
        if name == low or name.endswith("." + low) or low.endswith("." + name):
            return [str(c) for c in columns]
    return None


def analyze(
    query: str, *, dialect: str | None = None, schema: Mapping[str, Any] | None = None
) -> StatementLineage:
    """The column lineage of one SQL statement (SELECT, INSERT … SELECT, CREATE TABLE … AS)."""
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
        from sqlglot.optimizer.qualify import qualify
        from sqlglot.optimizer.scope import build_scope
    except ImportError:  # pragma: no cover - the sql extra
        raise SQLLineageError(
            "column lineage from SQL needs sqlglot: pip install 'datatrail[sql]'"
        ) from None
    if not isinstance(query, str) or not query.strip():
        raise SQLLineageError("the SQL statement is empty")
    try:
        statements = [s for s in sqlglot.parse(query, dialect=dialect) if s is not None]
    except SqlglotError as exc:
        raise SQLLineageError(
            f"the SQL does not parse ({dialect or 'generic'} dialect): {exc}"
        ) from exc
    if len(statements) != 1:
        raise SQLLineageError(
            f"expected one SQL statement, found {len(statements)}; record each one separately"
        )
    statement = statements[0]
    target_node: Any = None
    target_columns: list[str] = []
    if isinstance(statement, exp.Insert | exp.Create):
        kind = "insert" if isinstance(statement, exp.Insert) else "create"
        target_node = statement.this
        if isinstance(target_node, exp.Schema):
            target_columns = [
                c.name
                for c in target_node.expressions
                if isinstance(c, exp.Identifier | exp.ColumnDef | exp.Column)
            ]
            target_node = target_node.this
        query_node = statement.expression
        if not isinstance(query_node, exp.Query):
            raise SQLLineageError(
                f"{kind.upper()} without a SELECT has no column lineage: {query[:80]!r}"
            )
    elif isinstance(statement, exp.Query):
        kind = "select"
        query_node = statement
    else:
        raise SQLLineageError(
            f"column lineage reads SELECT, INSERT … SELECT and CREATE TABLE … AS; "
            f"not {type(statement).__name__.upper()}"
        )
    sg_schema = _schema_for_sqlglot(schema)
    try:
        qualified = qualify(
            query_node.copy(),
            schema=sg_schema,
            dialect=dialect,
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
        )
    except SqlglotError:
        try:
            qualified = qualify(
                query_node.copy(),
                schema=sg_schema,
                dialect=dialect,
                qualify_columns=False,
                validate_qualify_columns=False,
                quote_identifiers=False,
                identify=False,
            )
        except SqlglotError as exc:
            raise SQLLineageError(f"cannot resolve the query's columns: {exc}") from exc
    root = build_scope(qualified)
    if root is None:
        raise SQLLineageError(f"cannot read the query's structure: {query[:80]!r}")
    analyzer = _Analyzer(dialect)
    outputs = analyzer.outputs(root)
    inputs: list[str] = []
    for scope in root.traverse():
        for source in scope.sources.values():
            if _is_table(source):
                name = _table_key(source)
                if name not in inputs:
                    inputs.append(name)
    if not target_columns and kind == "insert" and schema is not None and target_node is not None:
        # INSERT without a column list fills the target's columns in order.
        known = _lookup_columns(schema, _table_key(target_node))
        if known is not None and len(known) == len(outputs):
            target_columns = known
    if target_columns and len(target_columns) != len(outputs):
        raise SQLLineageError(
            f"{kind.upper()} names {len(target_columns)} columns but the query gives {len(outputs)}"
        )
    fields: dict[str, Contrib] = {}
    for i, (name, contrib) in enumerate(outputs):
        out_name = target_columns[i] if target_columns else name
        _merge(fields.setdefault(out_name, {}), contrib)
    return StatementLineage(
        kind=kind,
        target=_table_key(target_node) if target_node is not None else None,
        inputs=inputs,
        fields=fields,
    )
