"""W3C PROV out: the trail as a PROV-JSON document (and PROV-N through ``prov``).

Artifacts are entities, runs are activities, actors are agents. Relations:
``used`` (a run read an artifact), ``wasGeneratedBy`` (a run wrote one),
``wasDerivedFrom`` (each output of a run from each of its inputs),
``wasAssociatedWith`` (a run and the actor who ran it), ``wasAttributedTo``
(an output and that actor) and ``wasInformedBy`` (a run used an artifact
another run generated). Identifiers are datatrail node ids under prefixes
``run:``, ``artifact:`` and ``agent:``, so a PROV id reads as the node it is.
"""

from __future__ import annotations

from typing import Any

from datatrail.errors import ConfigError
from datatrail.model import from_json
from datatrail.store import Store

__all__ = ["PROV_PREFIXES", "export_prov", "prov_document", "to_prov_n"]

PROV_PREFIXES = {
    "dt": "https://datatrail.dev/ns#",
    "run": "urn:datatrail:run:",
    "artifact": "urn:datatrail:artifact:",
    "agent": "urn:datatrail:agent:",
}


def _agent_id(actor: Any) -> str | None:
    if not isinstance(actor, dict) or not actor.get("user"):
        return None
    return f"agent:{actor['user']}@{actor.get('host', '')}"


def prov_document(store: Store, *, since: str | None = None) -> dict[str, Any]:
    """The runs started at or after ``since`` (default all), their artifacts and actors, as PROV-JSON."""
    floor = since or ""
    doc: dict[str, Any] = {
        "prefix": dict(PROV_PREFIXES),
        "entity": {},
        "activity": {},
        "agent": {},
        "used": {},
        "wasGeneratedBy": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
        "wasAttributedTo": {},
        "wasInformedBy": {},
    }
    runs = store.query(
        "SELECT run_id, job_namespace, job_name, parent_run_id, status, started_at, ended_at, actor "
        "FROM runs WHERE started_at >= ? ORDER BY started_at, run_id",
        (floor,),
    )
    run_agents: dict[str, str | None] = {}
    counter = 0

    def rel(kind: str, body: dict[str, Any]) -> None:
        nonlocal counter
        counter += 1
        doc[kind][f"_:{kind[:3]}{counter}"] = body

    for run_id, jns, jname, parent, status, started, ended, actor_json in runs:
        act = f"run:{run_id}"
        attrs: dict[str, Any] = {
            "prov:label": jname or run_id,
            "dt:job": f"job:{jns}:{jname}",
            "dt:status": status,
        }
        if started:
            attrs["prov:startTime"] = started
        if ended:
            attrs["prov:endTime"] = ended
        if parent:
            attrs["dt:parentRun"] = f"run:{parent}"
        doc["activity"][act] = attrs
        agent = _agent_id(from_json(actor_json) if actor_json else None)
        run_agents[run_id] = agent
        if agent is not None:
            if agent not in doc["agent"]:
                doc["agent"][agent] = {"prov:type": "prov:Person", "prov:label": agent[6:]}
            rel("wasAssociatedWith", {"prov:activity": act, "prov:agent": agent})
    if not runs:
        return _compact(doc)
    ids = [r[0] for r in runs]
    io_rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        io_rows += store.query(
            "SELECT io.run_id, io.role, io.artifact_id, io.dataset_namespace, io.dataset_name, "
            "io.ts, a.kind, a.rows, a.size FROM run_io io "
            "LEFT JOIN artifacts a ON a.artifact_id = io.artifact_id "
            f"WHERE io.run_id IN ({', '.join('?' * len(chunk))}) ORDER BY io.idx",
            chunk,
        )
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    generated_by: dict[str, str] = {}
    for run_id, role, art, ns, name, ts, kind, rows, size in io_rows:
        ent = f"artifact:{art}"
        if ent not in doc["entity"]:
            attrs = {"prov:type": "dt:Artifact", "dt:kind": kind or "value"}
            if ns is not None:
                attrs["dt:dataset"] = f"dataset:{ns}:{name}"
            if rows is not None:
                attrs["dt:rows"] = rows
            if size is not None:
                attrs["dt:size"] = size
            doc["entity"][ent] = attrs
        act = f"run:{run_id}"
        if role == "input":
            if ent not in inputs.setdefault(run_id, []):
                inputs[run_id].append(ent)
                rel("used", {"prov:activity": act, "prov:entity": ent, "prov:time": ts})
        else:
            if ent not in outputs.setdefault(run_id, []):
                outputs[run_id].append(ent)
                rel("wasGeneratedBy", {"prov:entity": ent, "prov:activity": act, "prov:time": ts})
                generated_by.setdefault(ent, act)
                agent = run_agents.get(run_id)
                if agent is not None:
                    rel("wasAttributedTo", {"prov:entity": ent, "prov:agent": agent})
    informed: set[tuple[str, str]] = set()
    for run_id, used in inputs.items():
        act = f"run:{run_id}"
        for ent in used:
            for out in outputs.get(run_id, []):
                if out != ent:
                    rel(
                        "wasDerivedFrom",
                        {"prov:generatedEntity": out, "prov:usedEntity": ent, "prov:activity": act},
                    )
            source = generated_by.get(ent)
            if source is not None and source != act and (act, source) not in informed:
                informed.add((act, source))
                rel("wasInformedBy", {"prov:informed": act, "prov:informant": source})
    return _compact(doc)


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v}


def to_prov_n(doc: dict[str, Any]) -> str:
    """PROV-N text of a PROV-JSON document (needs the ``prov`` package: the ``prov`` extra)."""
    try:
        from prov.model import ProvDocument
    except ImportError:
        raise ConfigError(
            "PROV-N output needs the prov package: pip install 'datatrail[prov]'"
        ) from None
    import json

    document = ProvDocument.deserialize(content=json.dumps(doc), format="json")
    text: str = document.get_provn()
    return text


def export_prov(store: Store, *, format: str = "prov-json", since: str | None = None) -> str:
    """The trail as ``prov-json`` or ``prov-n`` text."""
    import json

    doc = prov_document(store, since=since)
    if format == "prov-json":
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if format == "prov-n":
        return to_prov_n(doc)
    raise ValueError(f"unknown PROV format {format!r}; use prov-json or prov-n")
