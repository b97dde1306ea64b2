"""Interoperability: OpenLineage in and out, W3C PROV, JSONL and Parquet export.

Heavy optional dependencies (pyarrow, prov) are imported only when used.
"""

from datatrail.interop._data import EXPORT_TABLES, export_jsonl, export_parquet, table_rows
from datatrail.interop._prov import export_prov, prov_document
from datatrail.interop.openlineage import (
    export_openlineage,
    forwarder_from_env,
    ingest,
    resolve_alias,
    validate_openlineage,
)

__all__ = [
    "EXPORT_TABLES",
    "export_jsonl",
    "export_openlineage",
    "export_parquet",
    "export_prov",
    "forwarder_from_env",
    "ingest",
    "prov_document",
    "resolve_alias",
    "table_rows",
    "validate_openlineage",
]
