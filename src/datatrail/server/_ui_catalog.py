"""The catalog pages: home, search, dataset, job, artifact, run and the lineage explorer.

Each is filled from the same library calls the API and the CLI make: ``Trail``
for runs and lineage, ``datatrail.governance`` for owners, classifications and
the governed preview, ``datatrail.retention`` for deletion dates. The lineage
explorer ships its graph as JSON and lays it out in the browser
(``static/lineage.js``), collapsed by default.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from datatrail.errors import PolicyDenied, UsageError
from datatrail.lineage import Trail
from datatrail.model import from_json, parse_node_id
from datatrail.server._auth import Principal
from datatrail.server._ui_base import (
    VIEW,
    checkpoint,
    count,
    holds,
    int_param,
    last_verify,
    like,
    node_param,
    optional,
    page,
    records,
    short,
    state,
)
from datatrail.store import Store

__all__ = ["artifact", "dataset", "home", "job", "lineage", "run", "search"]

_MAX_DEPTH = 50
_PREVIEW_ROWS = 20


@page(*VIEW)
def home(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, trail = state(request)
    counts = {t: count(store, t) for t in ("runs", "jobs", "datasets", "artifacts")}
    counts["events"] = store.size()
    return "home.html", {
        "title": "Home",
        "counts": counts,
        "recent": trail.runs(limit=10),
        "failed": trail.runs(status="failed", limit=10),
        "checkpoint": checkpoint(store),
        "verify": last_verify(store),
    }


@page(*VIEW)
def search(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = state(request)
    q = request.query_params.get("q", "").strip()
    found: dict[str, list[Any]] = {"datasets": [], "jobs": [], "runs": []}
    if q:
        pattern = like(q)
        found["datasets"] = [
            f"dataset:{ns}:{name}"
            for ns, name in store.query(
                "SELECT namespace, name FROM datasets WHERE LOWER(namespace || ':' || name) "
                "LIKE ? ESCAPE '\\' ORDER BY name LIMIT 50",
                (pattern,),
            )
        ]
        found["jobs"] = [
            f"job:{ns}:{name}"
            for ns, name in store.query(
                "SELECT namespace, name FROM jobs WHERE LOWER(namespace || ':' || name) "
                "LIKE ? ESCAPE '\\' ORDER BY name LIMIT 50",
                (pattern,),
            )
        ]
        found["runs"] = store.query(
            "SELECT run_id, job_name, status, started_at FROM runs WHERE LOWER(run_id) LIKE ? "
            "ESCAPE '\\' OR LOWER(job_name) LIKE ? ESCAPE '\\' ORDER BY started_at DESC LIMIT 50",
            (pattern, pattern),
        )
    return "search.html", {"title": "Search", "q": q, "found": found}


def _facets(store: Store, artifact_id: str) -> dict[str, Any]:
    """The dataset facets recorded with a version (quality assertions, schema, …), merged."""
    out: dict[str, Any] = {}
    for (idx,) in store.query(
        "SELECT idx FROM run_io WHERE artifact_id = ? ORDER BY idx LIMIT 20", (artifact_id,)
    ):
        event = store.event(int(idx))
        body = from_json(event.body) if event is not None and event.body is not None else None
        if isinstance(body, dict) and isinstance(body.get("facets"), dict):
            out.update(body["facets"])
    return out


def _governance(store: Store, trail: Trail, node: str, ns: str, name: str) -> dict[str, Any]:
    """Owner, classifications with why, and retention status of a dataset's latest version."""
    info: dict[str, Any] = {"owners": [], "labels": {}, "retention": None, "policy_version": None}
    active = optional("datatrail.governance", "active_policy")
    version = active(store) if active is not None else None
    if version is not None:
        info["policy_version"] = version.version
        info["owners"] = list(version.policy.owners_for(ns, name))
    why = optional("datatrail.governance", "classifications_of")
    if why is not None:
        info["labels"] = {k: list(v) for k, v in why(store, node).items()}
    plan = optional("datatrail.retention", "plan")
    latest = store.query(
        "SELECT artifact_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ? "
        "ORDER BY idx DESC LIMIT 1",
        (ns, name),
    )
    if plan is not None and latest:
        items = plan(store, artifact=str(latest[0][0]), everything=True).items
        mine = [d for d in items if d.dataset == node] or list(items)
        info["retention"] = mine[0].to_dict() if mine else None
    return info


