"""Query and ledger routes: lineage, catalog (datasets, jobs, runs, artifacts), search, explain,
checkpoints, inclusion and consistency proofs, audit bundles, health.

Each handler parses nothing itself (the route table did), calls one function of
:class:`datatrail.Trail`, :mod:`datatrail.audit` or the store, and returns plain
data that the table's response schema describes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from datatrail.errors import InvalidNodeId, NodeNotFound, StoreError
from datatrail.model import parse_node_id
from datatrail.server._routes import ApiRoute, Call, Param
from datatrail.server._schemas import INT, STR, array_of, obj, ref

__all__ = ["API_ROUTES", "READERS"]

READERS = ("viewer", "auditor", "policy-admin")
"""Roles that may read the catalog and lineage (``admin`` always may)."""
AUDITORS = ("auditor",)

NODE_ID = Param(
    "nodeId",
    {"type": "string", "minLength": 1, "maxLength": 4096},
    required=True,
    description="A node id: dataset:NS:NAME, job:NS:NAME, run:ID or artifact:ID.",
)
LIMIT = Param(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
    description="At most this many items.",
)
OFFSET = Param(
    "offset",
    {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
    description="Skip this many items first.",
)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _node(call: Call, kind: str | None = None) -> Any:
    parsed = parse_node_id(call.params["nodeId"])
    if kind is not None and parsed.kind != kind:
        raise InvalidNodeId(f"nodeId must be a {kind} node id ({kind}:...), not {parsed}")
    return parsed


# -- health ---------------------------------------------------------------------------


def healthz(call: Call) -> dict[str, Any]:
    """Liveness and readiness: the store answers."""
    try:
        size = call.state.store.size()
    except StoreError as exc:
        raise StoreError(f"the store is not reachable: {exc}") from None
    return {"ok": True, "size": size}


def me(call: Call) -> dict[str, Any]:
    """The caller: principal name, role and token id."""
    p = call.principal
    return {"principal": p.name, "role": p.role, "token_id": p.token_id}


# -- lineage and catalog --------------------------------------------------------------


def lineage(call: Call) -> dict[str, Any]:
    """The upstream or downstream graph of a node."""
    p = call.params
    graph = call.state.trail.lineage(
        p["nodeId"], direction=p["direction"], depth=p["depth"], as_of=p["asOf"]
    )
    result: dict[str, Any] = graph.to_dict()
    return result


def datasets(call: Call) -> list[dict[str, Any]]:
    """Datasets, by name, filtered by a substring."""
    p = call.params
    where, params = "", []
    if p["q"]:
        where = "WHERE LOWER(d.namespace || ':' || d.name) LIKE ? ESCAPE '\\'"
        params.append(_like(p["q"]))
    rows = call.state.store.query(
        "SELECT d.namespace, d.name, d.first_ts, "
        "(SELECT COUNT(DISTINCT io.artifact_id) FROM run_io io "
        " WHERE io.dataset_namespace = d.namespace AND io.dataset_name = d.name) "
        f"FROM datasets d {where} ORDER BY d.namespace, d.name LIMIT ? OFFSET ?",
        (*params, p["limit"], p["offset"]),
    )
    return [
        {
            "node_id": f"dataset:{ns}:{name}",
            "namespace": ns,
            "name": name,
            "first_seen": first,
            "versions": int(n or 0),
        }
        for ns, name, first, n in rows
    ]


def dataset(call: Call) -> dict[str, Any]:
    """One dataset: its versions, its newest version in detail, the jobs that write and read it."""
    node = _node(call, "dataset")
    trail = call.state.trail
    record = trail.dataset(node.namespace, node.name)
    out: dict[str, Any] = record.to_dict()
    out["latest"] = (
        trail.artifact(record.versions[-1]["artifact_id"]).to_dict() if record.versions else None
    )
    jobs = call.state.store.query(
        "SELECT DISTINCT role, job_namespace, job_name FROM run_io "
        "WHERE dataset_namespace = ? AND dataset_name = ? AND job_name IS NOT NULL",
        (node.namespace, node.name),
    )
    out["producers"] = sorted(f"job:{ns}:{n}" for role, ns, n in jobs if role == "output")
    out["consumers"] = sorted(f"job:{ns}:{n}" for role, ns, n in jobs if role == "input")
    return out


def dataset_versions(call: Call) -> list[dict[str, Any]]:
    """A dataset's versions (artifacts), oldest first."""
    node = _node(call, "dataset")
    versions: list[dict[str, Any]] = call.state.trail.dataset(node.namespace, node.name).versions
    return versions


