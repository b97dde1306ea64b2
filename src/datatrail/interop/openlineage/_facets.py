"""The standard OpenLineage facets (2-0-2 facet schemas), restated as checkers.

Each container (run, job, dataset, input, output) has its base facet rule
(``_producer`` and ``_schemaURL``; ``_deleted`` on job and dataset facets) and
the standard facets by name; any other facet name is a custom facet that only
the base rule applies to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datatrail.interop.openlineage._checks import (
    Check,
    all_of,
    any_of,
    arr,
    boolean,
    const,
    enum,
    esc,
    integer,
    lazy,
    minimum,
    number,
    obj,
    one_of,
    string,
    uuid_str,
    want,
)

__all__ = ["CONTAINERS", "ON_BASE", "facets_check"]

# -- the base facets ----------------------------------------------------------------------

_BASE_FACET = obj({"_producer": string, "_schemaURL": string}, ("_producer", "_schemaURL"))
_DELETABLE = obj(
    {"_producer": string, "_schemaURL": string, "_deleted": boolean}, ("_producer", "_schemaURL")
)
_RUN_FACET = _BASE_FACET
_JOB_FACET = _DELETABLE
_DATASET_FACET = _DELETABLE
_INPUT_FACET = _BASE_FACET
_OUTPUT_FACET = _BASE_FACET


def _facet(base: Check, props: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    check = all_of(base, obj(props, required))
    ON_BASE[check] = base
    return check


ON_BASE: dict[Check, Check] = {}
"""Standard facet checkers by the base facet rule they include (so it need not run twice)."""


# -- standard facets (OpenLineage 2-0-2 facet schemas, restated) ---------------------------

_S = string
_TRANSFORM = obj({"type": _S, "subtype": _S, "description": _S, "masking": boolean}, ("type",))
_INPUT_FIELD = obj(
    {"namespace": _S, "name": _S, "field": _S, "transformations": arr(_TRANSFORM)},
    ("namespace", "name", "field"),
)
_COLUMN_METRICS = obj(
    {
        "nullCount": integer,
        "distinctCount": integer,
        "sum": number,
        "count": number,
        "min": number,
        "max": number,
        "quantiles": obj(extra=number),
    }
)
_DQ_METRICS_PROPS: dict[str, Check] = {
    "rowCount": integer,
    "bytes": integer,
    "fileCount": integer,
    "lastUpdated": _S,
    "columnMetrics": obj(extra=_COLUMN_METRICS),
}
_ASSERTION = obj(
    {
        "assertion": _S,
        "success": boolean,
        "column": _S,
        "severity": _S,
        "name": _S,
        "description": _S,
        "expected": _S,
        "actual": _S,
        "content": _S,
        "contentType": _S,
        "params": obj(),
    },
    ("assertion", "success"),
)
_OWNERS = arr(obj({"name": _S, "type": _S}, ("name",)))
_RUN_FACETS_MAP = obj(extra=_RUN_FACET)
_JOB_FACETS_MAP = obj(extra=_JOB_FACET)
_ROOT = obj(
    {
        "run": obj({"runId": uuid_str, "facets": _RUN_FACETS_MAP}, ("runId",)),
        "job": obj({"namespace": _S, "name": _S, "facets": _JOB_FACETS_MAP}, ("namespace", "name")),
    },
    ("run", "job"),
)
_PARENT = _facet(
    _RUN_FACET,
    {
        "run": obj({"runId": uuid_str, "facets": _RUN_FACETS_MAP}, ("runId",)),
        "job": obj({"namespace": _S, "name": _S, "facets": _JOB_FACETS_MAP}, ("namespace", "name")),
        "root": _ROOT,
    },
    ("run", "job"),
)
_JOB_DEPENDENCY = obj(
    {
        "job": obj({"namespace": _S, "name": _S}, ("namespace", "name")),
        "run": obj({"runId": uuid_str}, ("runId",)),
        "dependency_type": _S,
        "sequence_trigger_rule": _S,
        "status_trigger_rule": _S,
    },
    ("job",),
)
_TEST_EXECUTION = obj(
    {
        "name": _S,
        "status": _S,
        "severity": _S,
        "type": _S,
        "description": _S,
        "expected": _S,
        "actual": _S,
        "content": _S,
        "contentType": _S,
        "params": obj(),
    },
    ("name", "status"),
)
_TAGS_RUN_JOB = arr(obj({"key": _S, "value": _S, "source": _S}, ("key", "value")))
_TAGS_DATASET = arr(obj({"key": _S, "value": _S, "source": _S, "field": _S}, ("key", "value")))


def _schema_field() -> Check:
    return _SCHEMA_FIELD


_SCHEMA_FIELD: Check = obj(
    {
        "name": _S,
        "type": _S,
        "description": _S,
        "ordinal_position": integer,
        "fields": arr(lazy(_schema_field)),
    },
    ("name",),
)

# Lineage facet (explicit dataset/job lineage).
_LINEAGE_TRANSFORM = obj(
    {"type": _S, "subtype": _S, "description": _S, "masking": boolean}, ("type",)
)
_LINEAGE_DS_INPUT = obj(
    {
        "namespace": _S,
        "name": _S,
        "type": enum("DATASET"),
        "field": _S,
        "transformations": arr(_LINEAGE_TRANSFORM),
    },
    ("namespace", "name", "type"),
)
_LINEAGE_JOB_INPUT = obj(
    {
        "namespace": _S,
        "name": _S,
        "type": enum("JOB"),
        "runId": uuid_str,
        "transformations": arr(_LINEAGE_TRANSFORM),
    },
    ("type",),
    together=("namespace", "name"),
)
_LINEAGE_INPUT = one_of(_LINEAGE_DS_INPUT, _LINEAGE_JOB_INPUT, what="lineage input")
_LINEAGE_FIELD = obj({"inputs": arr(_LINEAGE_INPUT)}, ("inputs",))
_LINEAGE_DS_ENTRY = obj(
    {
        "namespace": _S,
        "name": _S,
        "type": enum("DATASET"),
        "inputs": arr(_LINEAGE_INPUT),
        "fields": obj(extra=_LINEAGE_FIELD),
    },
    ("namespace", "name", "type"),
)
_LINEAGE_JOB_ENTRY = obj(
    {
        "namespace": _S,
        "name": _S,
        "type": enum("JOB"),
        "runId": uuid_str,
        "inputs": arr(_LINEAGE_INPUT),
    },
    ("type",),
    together=("namespace", "name"),
)
_LINEAGE = any_of(
    _facet(_DATASET_FACET, {"inputs": arr(_LINEAGE_INPUT), "fields": obj(extra=_LINEAGE_FIELD)}),
    _facet(
        _JOB_FACET,
        {"entries": arr(one_of(_LINEAGE_DS_ENTRY, _LINEAGE_JOB_ENTRY, what="lineage entry"))},
        ("entries",),
    ),
    what="lineage facet",
)


# Subset facet: conditions are a recursive tagged union.
def _condition() -> Check:
    return _CONDITION


_COMPARE_SIDE = one_of(
    obj({"type": const("field"), "field": _S}, ("field", "type")),
    obj({"type": const("literal"), "value": _S}, ("value", "type")),
    what="comparison operand",
)
_CONDITION: Check = all_of(
    obj(),
    one_of(
        obj({"type": const("location"), "locations": arr(_S)}, ("locations", "type")),
        obj(
            {
                "type": const("partition"),
                "partitions": arr(obj({"identifier": _S, "dimensions": obj()}, ("dimensions",))),
            },
            ("partitions", "type"),
        ),
        obj(
            {
                "left": lazy(_condition),
                "right": lazy(_condition),
                "type": const("binary"),
                "operator": _S,
            },
            ("left", "right", "operator", "type"),
        ),
        obj(
            {
                "type": const("compare"),
                "left": _COMPARE_SIDE,
                "right": _COMPARE_SIDE,
                "comparison": _S,
            },
            ("left", "right", "comparison", "type"),
        ),
        what="subset condition",
    ),
)
_SUBSET = one_of(
    _facet(_INPUT_FACET, {"inputCondition": _CONDITION}, ("inputCondition",)),
    _facet(_OUTPUT_FACET, {"outputCondition": _CONDITION}, ("outputCondition",)),
    what="subset facet",
)

RUN_FACETS: dict[str, Check] = {
    "parent": _PARENT,
    "nominalTime": _facet(
        _RUN_FACET, {"nominalStartTime": _S, "nominalEndTime": _S}, ("nominalStartTime",)
    ),
    "errorMessage": _facet(
        _RUN_FACET,
        {"message": _S, "programmingLanguage": _S, "stackTrace": _S},
        ("message", "programmingLanguage"),
    ),
    "processing_engine": _facet(
        _RUN_FACET, {"version": _S, "name": _S, "openlineageAdapterVersion": _S}, ("version",)
    ),
    "environmentVariables": _facet(
        _RUN_FACET,
        {"environmentVariables": arr(obj({"name": _S, "value": _S}, ("name", "value")))},
        ("environmentVariables",),
    ),
    "executionParameters": _facet(
        _RUN_FACET,
        {
            "parameters": arr(
                obj(
                    {"key": _S, "name": _S, "description": _S, "value": _S},
                    ("key",),
                    closed=True,
                )
            )
        },
    ),
    "externalQuery": _facet(
        _RUN_FACET, {"externalQueryId": _S, "source": _S}, ("externalQueryId", "source")
    ),
    "extractionError": _facet(
        _RUN_FACET,
        {
            "totalTasks": integer,
            "failedTasks": integer,
            "errors": arr(
                obj(
                    {"errorMessage": _S, "stackTrace": _S, "task": _S, "taskNumber": integer},
                    ("errorMessage",),
                )
            ),
        },
        ("totalTasks", "failedTasks", "errors"),
    ),
    "jobDependencies": _facet(
        _RUN_FACET,
        {
            "upstream": arr(_JOB_DEPENDENCY),
            "downstream": arr(_JOB_DEPENDENCY),
            "trigger_rule": _S,
        },
    ),
    "tags": _facet(_RUN_FACET, {"tags": _TAGS_RUN_JOB}),
    "test": _facet(_RUN_FACET, {"tests": arr(_TEST_EXECUTION)}, ("tests",)),
}

JOB_FACETS: dict[str, Check] = {
    "documentation": _facet(_JOB_FACET, {"description": _S, "contentType": _S}, ("description",)),
    "jobType": _facet(
        _JOB_FACET,
        {
            "processingType": _S,
            "integration": _S,
            "jobType": _S,
            "emissionPattern": obj(
                {"eventTrigger": _S, "eventContentMode": _S, "windowDuration": minimum(1)},
                ("eventTrigger", "eventContentMode"),
            ),
        },
        ("processingType", "integration"),
    ),
    "lineage": _LINEAGE,
    "ownership": _facet(_JOB_FACET, {"owners": _OWNERS}),
    "sourceCode": _facet(
        _JOB_FACET, {"language": _S, "sourceCode": _S}, ("language", "sourceCode")
    ),
    "sourceCodeLocation": _facet(
        _JOB_FACET,
        {
            "type": _S,
            "url": _S,
            "repoUrl": _S,
            "path": _S,
            "version": _S,
            "tag": _S,
            "branch": _S,
            "pullRequestNumber": _S,
        },
        ("type", "url"),
    ),
    "sql": _facet(_JOB_FACET, {"query": _S, "dialect": _S}, ("query",)),
    "tags": _facet(_JOB_FACET, {"tags": _TAGS_RUN_JOB}),
}

DATASET_FACETS: dict[str, Check] = {
    "catalog": _facet(
        _DATASET_FACET,
        {
            "framework": _S,
            "type": _S,
            "name": _S,
            "metadataUri": _S,
            "warehouseUri": _S,
            "source": _S,
            "catalogProperties": obj(extra=_S),
        },
        ("framework", "type", "name"),
    ),
    "columnLineage": _facet(
        _DATASET_FACET,
        {
            "fields": obj(
                extra=obj(
                    {
                        "inputFields": arr(_INPUT_FIELD),
                        "transformationDescription": _S,
                        "transformationType": _S,
                    },
                    ("inputFields",),
                )
            ),
            "dataset": arr(_INPUT_FIELD),
        },
        ("fields",),
    ),
    "dataQualityMetrics": _facet(_DATASET_FACET, _DQ_METRICS_PROPS, ("columnMetrics",)),
    "dataSource": _facet(_DATASET_FACET, {"name": _S, "uri": _S}),
    "datasetType": _facet(_DATASET_FACET, {"datasetType": _S, "subType": _S}, ("datasetType",)),
    "documentation": _facet(
        _DATASET_FACET, {"description": _S, "contentType": _S}, ("description",)
    ),
    "hierarchy": _facet(
        _DATASET_FACET,
        {"hierarchy": arr(obj({"type": _S, "name": _S}, ("type", "name")))},
        ("hierarchy",),
    ),
    "lifecycleStateChange": _facet(
        _DATASET_FACET,
        {
            "lifecycleStateChange": enum(
                "ALTER", "CREATE", "DROP", "OVERWRITE", "RENAME", "TRUNCATE"
            ),
            "previousIdentifier": obj({"name": _S, "namespace": _S}, ("name", "namespace")),
        },
        ("lifecycleStateChange",),
    ),
    "lineage": _LINEAGE,
    "ownership": _facet(_DATASET_FACET, {"owners": _OWNERS}),
    "schema": _facet(_DATASET_FACET, {"fields": arr(_SCHEMA_FIELD)}),
    "storage": _facet(_DATASET_FACET, {"storageLayer": _S, "fileFormat": _S}, ("storageLayer",)),
    "symlinks": _facet(
        _DATASET_FACET,
        {
            "identifiers": arr(
                obj({"namespace": _S, "name": _S, "type": _S}, ("namespace", "name", "type"))
            )
        },
    ),
    "tags": _facet(_DATASET_FACET, {"tags": _TAGS_DATASET}),
    "version": _facet(_DATASET_FACET, {"datasetVersion": _S}, ("datasetVersion",)),
}

INPUT_FACETS: dict[str, Check] = {
    "dataQualityAssertions": _facet(_INPUT_FACET, {"assertions": arr(_ASSERTION)}, ("assertions",)),
    "dataQualityMetrics": _facet(_INPUT_FACET, _DQ_METRICS_PROPS, ("columnMetrics",)),
    "inputStatistics": _facet(
        _INPUT_FACET, {"rowCount": integer, "size": integer, "fileCount": integer}
    ),
    "subset": _SUBSET,
}

OUTPUT_FACETS: dict[str, Check] = {
    "outputStatistics": _facet(
        _OUTPUT_FACET, {"rowCount": integer, "size": integer, "fileCount": integer}
    ),
    "subset": _SUBSET,
}

CONTAINERS: dict[str, tuple[Check, dict[str, Check]]] = {
    "run": (_RUN_FACET, RUN_FACETS),
    "job": (_JOB_FACET, JOB_FACETS),
    "dataset": (_DATASET_FACET, DATASET_FACETS),
    "input": (_INPUT_FACET, INPUT_FACETS),
    "output": (_OUTPUT_FACET, OUTPUT_FACETS),
}


def facets_check(kind: str) -> Check:
    """The checker of one facets object of ``kind``: base facet rules, then the standard ones."""
    base, standard = CONTAINERS[kind]

    def check(value: Any, p: str) -> None:
        if not isinstance(value, dict):
            want("an object of facets", value, p)
        for key, facet in value.items():
            fp = f"{p}/{esc(key)}"
            base(facet, fp)
            known = standard.get(key)
            if known is not None:
                known(facet, fp)

    return check
