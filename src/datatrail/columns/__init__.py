"""Column lineage: from SQL (sqlglot) into ``column_lineage`` records, and walks over them.

``datatrail.sql(query, ...)`` and :func:`tracked_cursor` record what each
output column of a statement is made of, in OpenLineage's ``columnLineage``
shape; :func:`column_lineage` walks those records upstream or downstream.
"""

from datatrail.columns._analyze import MASKING_FUNCTIONS, StatementLineage, Transformation, analyze
from datatrail.columns._errors import SQLLineageError
from datatrail.columns._record import TOPIC, ColumnLineage, TrackedCursor, sql, tracked_cursor
from datatrail.columns._walk import (
    ColumnEdge,
    ColumnLineageGraph,
    ColumnNode,
    column_lineage,
    parse_column,
)

__all__ = [
    "MASKING_FUNCTIONS",
    "TOPIC",
    "ColumnEdge",
    "ColumnLineage",
    "ColumnLineageGraph",
    "ColumnNode",
    "SQLLineageError",
    "StatementLineage",
    "TrackedCursor",
    "Transformation",
    "analyze",
    "column_lineage",
    "parse_column",
    "sql",
    "tracked_cursor",
]
