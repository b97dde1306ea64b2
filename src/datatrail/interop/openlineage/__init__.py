"""OpenLineage in and out: validate, ingest, export and forward OpenLineage 2-0-2 events."""

from datatrail.interop.openlineage._export import (
    COLUMN_LINEAGE_TOPIC,
    DEFAULT_ENV_ALLOWLIST,
    export_openlineage,
)
from datatrail.interop.openlineage._forward import Forwarder, forwarder_from_env
from datatrail.interop.openlineage._ingest import (
    ALIAS_TOPIC,
    OPENLINEAGE_TOPIC,
    IngestResult,
    OpenLineageMapper,
    Unreadable,
    events_from_openlineage,
    ingest,
    read_openlineage_lines,
    resolve_alias,
)
from datatrail.interop.openlineage._schema import (
    InvalidOpenLineageEvent,
    validate_facets,
    validate_openlineage,
)

__all__ = [
    "ALIAS_TOPIC",
    "COLUMN_LINEAGE_TOPIC",
    "DEFAULT_ENV_ALLOWLIST",
    "OPENLINEAGE_TOPIC",
    "Forwarder",
    "IngestResult",
    "InvalidOpenLineageEvent",
    "OpenLineageMapper",
    "Unreadable",
    "events_from_openlineage",
    "export_openlineage",
    "forwarder_from_env",
    "ingest",
    "read_openlineage_lines",
    "resolve_alias",
    "validate_facets",
    "validate_openlineage",
]