def artifact(call: Call) -> dict[str, Any]:
    """One artifact: content identity, schema, datasets, producing and using runs."""
    raw = call.params["nodeId"]
    if raw.startswith(("blake3:", "uuid:")):
        raw = "artifact:" + raw
    node = parse_node_id(raw)
    if node.kind != "artifact":
        raise InvalidNodeId(f"nodeId must be an artifact node id (artifact:...), not {node}")
    result: dict[str, Any] = call.state.trail.artifact(node.key).to_dict()
    return result


def jobs(call: Call) -> list[dict[str, Any]]:
    """Jobs, by name, with their run count and last run."""
    p = call.params
    where, params = "", []
    if p["q"]:
        where = "WHERE LOWER(j.namespace || ':' || j.name) LIKE ? ESCAPE '\\'"
        params.append(_like(p["q"]))
    rows = call.state.store.query(
        "SELECT j.namespace, j.name, j.first_ts, "
        "(SELECT COUNT(*) FROM runs r WHERE r.job_namespace = j.namespace AND r.job_name = j.name) "
        f"FROM jobs j {where} ORDER BY j.namespace, j.name LIMIT ? OFFSET ?",
        (*params, p["limit"], p["offset"]),
    )
    out = []
    for ns, name, first, count in rows:
        last = call.state.store.query(
            "SELECT run_id, status, started_at FROM runs WHERE job_namespace = ? AND job_name = ? "
            "ORDER BY started_at DESC, run_id DESC LIMIT 1",
            (ns, name),
        )
        out.append(
            {
                "node_id": f"job:{ns}:{name}",
                "namespace": ns,
                "name": name,
                "first_seen": first,
                "runs": int(count or 0),
                "last_run": last[0][0] if last else None,
                "last_status": last[0][1] if last else None,
                "last_started_at": last[0][2] if last else None,
            }
        )
    return out


def runs(call: Call) -> list[dict[str, Any]]:
    """Runs, newest first, filtered by job, status and start time."""
    p = call.params
    found = call.state.trail.runs(
        job=p["job"],
        status=p["status"],
        since=p["since"],
        until=p["until"],
        parent=p["parent"],
        limit=p["limit"],
    )
    return [r.to_dict() for r in found]


def run(call: Call) -> dict[str, Any]:
    """One run in full: parameters, code, environment, inputs, outputs, children, error."""
    result: dict[str, Any] = call.state.trail.run(call.params["runId"]).to_dict()
    return result


def search(call: Call) -> list[dict[str, Any]]:
    """Datasets, jobs and runs whose name (or run id) contains the text."""
    p = call.params
    pattern, limit = _like(p["q"]), p["limit"]
    store = call.state.store
    out: list[dict[str, Any]] = []
    for ns, name in store.query(
        "SELECT namespace, name FROM datasets WHERE LOWER(namespace || ':' || name) LIKE ? "
        "ESCAPE '\\' ORDER BY name LIMIT ?",
        (pattern, limit),
    ):
        out.append(
            {"kind": "dataset", "node_id": f"dataset:{ns}:{name}", "label": name, "detail": ns}
        )
    for ns, name in store.query(
        "SELECT namespace, name FROM jobs WHERE LOWER(namespace || ':' || name) LIKE ? "
        "ESCAPE '\\' ORDER BY name LIMIT ?",
        (pattern, limit),
    ):
        out.append({"kind": "job", "node_id": f"job:{ns}:{name}", "label": name, "detail": ns})
    for run_id, name, status in store.query(
        "SELECT run_id, job_name, status FROM runs WHERE LOWER(run_id) LIKE ? ESCAPE '\\' "
        "ORDER BY started_at DESC LIMIT ?",
        (pattern, limit),
    ):
        out.append(
            {"kind": "run", "node_id": f"run:{run_id}", "label": str(name), "detail": status}
        )
    return out[:limit]


