"""Event kinds, ids, node ids, dataset naming and canonical encoding.

The model imports nothing else of datatrail but its errors.
"""

from datatrail.model._canonical import canonical_bytes, from_json
from datatrail.model._events import (
    SCHEMA_VERSION,
    Actor,
    ArtifactInfo,
    CodeVersion,
    Environment,
    ErasureRecorded,
    ErrorInfo,
    Event,
    GitInfo,
    IORecorded,
    Record,
    RunFinished,
    RunStarted,
    decode_event,
    encode_event,
)
from datatrail.model._ids import is_uuid7, uuid7, uuid7_time_ms
from datatrail.model._naming import (
    DatasetRef,
    JobRef,
    NodeId,
    file_dataset,
    inmemory_dataset,
    parse_node_id,
    postgres_dataset,
)
from datatrail.model._time import format_ts, now_ts, parse_ts

__all__ = [
    "SCHEMA_VERSION",
    "Actor",
    "ArtifactInfo",
    "CodeVersion",
    "DatasetRef",
    "Environment",
    "ErasureRecorded",
    "ErrorInfo",
    "Event",
    "GitInfo",
    "IORecorded",
    "JobRef",
    "NodeId",
    "Record",
    "RunFinished",
    "RunStarted",
    "canonical_bytes",
    "decode_event",
    "encode_event",
    "file_dataset",
    "format_ts",
    "from_json",
    "inmemory_dataset",
    "is_uuid7",
    "now_ts",
    "parse_node_id",
    "parse_ts",
    "postgres_dataset",
    "uuid7",
    "uuid7_time_ms",
]
