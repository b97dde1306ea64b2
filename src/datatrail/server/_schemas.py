"""JSON schemas of the API's responses (OpenAPI 3.1 ``components.schemas``).

Shared shapes are named here and referenced as ``{"$ref": ...}`` from the route
table; they describe the ``to_dict()`` shapes of :mod:`datatrail.lineage` and
:mod:`datatrail.audit` that the routes return unchanged.
"""

from __future__ import annotations

from typing import Any

from datatrail.server._errors import ERROR_SCHEMA

__all__ = ["COMPONENTS", "array_of", "nullable", "obj", "ref"]


def ref(name: str) -> dict[str, Any]:
    """A reference to a named schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def array_of(schema: dict[str, Any]) -> dict[str, Any]:
    """An array of ``schema``."""
    return {"type": "array", "items": schema}


def obj(required: tuple[str, ...] = (), **properties: dict[str, Any]) -> dict[str, Any]:
    """An object with these properties (others allowed)."""
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
ANY_OBJ: dict[str, Any] = {"type": "object"}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": ERROR_SCHEMA,
    "IORecord": obj(
        ("artifact_id", "role", "kind", "ts"),
        artifact_id=STR,
        role={"type": "string", "enum": ["input", "output"]},
        kind=STR,
        label=nullable(STR),
        dataset=nullable(STR),
        size=nullable(INT),
        rows=nullable(INT),
        ts=STR,
    ),
    "Run": obj(
        ("run_id", "job", "job_name", "status"),
        run_id=STR,
        job=STR,
        job_name=STR,
        parent_run_id=nullable(STR),
        status=STR,
        started_at=nullable(STR),
        ended_at=nullable(STR),
        duration_ms=nullable(NUM),
        params=ANY_OBJ,
        code=nullable(ANY_OBJ),
        environment=nullable(ANY_OBJ),
        actor=nullable(ANY_OBJ),
        level=nullable(STR),
        error=nullable(ANY_OBJ),
        inputs=array_of(ref("IORecord")),
        outputs=array_of(ref("IORecord")),
        children=array_of(STR),
    ),
    "Artifact": obj(
        ("artifact_id", "kind", "first_seen"),
        artifact_id=STR,
        kind=STR,
        size=nullable(INT),
        rows=nullable(INT),
        schema=nullable(array_of(array_of(STR))),
        media_type=nullable(STR),
        stats=nullable(ANY_OBJ),
        first_seen=STR,
        datasets=array_of(STR),
        produced_by=array_of(STR),
        used_by=array_of(STR),
    ),
    "DatasetVersion": obj(
        ("artifact_id", "first_seen"),
        artifact_id=STR,
        first_seen=STR,
        size=nullable(INT),
        rows=nullable(INT),
    ),
    "DatasetSummary": obj(
        ("node_id", "namespace", "name", "first_seen", "versions"),
        node_id=STR,
        namespace=STR,
        name=STR,
        first_seen=STR,
        versions=INT,
    ),
    "Dataset": obj(
        ("node_id", "namespace", "name", "first_seen", "versions"),
        node_id=STR,
        namespace=STR,
        name=STR,
        first_seen=STR,
        versions=array_of(ref("DatasetVersion")),
        latest=nullable(ref("Artifact")),
        producers=array_of(STR),
        consumers=array_of(STR),
    ),
    "Job": obj(
        ("node_id", "namespace", "name", "first_seen", "runs"),
        node_id=STR,
        namespace=STR,
        name=STR,
        first_seen=STR,
        runs=INT,
        last_run=nullable(STR),
        last_status=nullable(STR),
        last_started_at=nullable(STR),
    ),
    "LineageNode": obj(
        ("id", "kind", "label", "depth"),
        id=STR,
        kind={"type": "string", "enum": ["dataset", "job", "run", "artifact"]},
        label=STR,
        depth=INT,
        attrs=ANY_OBJ,
    ),
    "LineageGraph": obj(
        ("root", "direction", "depth", "nodes", "edges"),
        root=STR,
        direction={"type": "string", "enum": ["upstream", "downstream"]},
        depth=INT,
        as_of=nullable(STR),
        nodes=array_of(ref("LineageNode")),
        edges=array_of(obj(("source", "target"), source=STR, target=STR)),
    ),
    "Explanation": obj(
        ("artifact", "produced_by", "seen_above"),
        artifact=ref("Artifact"),
        produced_by=array_of(
            obj(("run", "inputs"), run=ref("Run"), inputs=array_of(ref("Explanation")))
        ),
        seen_above=BOOL,
    ),
    "SearchResult": obj(
        ("kind", "node_id", "label"), kind=STR, node_id=STR, label=STR, detail=nullable(STR)
    ),
    "Checkpoint": obj(
        ("origin", "size", "root", "note", "ts"),
        origin=STR,
        size=INT,
        root=STR,
        note=STR,
        ts=STR,
        verifier_key=nullable(STR),
    ),
    "InclusionProof": obj(
        ("index", "size", "leaf_hash", "root", "proof"),
        index=INT,
        size=INT,
        leaf_hash=STR,
        root=STR,
        proof=array_of(STR),
    ),
    "ConsistencyProof": obj(
        ("old_size", "new_size", "old_root", "new_root", "proof"),
        old_size=INT,
        new_size=INT,
        old_root=STR,
        new_root=STR,
        proof=array_of(STR),
    ),
    "Bundle": obj(
        ("format", "node", "origin", "tree_size", "root", "checkpoint", "verifier_key", "events"),
        format=STR,
        node=STR,
        origin=STR,
        tree_size=INT,
        root=STR,
        checkpoint=STR,
        verifier_key=STR,
        created_at=STR,
        events=array_of(
            obj(
                ("index", "id", "kind", "leaf_hash", "proof"),
                index=INT,
                id=STR,
                kind=STR,
                leaf_hash=STR,
                body=nullable(STR),
                erased_by=nullable(INT),
                proof=array_of(STR),
            )
        ),
    ),
    "IngestResult": obj(
        ("status", "events"),
        status={"type": "string", "enum": ["accepted", "rejected"]},
        events=INT,
        first_index=nullable(INT),
        duplicates=INT,
        error=nullable(ERROR_SCHEMA["properties"]["error"]),
    ),
}
"""Named schemas, referenced by the route table."""