def explain(call: Call) -> dict[str, Any]:
    """How an artifact (or a dataset's newest version, or a run's output) was made."""
    result: dict[str, Any] = call.state.trail.explain(
        call.params["nodeId"], depth=call.params["depth"]
    ).to_dict()
    return result


# -- ledger ---------------------------------------------------------------------------


def _verifier_text(call: Call) -> str | None:
    home = call.state.home
    if home is not None and home.verifier_key.exists():
        text: str = home.verifier_key.read_text().strip()
        return text
    return None


def checkpoint(call: Call) -> dict[str, Any]:
    """The newest signed checkpoint (C2SP signed note) and the key to check it with."""
    store = call.state.store
    latest = store.latest_checkpoint()
    if latest is None:
        raise NodeNotFound("the trail has no checkpoint yet; record something first")
    return {
        "origin": store.meta().get("origin", ""),
        "size": latest.size,
        "root": latest.root.hex(),
        "note": latest.note,
        "ts": latest.ts,
        "verifier_key": _verifier_text(call),
    }


def inclusion(call: Call) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
    store = call.state.store
    index, size = call.params["index"], call.params["size"]
    n = store.size() if size is None else size  # read once: the log may grow meanwhile
    proof = store.inclusion_proof(index, n)
    return {
        "index": index,
        "size": n,
        "leaf_hash": store.leaves(index, index + 1)[0].hex(),
        "root": store.root(n).hex(),
        "proof": [h.hex() for h in proof],
    }


def consistency(call: Call) -> dict[str, Any]:
    """An RFC 9162 consistency proof between two sizes of the tree."""
    store = call.state.store
    old, new = call.params["old"], call.params["new"]
    n = store.size() if new is None else new  # read once: the log may grow meanwhile
    proof = store.consistency_proof(old, n)
    return {
        "old_size": old,
        "new_size": n,
        "old_root": store.root(old).hex(),
        "new_root": store.root(n).hex(),
        "proof": [h.hex() for h in proof],
    }


def bundle(call: Call) -> dict[str, Any]:
    """A proof bundle of a node's events, checkable offline with ``datatrail verify-bundle``."""
    from datatrail.audit import prove

    home = call.state.home
    key = home.verifier_key if home is not None and home.verifier_key.exists() else None
    result: dict[str, Any] = msgspec.to_builtins(
        prove(call.state.store, call.params["nodeId"], verifier=key)
    )
    return result


# -- the table ------------------------------------------------------------------------

DEPTH = Param(
    "depth",
    {"type": "integer", "minimum": 0, "maximum": 1000, "default": 20},
    description="How many steps to walk.",
)
Q = Param("q", {"type": "string", "maxLength": 500}, description="Substring of the name.")