def _preview(trail: Trail, node: str, who: Principal, purpose: str | None) -> dict[str, Any]:
    """Read through governance (masks applied, an access event recorded) and tabulate the head."""
    read = optional("datatrail.governance", "read")
    if read is None:
        return {"error": "governed reads need datatrail.governance, which is not installed"}

    try:
        data = read(node, principal=who.name, purpose=purpose or None, trail=trail, via="ui")
    except PolicyDenied as exc:
        decision = exc.decision
        return {
            "denied": str(exc),
            "decision": decision.to_dict() if hasattr(decision, "to_dict") else None,
        }
    if hasattr(data, "to_pandas") and not hasattr(data, "iloc"):
        data = data.slice(0, _PREVIEW_ROWS).to_pandas() if hasattr(data, "slice") else data
    if hasattr(data, "iloc") and hasattr(data, "columns"):
        head = data.head(_PREVIEW_ROWS)
        return {
            "columns": [str(c) for c in head.columns],
            "rows": [["" if v is None else str(v) for v in row] for row in head.itertuples(False)],
            "total": len(data),
        }
    if isinstance(data, bytes | bytearray):
        return {"text": bytes(data[:4096]).decode("utf-8", "replace"), "total": len(data)}
    return {"text": str(data)}


@page(*VIEW)
def dataset(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, trail = state(request)
    node = node_param(request)
    parsed = parse_node_id(node)
    if parsed.kind != "dataset":
        raise UsageError(f"{node} is not a dataset id (dataset:NAMESPACE:NAME)")
    ns, name = parsed.namespace or "", parsed.name or ""
    record = trail.dataset(ns, name)
    latest = trail.artifact(record.versions[-1]["artifact_id"]) if record.versions else None
    facets = _facets(store, latest.artifact_id) if latest else {}
    quality = {
        k: v
        for k, v in facets.items()
        if any(w in k.lower() for w in ("quality", "assertion", "metric", "expectation"))
    }
    preview = None
    if request.query_params.get("preview"):
        preview = _preview(trail, node, who, request.query_params.get("purpose"))
    return "dataset.html", {
        "title": name,
        "node": node,
        "record": record,
        "latest": latest,
        "facets": facets,
        "quality": quality,
        "gov": _governance(store, trail, node, ns, name),
        "set_labels": records(store, ("classification.set",), subject=node),
        "holds": holds(store, node),
        "purged": records(store, ("retention.purged",), subject=node, limit=50),
        "preview": preview,
        "purpose": request.query_params.get("purpose", ""),
    }


@page(*VIEW)
def run(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    _, trail = state(request)
    record = trail.run(request.path_params["run_id"])
    return "run.html", {"title": f"run {record.job_name}", "run": record}


@page(*VIEW)
def job(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    _, trail = state(request)
    node = str(trail.resolve(node_param(request)))
    if not node.startswith("job:"):
        raise UsageError(f"{node} is not a job id (job:NAMESPACE:NAME)")
    runs = trail.runs(job=node, limit=50)
    return "job.html", {"title": node.split(":", 2)[-1], "node": node, "runs": runs}


@page(*VIEW)
def artifact(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, trail = state(request)
    node = node_param(request)
    key = node.removeprefix("artifact:")
    record = trail.artifact(key)
    return "artifact.html", {
        "title": short(key),
        "node": "artifact:" + key,
        "record": record,
        "facets": _facets(store, key),
    }


def _graph(trail: Trail, node: str, depth: int) -> dict[str, Any]:
    """Both closures of a node, compactly: the browser lays them out (static/lineage.js)."""

    def side(direction: str) -> dict[str, Any]:
        g = trail.lineage(node, direction=direction, depth=depth)  # type: ignore[arg-type]
        return {
            "nodes": [[n.id, n.kind, n.label, n.depth] for n in g.nodes],
            "edges": [[e.source, e.target] for e in g.edges],
        }

    return {"root": node, "depth": depth, "up": side("upstream"), "down": side("downstream")}


@page(*VIEW)
def lineage(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    _, trail = state(request)
    raw = request.query_params.get("node", "").strip()
    depth = int_param(request, "depth", 3, 1, _MAX_DEPTH)
    graph = None
    if raw:
        node = str(trail.resolve(raw))
        graph = _graph(trail, node, depth)
    return "lineage.html", {"title": "Lineage", "node": raw, "depth": depth, "graph": graph}