API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/healthz",
        healthz,
        "Health: the server runs and its store answers",
        (),
        "meta",
        obj(("ok", "size"), ok={"type": "boolean"}, size=INT),
        errors=(503,),
        public=True,
    ),
    ApiRoute(
        "GET",
        "/api/v1/me",
        me,
        "Who the token belongs to",
        (),
        "meta",
        obj(("principal", "role", "token_id"), principal=STR, role=STR, token_id=STR),
    ),
    ApiRoute(
        "GET",
        "/api/v1/lineage",
        lineage,
        "Lineage graph of a node, upstream or downstream",
        READERS,
        "lineage",
        ref("LineageGraph"),
        params=(
            NODE_ID,
            DEPTH,
            Param(
                "direction",
                {"type": "string", "enum": ["upstream", "downstream"], "default": "upstream"},
                description="Walk towards sources (upstream) or consumers (downstream).",
            ),
            Param(
                "asOf",
                {"type": "string", "maxLength": 64},
                description="The graph as it stood at this time (ISO 8601 or 7d ago).",
            ),
        ),
        errors=(400, 404),
    ),
    ApiRoute(
        "GET",
        "/api/v1/datasets",
        datasets,
        "Datasets, by name",
        READERS,
        "catalog",
        array_of(ref("DatasetSummary")),
        params=(Q, LIMIT, OFFSET),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/dataset",
        dataset,
        "One dataset: versions, newest version, producers and consumers",
        READERS,
        "catalog",
        ref("Dataset"),
        params=(NODE_ID,),
        errors=(400, 404),
    ),
    ApiRoute(
        "GET",
        "/api/v1/dataset/versions",
        dataset_versions,
        "A dataset's versions (artifacts), oldest first",
        READERS,
        "catalog",
        array_of(ref("DatasetVersion")),
        params=(NODE_ID,),
        errors=(400, 404),
    ),
    ApiRoute(
        "GET",
        "/api/v1/artifact",
        artifact,
        "One artifact (a dataset version or value)",
        READERS,
        "catalog",
        ref("Artifact"),
        params=(NODE_ID,),
        errors=(400, 404),
    ),
    ApiRoute(
        "GET",
        "/api/v1/jobs",
        jobs,
        "Jobs, by name, with their last run",
        READERS,
        "catalog",
        array_of(ref("Job")),
        params=(Q, LIMIT, OFFSET),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/runs",
        runs,
        "Runs, newest first",
        READERS,
        "catalog",
        array_of(ref("Run")),
        params=(
            Param("job", {"type": "string", "maxLength": 1000}, description="Job name or id."),
            Param(
                "status",
                {"type": "string", "enum": ["running", "completed", "failed"]},
                description="Only runs in this state.",
            ),
            Param("since", {"type": "string", "maxLength": 64}, description="Started at or after."),
            Param(
                "until", {"type": "string", "maxLength": 64}, description="Started at or before."
            ),
            Param("parent", {"type": "string", "maxLength": 64}, description="Parent run id."),
            LIMIT,
        ),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/runs/{runId}",
        run,
        "One run in full",
        READERS,
        "catalog",
        ref("Run"),
        params=(
            Param(
                "runId",
                {"type": "string", "minLength": 1, "maxLength": 64},
                required=True,
                where="path",
                description="The run's id.",
            ),
        ),
        errors=(400, 404),
    ),
    ApiRoute(
        "GET",
        "/api/v1/search",
        search,
        "Search datasets, jobs and runs",
        READERS,
        "catalog",
        array_of(ref("SearchResult")),
        params=(
            Param(
                "q",
                {"type": "string", "minLength": 1, "maxLength": 500},
                required=True,
                description="Text contained in the name or run id.",
            ),
            LIMIT,
        ),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/explain",
        explain,
        "How an artifact, a dataset's newest version or a run's output was made",
        READERS,
        "lineage",
        ref("Explanation"),
        params=(NODE_ID, DEPTH),
        errors=(400, 404),
    ),
    ApiRoute(
        "GET",
        "/api/v1/ledger/checkpoint",
        checkpoint,
        "The newest signed checkpoint",
        (*READERS, "producer"),
        "ledger",
        ref("Checkpoint"),
        errors=(404,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/ledger/inclusion",
        inclusion,
        "RFC 9162 inclusion proof of one entry",
        AUDITORS,
        "ledger",
        ref("InclusionProof"),
        params=(
            Param(
                "index",
                {"type": "integer", "minimum": 0, "maximum": 2**62},
                required=True,
                description="The entry's index.",
            ),
            Param(
                "size",
                {"type": "integer", "minimum": 1, "maximum": 2**62},
                description="Tree size (default: the current size).",
            ),
        ),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/ledger/consistency",
        consistency,
        "RFC 9162 consistency proof between two tree sizes",
        AUDITORS,
        "ledger",
        ref("ConsistencyProof"),
        params=(
            Param(
                "old",
                {"type": "integer", "minimum": 1, "maximum": 2**62},
                required=True,
                description="The older tree size.",
            ),
            Param(
                "new",
                {"type": "integer", "minimum": 1, "maximum": 2**62},
                description="The newer tree size (default: the current size).",
            ),
        ),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/ledger/bundle",
        bundle,
        "Audit bundle: a node's events with inclusion proofs against the newest checkpoint",
        AUDITORS,
        "ledger",
        ref("Bundle"),
        params=(
            Param(
                "nodeId",
                {"type": "string", "minLength": 1, "maxLength": 4096},
                required=True,
                description="A node id, or one entry as event:INDEX or event:ID.",
            ),
        ),
        errors=(400, 404),
    ),
)
"""Query, catalog and ledger routes."""
